//! Instances, orphan log lines and dropped retries in the store, on both backends (see
//! [`crate::support::store_suite`]).

use batchboard::job::JobSettings;
use batchboard::store::{
    Announcement, ClaimResult, InstanceKind, LogLine, NewInstance, NewRun, RetryClaim, RunFinish,
    RunStatus, Trigger, WriteBatch,
};
use chrono::{DateTime, Duration, Utc};

use crate::support::{TestStore, store_suite};

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 250_000).expect("a valid time")
        + Duration::seconds(seconds)
}

fn instance(id: &str, kind: InstanceKind) -> NewInstance {
    NewInstance {
        id: id.into(),
        kind,
        host: "box".into(),
        pid: 42,
    }
}

async fn job(store: &TestStore) -> i64 {
    let settings = JobSettings {
        name: "copy".into(),
        handler: "scripted".into(),
        every: Some("1h".into()),
        ..JobSettings::default()
    };
    store.sync_jobs(&[settings], at(0)).await.expect("synced")[0].id
}

fn run(job_id: i64, instance_id: &str) -> NewRun {
    NewRun {
        job_id,
        trigger: Trigger::Manual,
        attempt: 1,
        first_run_id: None,
        status: RunStatus::Running,
        scheduled_for: at(0),
        started_at: at(0),
        finished_at: None,
        error_kind: None,
        error_message: None,
        instance_id: instance_id.into(),
        exclusive: false,
    }
}

async fn insert(store: &TestStore, run: NewRun) -> i64 {
    store
        .write_batch(&WriteBatch {
            inserts: vec![run],
            ..WriteBatch::default()
        })
        .await
        .expect("inserted")
        .inserts[0]
        .run_id()
        .expect("inserted")
}

async fn instances_register_beat_count_their_runs_and_stop(store: TestStore) {
    let job_id = job(&store).await;
    store
        .register_instance(&instance("a", InstanceKind::Serve), at(0))
        .await
        .expect("a registers");
    store
        .register_instance(&instance("b", InstanceKind::Run), at(1))
        .await
        .expect("b registers");
    insert(&store, run(job_id, "a")).await;
    insert(&store, run(job_id, "a")).await;

    assert!(store.heartbeat_instance("a", at(10)).await.expect("beats"));
    // A late heartbeat never moves the time back.
    assert!(store.heartbeat_instance("a", at(5)).await.expect("beats"));
    assert!(
        !store
            .heartbeat_instance("ghost", at(10))
            .await
            .expect("asks")
    );

    let listed = store.instances(at(0)).await.expect("listed");
    let summary: Vec<(&str, InstanceKind, DateTime<Utc>, u64)> = listed
        .iter()
        .map(|i| (i.id.as_str(), i.kind, i.heartbeat_at, i.running_runs))
        .collect();
    assert_eq!(
        summary,
        [
            ("b", InstanceKind::Run, at(1), 0),
            ("a", InstanceKind::Serve, at(10), 2)
        ]
    );
    let lease = Duration::seconds(15);
    assert!(listed[1].is_alive(at(24), lease));
    assert!(!listed[1].is_alive(at(25), lease));

    store.stop_instance("b", at(20)).await.expect("b stops");
    assert!(!store.heartbeat_instance("b", at(21)).await.expect("asks"));
    let stopped = store
        .stop_other_instances(InstanceKind::Serve, "c", at(30))
        .await
        .expect("others stop");
    assert_eq!(stopped, 1, "only a was still going among the servers");
    let recent = store.instances(at(25)).await.expect("listed");
    assert_eq!(
        recent.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        ["a"],
        "b stopped before the window"
    );
    assert_eq!(recent[0].stopped_at, Some(at(30)));
}

async fn a_second_registration_under_the_same_id_is_refused(store: TestStore) {
    store
        .register_instance(&instance("a", InstanceKind::Serve), at(0))
        .await
        .expect("a registers");
    assert!(
        store
            .register_instance(&instance("a", InstanceKind::Run), at(1))
            .await
            .is_err()
    );
}

async fn log_lines_of_a_missing_run_are_left_out_and_the_rest_of_the_batch_is_written(
    store: TestStore,
) {
    let job_id = job(&store).await;
    let run_id = insert(&store, run(job_id, "a")).await;
    let line = |run_id, message: &str| LogLine {
        run_id,
        ts: at(1),
        level: "INFO".into(),
        message: message.into(),
        fields: serde_json::json!({}),
    };
    store
        .write_batch(&WriteBatch {
            logs: vec![line(run_id + 100, "orphan"), line(run_id, "kept")],
            finishes: vec![RunFinish {
                run_id,
                status: RunStatus::Succeeded,
                started_at: Some(at(0)),
                finished_at: at(2),
                duration_ms: Some(2000),
                items_checked: 0,
                items_updated: 0,
                items_total: None,
                error_kind: None,
                error_message: None,
                summary: None,
                retry_at: None,
            }],
            ..WriteBatch::default()
        })
        .await
        .expect("the batch is written");
    let lines = store.run_logs(run_id, None, 10).await.expect("read");
    assert_eq!(
        lines
            .iter()
            .map(|(_, l)| l.message.as_str())
            .collect::<Vec<_>>(),
        ["kept"]
    );
    let finished = store.run(run_id).await.expect("read").expect("exists");
    assert_eq!(finished.status, RunStatus::Succeeded);
}

