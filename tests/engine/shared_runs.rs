//! Shared execution with the real scheduler: two instances on one database, the leader
//! queuing the scheduled fires and both claiming them by their free slots; `forbid`
//! holding across them; a queued run cancelled before anyone claims it.

use std::sync::Arc;
use std::time::Duration;

use batchboard::scheduler::SchedulerEvent;
use batchboard::store::{InstanceKind, NewInstance, RunStatus, Trigger};
use tokio::sync::watch;

use crate::support::{Engine, config, job, t0};

fn instance(name: &str, slots: usize) -> batchboard::scheduler::SchedulerConfig {
    batchboard::scheduler::SchedulerConfig {
        instance_id: name.into(),
        max_concurrent_runs: slots,
        shared_execution: true,
        ..config()
    }
}

#[tokio::test]
async fn every_instance_runs_what_it_has_slots_for_and_forbid_holds_across_them() {
    let jobs: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|name| {
            // No fire comes while the test waits for the lease check (500 s at most).
            job(
                name,
                "10m",
                serde_json::json!({"action": "sleep", "secs": 900}),
            )
        })
        .collect();
    let dir = Arc::new(tempfile::tempdir().expect("a temporary directory"));
    let clock = batchboard::clock::ManualClock::new(t0());
    let mut leader = Engine::boot(
        Arc::clone(&dir),
        clock.clone(),
        &jobs,
        instance("leader", 1),
    )
    .await;
    let (_lease, not_leading) = watch::channel(None);
    let mut follower = Engine::boot_following(
        Arc::clone(&dir),
        clock.clone(),
        &jobs,
        instance("follower", 2),
        Some(not_leading),
    )
    .await;

    // Both are alive for the whole test, as their heartbeats would keep them.
    for (id, pid) in [("leader", 1), ("follower", 2)] {
        let me = NewInstance {
            id: id.into(),
            kind: InstanceKind::Serve,
            host: "box".into(),
            pid,
        };
        leader
            .store
            .register_instance(&me, t0())
            .await
            .expect("registers");
        let beat = t0() + chrono::Duration::days(1);
        leader
            .store
            .heartbeat_instance(id, beat)
            .await
            .expect("beats");
    }

    // The leader runs one fire in as many as there are live instances itself, once its
    // lease check has seen them.
    for _ in 0..100 {
        leader.advance(5).await;
        if leader.handle.instances_sharing() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(leader.handle.instances_sharing(), 2);

    // All three come due at once. Whoever looks first, the leader has one slot and the
    // follower two, so each runs what it has slots for. SQLite announces nothing, so the
    // follower is told by hand, as PostgreSQL's announcement would tell it.
    leader.advance(600).await;
    leader
        .wait_for(|event| matches!(event, SchedulerEvent::RunStarted { .. }))
        .await;
    let mut started = 0;
    for _ in 0..100 {
        follower.handle.wake_claimer();
        let heard = tokio::time::timeout(Duration::from_millis(100), follower.events.recv()).await;
        if let Ok(Ok(SchedulerEvent::RunStarted { .. })) = heard {
            started += 1;
            if started == 2 {
                break;
            }
        }
    }
    let mut runs = Vec::new();
    for name in ["a", "b", "c"] {
        runs.push(leader.runs(name).await);
    }
    assert_eq!(started, 2, "the follower ran two: {runs:#?}");
    let mut by_instance = Vec::new();
    for (name, runs) in ["a", "b", "c"].iter().zip(runs) {
        assert_eq!(runs.len(), 1, "{name}: {runs:#?}");
        assert_eq!(
            (runs[0].status, runs[0].trigger),
            (RunStatus::Running, Trigger::Schedule)
        );
        by_instance.push(runs[0].instance_id.clone());
    }
    by_instance.sort();
    assert_eq!(by_instance, ["follower", "follower", "leader"]);

    // The next fires find their jobs' runs going, two of them on the other instance,
    // which the leader knows only through the database: each is recorded as skipped.
    leader.advance(600).await;
    for _ in 0..3 {
        leader
            .wait_for(|event| matches!(event, SchedulerEvent::FireSkipped { .. }))
            .await;
    }
    for name in ["a", "b", "c"] {
        let statuses: Vec<RunStatus> = leader.runs(name).await.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [RunStatus::Running, RunStatus::Skipped], "{name}");
    }
    follower.stop().await;
    leader.stop().await;
}

#[tokio::test]
async fn a_replace_fire_the_leader_runs_itself_still_cancels_older_runs_queued_for_anyone() {
    let replace = batchboard::job::JobSettings {
        concurrency: Some("replace".into()),
        ..job("tick", "1m", serde_json::json!({"action": "ok"}))
    };
    let dir = Arc::new(tempfile::tempdir().expect("a temporary directory"));
    let clock = batchboard::clock::ManualClock::new(t0());
    // Alone, the leader runs every fire itself.
    let mut leader = Engine::boot(Arc::clone(&dir), clock, &[replace], instance("leader", 4)).await;
    let job_id = leader
        .store
        .job_by_name("tick")
        .await
        .expect("loads")
        .expect("exists")
        .id;
    // An older run of the job, queued for any instance and not claimed (its start is
    // far off, so nobody claims it during the test).
    let later = t0() + chrono::Duration::days(1);
    let older = batchboard::store::NewRun {
        job_id,
        trigger: Trigger::Manual,
        attempt: 1,
        first_run_id: None,
        status: RunStatus::Queued,
        scheduled_for: t0(),
        started_at: later,
        finished_at: None,
        error_kind: None,
        error_message: None,
        instance_id: batchboard::store::UNCLAIMED.into(),
        exclusive: false,
    };
    let written = leader
        .store
        .write_batch(&batchboard::store::WriteBatch {
            inserts: vec![older],
            ..Default::default()
        })
        .await
        .expect("written");
    let older = written.inserts[0].run_id().expect("inserted");

    leader.advance(60).await;
    leader.finished("tick").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let run = leader.run(older).await;
        if run.status == RunStatus::Cancelled {
            assert_eq!(
                run.error_message.as_deref(),
                Some("cancelled: replaced by a newer run")
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the older run was not replaced: {run:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    leader.stop().await;
}
