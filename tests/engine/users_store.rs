//! Users, their sessions' index, API tokens and server keys in the store, on both
//! backends (see [`crate::support::store_suite`]).

use std::collections::HashMap;

use batchboard::store::{
    NewApiToken, NewUser, Role, SessionRows, StoreError, TokenRef, UserUpdate,
};
use chrono::{DateTime, Duration, Utc};
use tower_sessions::cookie::time::{self, OffsetDateTime};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::SessionStore as _;

use crate::support::{TestStore, store_suite};

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 123_457_000).expect("a valid time")
        + Duration::seconds(seconds)
}

fn new_user(name: &str, role: Role) -> NewUser {
    NewUser {
        name: name.into(),
        password_hash: format!("$argon2id$hash-of-{name}"),
        role,
        must_change_password: false,
    }
}

async fn a_created_user_is_found_by_name_and_by_id(store: TestStore) {
    let created = store
        .create_user(&new_user("ann", Role::Operator), at(0))
        .await
        .expect("created");
    assert_eq!(created.name, "ann");
    assert_eq!(created.role, Role::Operator);
    assert!(!created.disabled);
    assert_eq!(created.created_at, at(0));
    assert_eq!(created.updated_at, at(0));
    let by_name = store.user_by_name("ann").await.expect("read").expect("ann");
    let by_id = store
        .user_by_id(created.id)
        .await
        .expect("read")
        .expect("ann");
    assert_eq!(by_name, created);
    assert_eq!(by_id, created);
    assert!(store.user_by_name("bob").await.expect("read").is_none());
    assert!(
        store
            .user_by_id(created.id + 1)
            .await
            .expect("read")
            .is_none()
    );
}

async fn a_taken_name_is_a_conflict(store: TestStore) {
    store
        .create_user(&new_user("ann", Role::Viewer), at(0))
        .await
        .expect("created");
    let again = store
        .create_user(&new_user("ann", Role::Admin), at(1))
        .await;
    assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");
}

async fn users_are_listed_by_name_and_counted(store: TestStore) {
    assert_eq!(store.count_users().await.expect("count"), 0);
    for name in ["zoe", "ann", "mia"] {
        store
            .create_user(&new_user(name, Role::Viewer), at(0))
            .await
            .expect("created");
    }
    let names: Vec<String> = store
        .users()
        .await
        .expect("list")
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["ann", "mia", "zoe"]);
    assert_eq!(store.count_users().await.expect("count"), 3);
}

async fn an_update_changes_only_the_given_fields(store: TestStore) {
    let ann = store
        .create_user(&new_user("ann", Role::Viewer), at(0))
        .await
        .expect("created");
    let role = UserUpdate {
        role: Some(Role::Admin),
        ..UserUpdate::default()
    };
    let updated = store
        .update_user(ann.id, &role, at(5))
        .await
        .expect("updated");
    assert_eq!(updated.role, Role::Admin);
    assert_eq!(updated.password_hash, ann.password_hash);
    assert!(!updated.disabled);
    assert_eq!(updated.updated_at, at(5));
    assert_eq!(updated.created_at, at(0));

    let disable_and_reset = UserUpdate {
        disabled: Some(true),
        password_hash: Some("$argon2id$new".into()),
        ..UserUpdate::default()
    };
    let updated = store
        .update_user(ann.id, &disable_and_reset, at(6))
        .await
        .expect("updated");
    assert!(updated.disabled);
    assert_eq!(updated.password_hash, "$argon2id$new");
    assert_eq!(updated.role, Role::Admin);
    assert_eq!(
        store.user_by_id(ann.id).await.expect("read").expect("ann"),
        updated
    );
}

async fn a_forced_password_change_is_kept_until_cleared(store: TestStore) {
    let told = NewUser {
        must_change_password: true,
        ..new_user("ann", Role::Viewer)
    };
    let ann = store.create_user(&told, at(0)).await.expect("created");
    assert!(ann.must_change_password);
    let role = UserUpdate {
        role: Some(Role::Operator),
        ..UserUpdate::default()
    };
    let updated = store
        .update_user(ann.id, &role, at(1))
        .await
        .expect("updated");
    assert!(updated.must_change_password, "an unrelated change keeps it");
    let cleared = UserUpdate {
        password_hash: Some("$argon2id$chosen".into()),
        must_change_password: Some(false),
        ..UserUpdate::default()
    };
    let updated = store
        .update_user(ann.id, &cleared, at(2))
        .await
        .expect("updated");
    assert!(!updated.must_change_password);
}

async fn updating_a_missing_user_is_not_found(store: TestStore) {
    let result = store.update_user(42, &UserUpdate::default(), at(0)).await;
    assert!(matches!(result, Err(StoreError::NotFound)), "{result:?}");
}

async fn the_debug_form_of_a_user_hides_the_password_hash(store: TestStore) {
    let ann = store
        .create_user(&new_user("ann", Role::Viewer), at(0))
        .await
        .expect("created");
    let shown = format!("{ann:?} {:?}", new_user("ann", Role::Viewer));
    assert!(!shown.contains("hash-of-ann"), "{shown}");
    assert!(shown.contains("<hidden>"));
}

/// A session of the session layer's own store, expiring in an hour (it reads the real
/// clock).
async fn session(rows: &SessionRows) -> Id {
    let mut record = Record {
        id: Id::default(),
        data: HashMap::default(),
        expiry_date: OffsetDateTime::now_utc() + time::Duration::hours(1),
    };
    rows.create(&mut record).await.expect("a session is saved");
    record.id
}