async fn a_retry_claim_without_a_run_ends_the_chain_once(store: TestStore) {
    let job_id = job(&store).await;
    let failed = insert(&store, run(job_id, "a")).await;
    store
        .write_batch(&WriteBatch {
            finishes: vec![RunFinish {
                run_id: failed,
                status: RunStatus::Retrying,
                started_at: Some(at(0)),
                finished_at: at(1),
                duration_ms: Some(1000),
                items_checked: 0,
                items_updated: 0,
                items_total: None,
                error_kind: Some("retryable".into()),
                error_message: Some("upstream timed out".into()),
                summary: None,
                retry_at: Some(at(30)),
            }],
            ..WriteBatch::default()
        })
        .await
        .expect("finished");
    let drop_retry = RetryClaim {
        failed_run_id: failed,
        expected: at(30),
        run: None,
    };
    let result = store
        .write_batch(&WriteBatch {
            retries: vec![drop_retry.clone(), drop_retry],
            ..WriteBatch::default()
        })
        .await
        .expect("claimed");
    assert_eq!(result.retries, [ClaimResult::Claimed, ClaimResult::Lost]);
    let ended = store.run(failed).await.expect("read").expect("exists");
    assert_eq!((ended.status, ended.retry_at), (RunStatus::Failed, None));
    assert!(store.pending_retries().await.expect("read").is_empty());
}

async fn a_scheduled_slot_has_one_first_attempt_whoever_inserts_it(store: TestStore) {
    let job_id = job(&store).await;
    let scheduled = |instance_id: &str| NewRun {
        trigger: Trigger::Schedule,
        ..run(job_id, instance_id)
    };
    insert(&store, scheduled("a")).await;
    let second = store
        .write_batch(&WriteBatch {
            inserts: vec![scheduled("b")],
            ..WriteBatch::default()
        })
        .await
        .expect("the batch is written");
    assert_eq!(
        second.inserts,
        [ClaimResult::Busy],
        "a second first attempt of the slot is left out"
    );
    // Retries of the slot and manual runs at the same instant are other starts.
    insert(
        &store,
        NewRun {
            attempt: 2,
            ..scheduled("b")
        },
    )
    .await;
    insert(&store, run(job_id, "b")).await;
}

/// The next announcement heard, within 10 s.
async fn next(news: &mut tokio::sync::mpsc::UnboundedReceiver<Announcement>) -> Announcement {
    tokio::time::timeout(std::time::Duration::from_secs(10), news.recv())
        .await
        .expect("an announcement within 10 s")
        .expect("the listener runs")
}

async fn edits_and_pauses_are_announced_to_the_other_instances_when_they_commit(store: TestStore) {
    let job_id = job(&store).await;
    let (heard, mut news) = tokio::sync::mpsc::unbounded_channel();
    let Some(listener) = store.follow_announcements(heard).await.expect("listens") else {
        assert_eq!(
            store.backend,
            crate::support::Backend::Sqlite,
            "only SQLite announces nothing"
        );
        return;
    };
    // Another instance: its own connections to the same database.
    let other = batchboard::store::connect(&store.url)
        .await
        .expect("a second store");
    let record = other
        .set_paused_by(job_id, true, None, "ada", at(1))
        .await
        .expect("paused");
    assert_eq!(
        next(&mut news).await,
        Announcement::JobChanged("copy".to_owned())
    );

    // A refused edit (stale version) announces nothing: the next news is the later pause
    // of another job.
    let stale = batchboard::store::JobEdit {
        overrides: serde_json::Map::new(),
        paused: false,
        next_run_at: None,
        changes: Vec::new(),
    };
    assert!(
        other
            .update_job_overrides(job_id, record.version - 1, &stale, at(2))
            .await
            .is_err()
    );
    let second = JobSettings {
        name: "other".into(),
        handler: "scripted".into(),
        every: Some("1h".into()),
        ..JobSettings::default()
    };
    let jobs = other
        .sync_jobs(
            &[
                JobSettings {
                    name: "copy".into(),
                    handler: "scripted".into(),
                    every: Some("1h".into()),
                    ..JobSettings::default()
                },
                second,
            ],
            at(3),
        )
        .await
        .expect("synced");
    let other_id = jobs.iter().find(|j| j.name == "other").expect("other").id;
    other
        .set_paused_by(other_id, true, None, "ada", at(4))
        .await
        .expect("paused");
    assert_eq!(
        next(&mut news).await,
        Announcement::JobChanged("other".to_owned())
    );
    // A cancel request goes to every instance, naming the run and who asked.
    assert!(
        other
            .announce_cancel(7, Some("ada"))
            .await
            .expect("announced")
    );
    assert_eq!(
        next(&mut news).await,
        Announcement::CancelRun {
            run_id: 7,
            by: Some("ada".to_owned())
        }
    );
    listener.abort();
}

store_suite!(
    edits_and_pauses_are_announced_to_the_other_instances_when_they_commit,
    a_scheduled_slot_has_one_first_attempt_whoever_inserts_it,
    instances_register_beat_count_their_runs_and_stop,
    a_second_registration_under_the_same_id_is_refused,
    log_lines_of_a_missing_run_are_left_out_and_the_rest_of_the_batch_is_written,
    a_retry_claim_without_a_run_ends_the_chain_once,
);
