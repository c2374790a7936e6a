//! Users in the SQLite store against real temporary database files.

use batchboard::store::{NewUser, Role, Store, StoreError, UserUpdate};
use chrono::{DateTime, Duration, Utc};

use crate::support::open_store;

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

#[tokio::test]
async fn a_created_user_is_found_by_name_and_by_id() {
    let store = open_store().await;
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

#[tokio::test]
async fn a_taken_name_is_a_conflict() {
    let store = open_store().await;
    store
        .create_user(&new_user("ann", Role::Viewer), at(0))
        .await
        .expect("created");
    let again = store
        .create_user(&new_user("ann", Role::Admin), at(1))
        .await;
    assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");
}

#[tokio::test]
async fn users_are_listed_by_name_and_counted() {
    let store = open_store().await;
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

#[tokio::test]
async fn an_update_changes_only_the_given_fields() {
    let store = open_store().await;
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

#[tokio::test]
async fn a_forced_password_change_is_kept_until_cleared() {
    let store = open_store().await;
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

#[tokio::test]
async fn updating_a_missing_user_is_not_found() {
    let store = open_store().await;
    let result = store.update_user(42, &UserUpdate::default(), at(0)).await;
    assert!(matches!(result, Err(StoreError::NotFound)), "{result:?}");
}

#[tokio::test]
async fn the_debug_form_of_a_user_hides_the_password_hash() {
    let store = open_store().await;
    let ann = store
        .create_user(&new_user("ann", Role::Viewer), at(0))
        .await
        .expect("created");
    let shown = format!("{ann:?} {:?}", new_user("ann", Role::Viewer));
    assert!(!shown.contains("hash-of-ann"), "{shown}");
    assert!(shown.contains("<hidden>"));
}

#[tokio::test]
async fn the_sqlite_store_shares_its_pool_for_sessions() {
    let store = open_store().await;
    assert!(store.sqlite_pool().is_some());
}

#[tokio::test]
async fn a_server_key_is_created_once_and_then_kept() {
    let store = open_store().await;
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
