//! The store's side of chains, on both backends (see [`crate::support::store_suite`]):
//! when a job's `after` jobs have all succeeded since it last started, and one
//! run by dependency per upstream end however many instances insert it.

use batchboard::job::JobSettings;
use batchboard::store::{RunStatus, Trigger};
use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::support::{TestStore, ended_run, store_suite};

fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid date")
        + Duration::minutes(minutes)
}

async fn jobs(store: &TestStore, names: &[&str]) -> Vec<i64> {
    let settings: Vec<JobSettings> = names
        .iter()
        .map(|name| JobSettings {
            name: (*name).into(),
            handler: "demo".into(),
            every: Some("1h".into()),
            ..JobSettings::default()
        })
        .collect();
    let records = store.sync_jobs(&settings, at(0)).await.expect("sync");
    names
        .iter()
        .map(|name| records.iter().find(|r| r.name == *name).expect("saved").id)
        .collect()
}

async fn fan_in_is_due_once_every_upstream_job_succeeded_since_the_follower_last_started(
    store: TestStore,
) {
    let ids = jobs(&store, &["extract", "transform", "load"]).await;
    let (extract, transform, load) = (ids[0], ids[1], ids[2]);
    let due = |store: &TestStore| {
        let store = store.store.clone();
        async move {
            store
                .upstream_succeeded(load, &[extract, transform])
                .await
                .expect("reads")
        }
    };
    assert_eq!(due(&store).await, None, "no upstream run yet");

    let ok = RunStatus::Succeeded;
    ended_run(&store, extract, Trigger::Schedule, at(1), ok, at(2)).await;
    assert_eq!(due(&store).await, None, "transform has not run");
    ended_run(&store, transform, Trigger::Schedule, at(3), ok, at(4)).await;
    assert_eq!(
        due(&store).await,
        Some(at(4)),
        "both succeeded: keyed by the last end"
    );

    // The run they made due started at their last end; then only extract succeeds
    // again: not enough.
    ended_run(&store, load, Trigger::Dependency, at(4), ok, at(5)).await;
    assert_eq!(due(&store).await, None, "already run for these ends");
    ended_run(&store, extract, Trigger::Schedule, at(6), ok, at(7)).await;
    assert_eq!(due(&store).await, None, "transform has not succeeded since");

    // A failure as transform's newest run holds the chain; a skipped fire does not
    // count as a run; the retry that succeeds releases it.
    ended_run(
        &store,
        transform,
        Trigger::Schedule,
        at(8),
        RunStatus::Failed,
        at(9),
    )
    .await;
    assert_eq!(due(&store).await, None, "transform's newest run failed");
    ended_run(&store, transform, Trigger::Retry, at(10), ok, at(11)).await;
    ended_run(
        &store,
        transform,
        Trigger::Schedule,
        at(12),
        RunStatus::Skipped,
        at(12),
    )
    .await;
    assert_eq!(due(&store).await, Some(at(11)));

    // A run of load that started after those ends, for whatever reason, used them.
    ended_run(&store, load, Trigger::Schedule, at(13), ok, at(14)).await;
    assert_eq!(due(&store).await, None, "the scheduled run came after them");
}

async fn a_run_by_dependency_is_inserted_once_per_upstream_end(store: TestStore) {
    let ids = jobs(&store, &["extract", "load"]).await;
    let load = ids[1];
    let ok = RunStatus::Succeeded;
    let first = ended_run(&store, load, Trigger::Dependency, at(4), ok, at(5)).await;
    assert!(first.is_some(), "the first instance's run is kept");
    let second = ended_run(&store, load, Trigger::Dependency, at(4), ok, at(5)).await;
    assert_eq!(
        second, None,
        "a second run for the same upstream end is left out"
    );
    let next = ended_run(&store, load, Trigger::Dependency, at(6), ok, at(7)).await;
    assert!(next.is_some(), "a later upstream end makes a new run");
}

store_suite!(
    fan_in_is_due_once_every_upstream_job_succeeded_since_the_follower_last_started,
    a_run_by_dependency_is_inserted_once_per_upstream_end,
);
