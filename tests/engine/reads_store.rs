//! The console's aggregate reads, on both backends (see [`crate::support::store_suite`]).

use std::collections::HashMap;

use batchboard::job::JobSettings;
use batchboard::store::{NewRun, OutcomeBucket, RunFinish, RunStatus, Trigger, WriteBatch};
use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::support::{TestStore, store_suite};

async fn store_with_jobs(store: TestStore, names: &[&str]) -> (TestStore, Vec<i64>) {
    let jobs: Vec<JobSettings> = names
        .iter()
        .map(|name| JobSettings {
            name: (*name).into(),
            handler: "demo".into(),
            every: Some("1m".into()),
            ..JobSettings::default()
        })
        .collect();
    let records = store.sync_jobs(&jobs, at(0)).await.expect("sync");
    let ids = names
        .iter()
        .map(|name| {
            records
                .iter()
                .find(|r| r.name == *name)
                .expect("inserted")
                .id
        })
        .collect();
    (store, ids)
}

fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid date")
        + Duration::minutes(minutes)
}

/// Inserts a run of `job_id` started at `started` and finishes it with `status`
/// (unless `Running`); returns its id.
async fn add_run(
    store: &TestStore,
    job_id: i64,
    started: DateTime<Utc>,
    status: RunStatus,
    attempt: u32,
    first_run_id: Option<i64>,
) -> i64 {
    let insert = WriteBatch {
        inserts: vec![NewRun {
            job_id,
            trigger: if attempt > 1 {
                Trigger::Retry
            } else {
                Trigger::Schedule
            },
            attempt,
            first_run_id,
            status: RunStatus::Running,
            scheduled_for: started,
            started_at: started,
            finished_at: None,
            error_kind: None,
            error_message: None,
            instance_id: "test".into(),
            exclusive: false,
        }],
        ..WriteBatch::default()
    };
    let id = store.write_batch(&insert).await.expect("insert").inserts[0]
        .run_id()
        .expect("inserted");
    if status != RunStatus::Running {
        let finish = WriteBatch {
            finishes: vec![RunFinish {
                run_id: id,
                status,
                started_at: Some(started),
                finished_at: started + Duration::seconds(3),
                duration_ms: Some(3000),
                items_checked: 1,
                items_updated: 0,
                items_total: None,
                error_kind: None,
                error_message: None,
                summary: None,
                retry_at: None,
            }],
            ..WriteBatch::default()
        };
        store.write_batch(&finish).await.expect("finish");
    }
    id
}

async fn status_counts_since_count_only_runs_started_inside_the_window(test: TestStore) {
    let (test, ids) = store_with_jobs(test, &["a", "b"]).await;
    let store = &test;
    add_run(store, ids[0], at(0), RunStatus::Failed, 1, None).await;
    add_run(store, ids[0], at(60), RunStatus::Succeeded, 1, None).await;
    add_run(store, ids[1], at(61), RunStatus::Failed, 1, None).await;
    add_run(store, ids[1], at(62), RunStatus::Running, 1, None).await;

    let counts = store.status_counts_since(at(60)).await.expect("counts");

    let expected: HashMap<RunStatus, u64> = [
        (RunStatus::Succeeded, 1),
        (RunStatus::Failed, 1),
        (RunStatus::Running, 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(counts, expected);
}

async fn outcome_buckets_group_the_chosen_jobs_runs_by_hour_and_status(test: TestStore) {
    let (test, ids) = store_with_jobs(test, &["a", "b", "c"]).await;
    let store = &test;
    let since = at(60);
    add_run(store, ids[0], at(59), RunStatus::Failed, 1, None).await; // before the window
    add_run(store, ids[0], at(60), RunStatus::Succeeded, 1, None).await; // bucket 0
    add_run(store, ids[0], at(119), RunStatus::Succeeded, 1, None).await; // bucket 0
    add_run(store, ids[0], at(120), RunStatus::Failed, 1, None).await; // bucket 1
    add_run(store, ids[1], at(200), RunStatus::Dead, 1, None).await; // bucket 2
    add_run(store, ids[2], at(200), RunStatus::Failed, 1, None).await; // not asked for

    let mut buckets = store
        .outcome_buckets(&ids[..2], since, Duration::hours(1))
        .await
        .expect("buckets");
    buckets.sort_by_key(|b| (b.job_id, b.bucket, b.status.as_str()));

    assert_eq!(
        buckets,
        vec![
            OutcomeBucket {
                job_id: ids[0],
                bucket: 0,
                status: RunStatus::Succeeded,
                runs: 2
            },
            OutcomeBucket {
                job_id: ids[0],
                bucket: 1,
                status: RunStatus::Failed,
                runs: 1
            },
            OutcomeBucket {
                job_id: ids[1],
                bucket: 2,
                status: RunStatus::Dead,
                runs: 1
            },
        ]
    );
}

async fn outcome_buckets_of_no_jobs_are_empty(test: TestStore) {
    let (test, _) = store_with_jobs(test, &["a"]).await;
    let buckets = test
        .store
        .outcome_buckets(&[], at(0), Duration::hours(1))
        .await
        .expect("buckets");
    assert!(buckets.is_empty());
}

async fn run_chain_lists_the_first_attempt_and_its_retries_oldest_first(test: TestStore) {
    let (test, ids) = store_with_jobs(test, &["a"]).await;
    let store = &test;
    let first = add_run(store, ids[0], at(0), RunStatus::Retrying, 1, None).await;
    let unrelated = add_run(store, ids[0], at(1), RunStatus::Succeeded, 1, None).await;
    let second = add_run(store, ids[0], at(2), RunStatus::Retrying, 2, Some(first)).await;
    let third = add_run(store, ids[0], at(3), RunStatus::Dead, 3, Some(first)).await;

    let chain: Vec<(i64, u32)> = store
        .run_chain(first)
        .await
        .expect("chain")
        .iter()
        .map(|run| (run.id, run.attempt))
        .collect();

    assert_eq!(chain, vec![(first, 1), (second, 2), (third, 3)]);
    assert!(!chain.iter().any(|(id, _)| *id == unrelated));
}

async fn run_chain_of_a_lone_run_is_that_run(test: TestStore) {
    let (test, ids) = store_with_jobs(test, &["a"]).await;
    let only = add_run(&test, ids[0], at(0), RunStatus::Succeeded, 1, None).await;
    let chain = test.store.run_chain(only).await.expect("chain");
    assert_eq!(chain.iter().map(|r| r.id).collect::<Vec<_>>(), vec![only]);
}

store_suite!(
    status_counts_since_count_only_runs_started_inside_the_window,
    outcome_buckets_group_the_chosen_jobs_runs_by_hour_and_status,
    outcome_buckets_of_no_jobs_are_empty,
    run_chain_lists_the_first_attempt_and_its_retries_oldest_first,
    run_chain_of_a_lone_run_is_that_run,
);
