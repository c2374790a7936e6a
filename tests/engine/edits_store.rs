//! The store's edit methods: overrides saved under a version check, and the history;
//! on both backends (see [`crate::support::store_suite`]).

use batchboard::job::JobSettings;
use batchboard::store::{ChangeFilter, JobChange, JobEdit, JobRecord, StoreError};
use chrono::{DateTime, TimeZone, Utc};

use crate::support::{TestStore, store_suite};

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid date")
        + chrono::Duration::seconds(seconds)
}

fn settings(name: &str) -> JobSettings {
    JobSettings {
        name: name.into(),
        handler: "demo_inventory".into(),
        every: Some("5m".into()),
        ..JobSettings::default()
    }
}

async fn synced(store: &TestStore, names: &[&str]) -> Vec<JobRecord> {
    let jobs: Vec<_> = names.iter().map(|name| settings(name)).collect();
    store.sync_jobs(&jobs, at(0)).await.expect("jobs sync")
}

fn change(field: &str, old: serde_json::Value, new: serde_json::Value) -> JobChange {
    JobChange {
        actor: "ada".into(),
        field: field.into(),
        old_value: Some(old),
        new_value: Some(new),
    }
}

/// An edit of `job` that keeps its paused state and next fire.
fn edit_of(job: &JobRecord, overrides: serde_json::Value, changes: Vec<JobChange>) -> JobEdit {
    JobEdit {
        overrides: overrides.as_object().cloned().expect("an object"),
        paused: job.paused,
        next_run_at: job.next_run_at,
        changes,
    }
}

async fn an_edit_saves_the_overrides_bumps_the_version_and_records_each_change(db: TestStore) {
    let job = synced(&db, &["sync"]).await.remove(0);
    let saved = db
        .store
        .update_job_overrides(
            job.id,
            job.version,
            &edit_of(
                &job,
                serde_json::json!({"every": "10m", "max_attempts": 5}),
                vec![
                    change("every", "5m".into(), "10m".into()),
                    change("max_attempts", serde_json::Value::Null, 5.into()),
                ],
            ),
            at(60),
        )
        .await
        .expect("the edit saves");
    assert_eq!(saved.version, job.version + 1);
    assert_eq!(saved.updated_at, at(60));
    assert_eq!(saved.overrides["every"], "10m");

    let history = db
        .store
        .job_changes(&ChangeFilter {
            limit: 10,
            ..ChangeFilter::default()
        })
        .await
        .expect("history loads");
    let fields: Vec<_> = history.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(fields, ["max_attempts", "every"], "newest first");
    assert_eq!(history[1].job_name, "sync");
    assert_eq!(history[1].actor, "ada");
    assert_eq!(history[1].old_value, Some("5m".into()));
    assert_eq!(history[1].new_value, Some("10m".into()));
    assert_eq!(history[1].changed_at, at(60));
}

async fn an_edit_saves_its_paused_state_and_next_fire_with_its_overrides(db: TestStore) {
    let job = synced(&db, &["sync"]).await.remove(0);
    let edit = JobEdit {
        paused: true,
        next_run_at: None,
        ..edit_of(
            &job,
            serde_json::json!({"every": "10m"}),
            vec![
                change("every", "5m".into(), "10m".into()),
                change("paused", false.into(), true.into()),
            ],
        )
    };
    let saved = db
        .store
        .update_job_overrides(job.id, job.version, &edit, at(60))
        .await
        .expect("the edit saves");
    assert_eq!(
        (saved.paused, saved.next_run_at, saved.version),
        (true, None, job.version + 1)
    );
    let resumed = JobEdit {
        paused: false,
        next_run_at: Some(at(660)),
        changes: vec![change("paused", true.into(), false.into())],
        ..edit
    };
    let saved = db
        .store
        .update_job_overrides(job.id, saved.version, &resumed, at(60))
        .await
        .expect("the edit saves");
    assert_eq!(
        (saved.paused, saved.next_run_at, saved.version),
        (false, Some(at(660)), job.version + 2)
    );
    let reread = db
        .store
        .job_by_name("sync")
        .await
        .expect("loads")
        .expect("exists");
    assert_eq!(reread, saved, "what is returned is what was saved");
}

