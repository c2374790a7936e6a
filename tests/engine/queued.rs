//! Runs that wait for a free slot: `queued` while they wait, and records that say when
//! each handler really started.

use std::time::Duration;

use batchboard::scheduler::SchedulerConfig;
use batchboard::store::{RunRecord, RunStatus};
use serde_json::json;

use crate::support::{Engine, config, job, t0};

fn one_slot() -> SchedulerConfig {
    SchedulerConfig {
        max_concurrent_runs: 1,
        ..config()
    }
}

/// Waits (in real time, for the writer) until run `id` reads `status`.
async fn until_status(engine: &Engine, id: i64, status: RunStatus) -> RunRecord {
    until(engine, id, status, chrono::Duration::zero()).await
}

/// Moves the clock on in small steps until run `id` is marked queued: the quarter
/// second a run waits before it is marked counts from whenever its task asked for a
/// slot, which the test does not see.
async fn until_queued(engine: &Engine, id: i64) -> RunRecord {
    until(
        engine,
        id,
        RunStatus::Queued,
        chrono::Duration::milliseconds(50),
    )
    .await
}

async fn until(engine: &Engine, id: i64, status: RunStatus, step: chrono::Duration) -> RunRecord {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let run = engine.run(id).await;
        if run.status == status {
            return run;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "run {id} never became {status}: {run:?}"
        );
        if !step.is_zero() {
            engine.clock.advance(step);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The first run of `job`, once its claim is committed.
async fn until_run(engine: &Engine, job: &str) -> RunRecord {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(run) = engine.runs(job).await.into_iter().next() {
            return run;
        }
        assert!(tokio::time::Instant::now() < deadline, "{job} never ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The only run of `job` so far.
async fn only_run(engine: &Engine, job: &str) -> RunRecord {
    let runs = engine.runs(job).await;
    assert_eq!(runs.len(), 1, "one run of {job}: {runs:?}");
    runs.into_iter().next().expect("one run")
}

#[tokio::test]
async fn with_one_slot_the_second_of_two_due_runs_is_queued_until_the_first_finishes() {
    let sleep_two = json!({"action": "sleep", "secs": 2});
    let mut engine = Engine::start_with(
        &[
            job("alpha", "1h", sleep_two.clone()),
            job("beta", "1h", sleep_two),
        ],
        one_slot(),
    )
    .await;
    engine.advance(3600).await;
    let first_id = engine
        .wait_for(|event| {
            matches!(
                event,
                batchboard::scheduler::SchedulerEvent::RunStarted { .. }
            )
        })
        .await;
    let batchboard::scheduler::SchedulerEvent::RunStarted { job: first, .. } = first_id else {
        unreachable!("filtered above")
    };
    let second = if first == "alpha" { "beta" } else { "alpha" };
    let waiting = only_run(&engine, second).await;

    // Past the moment a waiting run is marked, while the first still runs.
    let queued = until_queued(&engine, waiting.id).await;
    assert_eq!(queued.started_at, None, "a queued run has not started");
    assert_eq!(queued.duration_ms, None);
    assert_eq!(engine.handle.queue_depth(), 1);
    let live = engine.handle.live_runs().get(waiting.id).expect("live");
    assert!(live.is_queued());

    // The first run ends at 2 s; the second starts then and runs its own 2 s.
    let due = t0() + chrono::Duration::hours(1);
    engine.clock.set(due + chrono::Duration::seconds(2));
    engine.handle.sync().await;
    let (first_id, status) = engine.finished(&first).await;
    assert_eq!(status, RunStatus::Succeeded);
    // (Its start may come before the first's finish is committed: the slot is freed first.)
    let started = until_status(&engine, waiting.id, RunStatus::Running).await;
    engine.until_asleep(waiting.id).await;
    engine.advance(2).await;
    let (second_id, status) = engine.finished(second).await;
    assert_eq!((second_id, status), (waiting.id, RunStatus::Succeeded));

    let first_run = engine.run(first_id).await;
    let second_run = engine.run(second_id).await;
    assert_eq!(first_run.started_at, Some(due));
    assert_eq!(first_run.duration_ms, Some(2000));
    let first_finished = first_run.finished_at.expect("finished");
    let second_started = second_run.started_at.expect("started");
    assert_eq!(
        started.started_at,
        Some(second_started),
        "the start mark is the start"
    );
    assert!(
        second_started >= first_finished,
        "the second run started at {second_started}, before the first finished at {first_finished}"
    );
    assert_eq!(second_run.scheduled_for, due);
    assert_eq!(second_run.duration_ms, Some(2000));
    assert_eq!(
        second_run
            .finished_at
            .map(|at| (at - second_started).num_milliseconds()),
        second_run.duration_ms,
        "started + duration = finished"
    );
}

#[tokio::test]
async fn a_queued_run_cancelled_before_it_starts_is_no_attempt() {
    let mut engine = Engine::start_with(
        &[
            job("hog", "1h", json!({"action": "sleep", "secs": 3000})),
            job("later", "90m", json!({"action": "fail"})),
        ],
        one_slot(),
    )
    .await;
    engine.advance(3600).await;
    engine.started("hog").await;
    engine.advance(1800).await;
    let waiting = until_run(&engine, "later").await;
    until_queued(&engine, waiting.id).await;

    engine
        .handle
        .cancel(waiting.id, Some("ann"))
        .expect("a queued run can be cancelled");
    let (id, status) = engine.finished("later").await;
    assert_eq!((id, status), (waiting.id, RunStatus::Cancelled));
    let run = engine.run(id).await;
    assert_eq!(run.started_at, None, "it never started");
    assert_eq!(run.duration_ms, None);
    assert_eq!(run.retry_at, None, "a cancelled run is not retried");
    assert_eq!(
        run.error_message.as_deref(),
        Some("cancelled by ann before it started")
    );
    assert!(engine.handle.live_runs().get(id).is_none());
}

#[tokio::test]
async fn a_run_still_queued_at_shutdown_runs_again_with_the_same_attempt() {
    let jobs = [
        job("hog", "1h", json!({"action": "sleep", "secs": 3000})),
        job("later", "90m", json!({"action": "ok"})),
    ];
    let mut later = jobs[1].clone();
    later.max_attempts = Some(1);
    let jobs = [jobs[0].clone(), later];
    let mut engine = Engine::start_with(&jobs, one_slot()).await;
    engine.advance(3600).await;
    engine.started("hog").await;
    engine.advance(1800).await;
    let waiting = until_run(&engine, "later").await;
    until_queued(&engine, waiting.id).await;

    // The hog outlasts the grace period: both are cancelled; `later` never started.
    let (dir, clock) = engine.stop().await;
    let stopped = {
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let store = batchboard::store::connect(&url).await.expect("opens");
        store.run(waiting.id).await.expect("loads").expect("exists")
    };
    assert_eq!(stopped.status, RunStatus::Interrupted);
    assert_eq!(stopped.started_at, None);
    assert!(stopped.retry_at.is_some(), "it runs again: {stopped:?}");

    // With one attempt allowed, the run that never started still gets its one attempt.
    let mut engine = Engine::boot(dir, clock, &jobs, one_slot()).await;
    let (id, status) = engine.finished("later").await;
    assert_eq!(status, RunStatus::Succeeded);
    let rerun = engine.run(id).await;
    assert_eq!(rerun.attempt, 1, "a run that never started was no attempt");
    assert_eq!(rerun.first_run_id, Some(waiting.id));
}