async fn ending_sessions_deletes_the_session_layers_own_rows_by_the_index(store: TestStore) {
    let ann = store
        .create_user(&new_user("ann", Role::Viewer), at(0))
        .await
        .expect("created");
    let bob = store
        .create_user(&new_user("bob", Role::Viewer), at(0))
        .await
        .expect("created");
    let rows = store.session_rows();
    rows.migrate().await.expect("the session table is created");
    rows.migrate()
        .await
        .expect("and creating it again is harmless");
    let (ann_here, ann_there, bob_one, anonymous) = (
        session(&rows).await,
        session(&rows).await,
        session(&rows).await,
        session(&rows).await,
    );
    for (id, user) in [(ann_here, ann.id), (ann_there, ann.id), (bob_one, bob.id)] {
        store
            .index_session(&id.to_string(), user, at(1))
            .await
            .expect("indexed");
    }

    assert_eq!(store.delete_unindexed_sessions().await.expect("swept"), 1);
    assert_eq!(rows.load(&anonymous).await.expect("loads"), None);
    let keep = ann_here.to_string();
    assert_eq!(
        store
            .end_sessions_of_user(ann.id, Some(&keep))
            .await
            .expect("ended"),
        1
    );
    assert!(rows.load(&ann_here).await.expect("loads").is_some());
    assert_eq!(rows.load(&ann_there).await.expect("loads"), None);
    assert!(rows.load(&bob_one).await.expect("loads").is_some());

    // Signed out: the session goes, its index row follows at the next prune.
    rows.delete(&bob_one).await.expect("deleted");
    assert_eq!(store.prune_session_index().await.expect("pruned"), 1);
    assert_eq!(store.prune_session_index().await.expect("pruned"), 0);
    assert_eq!(
        store
            .end_sessions_of_user(ann.id, None)
            .await
            .expect("ended"),
        1
    );
    assert_eq!(rows.load(&ann_here).await.expect("loads"), None);
}

async fn tokens_are_named_once_per_user_revoked_and_touched_forward_only(store: TestStore) {
    let ann = store
        .create_user(&new_user("ann", Role::Operator), at(0))
        .await
        .expect("created");
    let token = |name: &str, hash: &str| NewApiToken {
        user_id: ann.id,
        name: name.into(),
        token_hash: hash.into(),
        role: Role::Viewer,
        expires_at: Some(at(3600)),
    };
    let ci = store
        .create_token(&token("ci", "hash-1"), at(1))
        .await
        .expect("created");
    assert_eq!((ci.created_at, ci.expires_at), (at(1), Some(at(3600))));
    assert!(matches!(
        store.create_token(&token("ci", "hash-2"), at(2)).await,
        Err(StoreError::Conflict)
    ));
    let backup = store
        .create_token(&token("backup", "hash-3"), at(2))
        .await
        .expect("created");
    let names: Vec<String> = store
        .tokens_of_user(ann.id)
        .await
        .expect("listed")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["backup", "ci"]);

    store.touch_token(ci.id, at(60)).await.expect("touched");
    store.touch_token(ci.id, at(30)).await.expect("touched");
    let found = store
        .token_by_hash("hash-1")
        .await
        .expect("found")
        .expect("exists");
    assert_eq!(found.last_used_at, Some(at(60)), "never moved backwards");

    let revoked = store
        .revoke_token(ann.id, TokenRef::Name("ci"), at(70))
        .await
        .expect("revoked");
    assert_eq!(revoked.revoked_at, Some(at(70)));
    assert!(matches!(
        store
            .revoke_token(ann.id, TokenRef::Name("ci"), at(71))
            .await,
        Err(StoreError::NotFound)
    ));
    store
        .create_token(&token("ci", "hash-4"), at(72))
        .await
        .expect("a revoked token frees its name");
    assert_eq!(
        store
            .revoke_tokens_of_user(ann.id, at(80))
            .await
            .expect("revoked"),
        2
    );
    assert!(
        store
            .tokens_of_user(ann.id)
            .await
            .expect("listed")
            .is_empty()
    );
    let gone = store
        .token_by_hash(&backup.token_hash)
        .await
        .expect("found")
        .expect("kept");
    assert_eq!(gone.revoked_at, Some(at(80)));
}

async fn a_server_key_is_created_once_and_then_kept(store: TestStore) {
    let now = DateTime::from_timestamp(1_800_000_000, 0).expect("a time");
    let first = store
        .server_key("cookies", &[7; 32], now)
        .await
        .expect("created");
    assert_eq!(first, vec![7; 32]);
    let again = store
        .server_key("cookies", &[9; 32], now)
        .await
        .expect("read");
    assert_eq!(
        again, first,
        "a second caller gets the stored key, not its own"
    );
    let other = store
        .server_key("other", &[9; 32], now)
        .await
        .expect("created");
    assert_eq!(other, vec![9; 32]);
}

store_suite!(
    a_created_user_is_found_by_name_and_by_id,
    a_taken_name_is_a_conflict,
    users_are_listed_by_name_and_counted,
    an_update_changes_only_the_given_fields,
    a_forced_password_change_is_kept_until_cleared,
    updating_a_missing_user_is_not_found,
    the_debug_form_of_a_user_hides_the_password_hash,
    ending_sessions_deletes_the_session_layers_own_rows_by_the_index,
    tokens_are_named_once_per_user_revoked_and_touched_forward_only,
    a_server_key_is_created_once_and_then_kept,
);