async fn an_edit_on_a_stale_version_is_a_conflict_and_writes_nothing(db: TestStore) {
    let job = synced(&db, &["sync"]).await.remove(0);
    let result = db
        .store
        .update_job_overrides(
            job.id,
            job.version - 1,
            &edit_of(
                &job,
                serde_json::json!({"every": "10m"}),
                vec![change("every", "5m".into(), "10m".into())],
            ),
            at(60),
        )
        .await;
    assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    let after = db
        .store
        .job_by_name("sync")
        .await
        .expect("loads")
        .expect("exists");
    assert_eq!(after, job, "the job is untouched");
    let history = db
        .store
        .job_changes(&ChangeFilter {
            limit: 10,
            ..ChangeFilter::default()
        })
        .await
        .expect("history loads");
    assert!(history.is_empty(), "no change recorded: {history:?}");
}

async fn an_edit_of_a_missing_job_is_not_found(db: TestStore) {
    let result = db
        .store
        .update_job_overrides(
            42,
            1,
            &JobEdit {
                overrides: serde_json::Map::new(),
                paused: false,
                next_run_at: None,
                changes: Vec::new(),
            },
            at(0),
        )
        .await;
    assert!(matches!(result, Err(StoreError::NotFound)), "{result:?}");
}

async fn pausing_records_who_paused_and_pausing_twice_records_once(db: TestStore) {
    let job = synced(&db, &["sync"]).await.remove(0);
    for _ in 0..2 {
        let paused = db
            .store
            .set_paused_by(job.id, true, None, "grace", at(5))
            .await
            .expect("pauses");
        assert!(paused.paused);
    }
    let history = db
        .store
        .job_changes(&ChangeFilter {
            job_id: Some(job.id),
            limit: 10,
            ..ChangeFilter::default()
        })
        .await
        .expect("history loads");
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0].field.as_str(), history[0].actor.as_str()),
        ("paused", "grace")
    );
    assert_eq!(history[0].old_value, Some(false.into()));
    assert_eq!(history[0].new_value, Some(true.into()));
}

async fn the_history_pages_by_keyset_and_filters_by_job(db: TestStore) {
    let jobs = synced(&db, &["alpha", "beta"]).await;
    for (i, job) in jobs.iter().cycle().take(10).enumerate() {
        let current = db
            .store
            .job_by_name(&job.name)
            .await
            .expect("loads")
            .expect("exists");
        let attempts = u32::try_from(i + 1).expect("small");
        db.store
            .update_job_overrides(
                job.id,
                current.version,
                &edit_of(
                    &current,
                    serde_json::json!({ "max_attempts": attempts }),
                    vec![change(
                        "max_attempts",
                        serde_json::Value::Null,
                        attempts.into(),
                    )],
                ),
                at(i64::from(attempts)),
            )
            .await
            .expect("the edit saves");
    }
    let first = db
        .store
        .job_changes(&ChangeFilter {
            limit: 4,
            ..ChangeFilter::default()
        })
        .await
        .expect("page one");
    let second = db
        .store
        .job_changes(&ChangeFilter {
            before: first.last().map(|c| c.id),
            limit: 4,
            ..ChangeFilter::default()
        })
        .await
        .expect("page two");
    let values: Vec<_> = first
        .iter()
        .chain(&second)
        .map(|c| c.new_value.clone().expect("set"))
        .collect();
    let expected: Vec<serde_json::Value> = (3..=10).rev().map(serde_json::Value::from).collect();
    assert_eq!(
        values, expected,
        "newest first, no gap or repeat between pages"
    );

    let beta = db
        .store
        .job_changes(&ChangeFilter {
            job_id: Some(jobs[1].id),
            limit: 100,
            ..ChangeFilter::default()
        })
        .await
        .expect("beta's history");
    assert_eq!(beta.len(), 5);
    assert!(beta.iter().all(|c| c.job_name == "beta"));
}

store_suite!(
    an_edit_saves_the_overrides_bumps_the_version_and_records_each_change,
    an_edit_saves_its_paused_state_and_next_fire_with_its_overrides,
    an_edit_on_a_stale_version_is_a_conflict_and_writes_nothing,
    an_edit_of_a_missing_job_is_not_found,
    pausing_records_who_paused_and_pausing_twice_records_once,
    the_history_pages_by_keyset_and_filters_by_job,
);
