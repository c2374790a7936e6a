//! The engine under faults on a real SQLite file: a database that is locked by another
//! process, writes it refuses, a job removed or disabled while its retry waits. Faults are
//! real: a second connection holding the write lock, or a trigger refusing an update.

use std::time::Duration;

use batchboard::job::JobSettings;
use batchboard::scheduler::{JobPatch, SchedulerEvent};
use batchboard::store::writer::Writer;
use batchboard::store::{LogLine, NewRun, RunStatus, Trigger};
use chrono::DateTime;
use chrono::Utc;
use sqlx::{Connection as _, SqliteConnection};

use crate::support::{Engine, config, job, open_store, t0};

fn enabled(on: bool) -> JobPatch {
    JobPatch::default()
        .with("enabled", on)
        .expect("enabled is a setting")
}

/// A connection of its own to the engine's database file, as another process would have.
async fn second_connection(engine: &Engine) -> SqliteConnection {
    let url = format!("sqlite://{}", engine.dir.path().join("test.db").display());
    SqliteConnection::connect(&url)
        .await
        .expect("a second connection opens")
}

/// Makes the database refuse every change of a job's next fire (its fire claims and
/// schedule writes) until [`accept_claims`].
async fn refuse_claims(db: &mut SqliteConnection) {
    sqlx::query(
        "CREATE TRIGGER refuse_claims BEFORE UPDATE OF next_run_at ON jobs \
         BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
    )
    .execute(db)
    .await
    .expect("the trigger is created");
}

async fn accept_claims(db: &mut SqliteConnection) {
    sqlx::query("DROP TRIGGER refuse_claims")
        .execute(db)
        .await
        .expect("the trigger is dropped");
}

fn failing(name: &str) -> JobSettings {
    JobSettings {
        max_attempts: Some(3),
        backoff: Some("10s".into()),
        max_backoff: Some("10s".into()),
        ..job(name, "1h", serde_json::json!({"action": "fail"}))
    }
}

#[tokio::test]
async fn a_finish_written_while_another_process_holds_the_lock_waits_for_it_and_is_not_lost() {
    let mut engine = Engine::start(&[job(
        "copy",
        "10s",
        serde_json::json!({"action": "sleep", "secs": 5}),
    )])
    .await;
    engine.advance(10).await;
    let run_id = engine.started("copy").await;

    // Another process takes the write lock for longer than the store's busy timeout
    // (5 s), so the batch with the run's finish fails at least once.
    let mut other = second_connection(&engine).await;
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut other)
        .await
        .expect("the lock is taken");
    engine.clock.advance(chrono::Duration::seconds(5));
    tokio::time::sleep(Duration::from_millis(5_500)).await;
    assert_eq!(engine.run(run_id).await.status, RunStatus::Running);
    sqlx::query("COMMIT")
        .execute(&mut other)
        .await
        .expect("the lock is released");

    let (finished, status) = engine.finished("copy").await;
    assert_eq!((finished, status), (run_id, RunStatus::Succeeded));
    let runs = engine.runs("copy").await;
    assert_eq!(runs.len(), 1, "one fire, one run: {runs:#?}");
    assert_eq!(runs[0].status, RunStatus::Succeeded);
    engine.stop().await;
}

#[tokio::test]
async fn a_write_the_database_refuses_fails_alone_and_the_rest_of_its_batch_is_written() {
    let store = open_store().await;
    let jobs = store
        .sync_jobs(&[job("a", "1h", serde_json::json!({"action": "ok"}))], t0())
        .await
        .expect("the job is saved");
    let shared = store.store.clone();
    let (writer, task) = Writer::start(shared.clone());
    let run = |job_id| NewRun {
        job_id,
        trigger: Trigger::Manual,
        attempt: 1,
        first_run_id: None,
        status: RunStatus::Running,
        scheduled_for: t0(),
        started_at: t0(),
        finished_at: None,
        error_kind: None,
        error_message: None,
        instance_id: "test".into(),
        exclusive: false,
    };
    let job_id = jobs[0].id;
    // All sent before the writer task first runs (this runtime has one thread), so they
    // are one batch; the run of a job that does not exist breaks its foreign key.
    let (first, refused, second, third) = tokio::join!(
        writer.insert_run(run(job_id)),
        writer.insert_run(run(job_id + 1000)),
        writer.insert_run(run(job_id)),
        writer.insert_run(run(job_id)),
    );
    assert!(refused.is_err(), "the run of a missing job is refused");
    let ids = [first, second, third].map(|inserted| {
        inserted
            .expect("the other runs are written")
            .run_id()
            .expect("none is exclusive")
    });
    for id in ids {
        let stored = shared
            .run(id)
            .await
            .expect("reads")
            .expect("the run exists");
        assert_eq!(stored.job_id, job_id);
    }
    drop(writer);
    task.await.expect("the writer ends");
}

#[tokio::test]
async fn log_lines_of_a_run_that_is_gone_are_dropped_without_failing_their_batch() {
    let store = open_store().await;
    let jobs = store
        .sync_jobs(&[job("a", "1h", serde_json::json!({"action": "ok"}))], t0())
        .await
        .expect("the job is saved");
    let shared = store.store.clone();
    let (writer, task) = Writer::start(shared.clone());
    let run_id = writer
        .insert_run(NewRun {
            job_id: jobs[0].id,
            trigger: Trigger::Manual,
            attempt: 1,
            first_run_id: None,
            status: RunStatus::Running,
            scheduled_for: t0(),
            started_at: t0(),
            finished_at: None,
            error_kind: None,
            error_message: None,
            instance_id: "test".into(),
            exclusive: false,
        })
        .await
        .expect("the run is written")
        .run_id()
        .expect("it is not exclusive");
    let line = |run_id, message: &str| LogLine {
        run_id,
        ts: t0(),
        level: "INFO".into(),
        message: message.into(),
        fields: serde_json::json!({}),
    };
    writer.log(line(run_id + 1, "from a pruned run"));
    writer.log(line(run_id, "kept"));
    // The lines wait in the channel and go into the mark's batch.
    writer
        .mark_run(batchboard::store::RunMark {
            run_id,
            status: RunStatus::Running,
            started_at: Some(t0()),
        })
        .await
        .expect("the batch with the orphan line is written");
    let lines = shared.run_logs(run_id, None, 10).await.expect("logs load");
    let messages: Vec<&str> = lines.iter().map(|(_, l)| l.message.as_str()).collect();
    assert_eq!(messages, ["kept"]);
    drop(writer);
    task.await.expect("the writer ends");
}

/// The next `ClaimRefused` event of `job`: how many refusals in a row, and when the
/// claim is tried again.
async fn refusal(engine: &mut Engine, job: &str) -> (u32, DateTime<Utc>) {
    match engine
        .wait_for(|event| matches!(event, SchedulerEvent::ClaimRefused { job: j, .. } if j == job))
        .await
    {
        SchedulerEvent::ClaimRefused {
            refusals, retry_at, ..
        } => (refusals, retry_at),
        _ => unreachable!("filtered above"),
    }
}

#[tokio::test]
async fn a_refused_fire_claim_is_tried_again_with_a_doubling_wait_and_then_runs_its_slot() {
    let mut engine =
        Engine::start(&[job("tick", "10s", serde_json::json!({"action": "ok"}))]).await;
    let mut db = second_connection(&engine).await;
    refuse_claims(&mut db).await;

    engine.advance(10).await;
    let slot = t0() + chrono::Duration::seconds(10);
    let mut tries = vec![refusal(&mut engine, "tick").await];
    for _ in 0..3 {
        let (_, retry_at) = *tries.last().expect("one try");
        engine.clock.set(retry_at);
        engine.handle.sync().await;
        tries.push(refusal(&mut engine, "tick").await);
    }
    let waits: Vec<(u32, i64)> = tries
        .windows(2)
        .map(|pair| (pair[1].0, (pair[1].1 - pair[0].1).num_seconds()))
        .collect();
    assert_eq!(tries[0], (1, slot + chrono::Duration::seconds(1)));
    assert_eq!(waits, [(2, 2), (3, 4), (4, 8)]);
    // Nothing else is tried before the next wait is over.
    engine.advance(7).await;
    assert!(
        engine.events.try_recv().is_err(),
        "no claim is tried during the wait"
    );

    accept_claims(&mut db).await;
    engine.advance(1).await;
    let run_id = engine.started("tick").await;
    let run = engine.run(run_id).await;
    assert_eq!(
        (run.trigger, run.scheduled_for),
        (Trigger::CatchUp, slot),
        "the refused slot runs once, late"
    );
    engine.stop().await;
}

#[tokio::test]
async fn a_reload_whose_schedule_write_fails_keeps_the_job_firing_on_its_stored_slot() {
    let mut engine =
        Engine::start(&[job("tick", "10s", serde_json::json!({"action": "ok"}))]).await;
    let mut db = second_connection(&engine).await;
    // The schedule changed in the database; the reload wants to write a new next fire.
    sqlx::query("UPDATE jobs SET overrides = '{\"every\":\"7s\"}' WHERE name = 'tick'")
        .execute(&mut db)
        .await
        .expect("the override is written");
    refuse_claims(&mut db).await;
    let reloaded = engine.handle.reload("tick").await;
    assert!(reloaded.is_err(), "the reload reports the failed write");
    accept_claims(&mut db).await;

    engine.advance(10).await;
    let run_id = engine.started("tick").await;
    assert_eq!(
        engine.run(run_id).await.scheduled_for,
        t0() + chrono::Duration::seconds(10),
        "the job still fires at the slot the store holds"
    );
    engine.stop().await;
}

/// Run `run_id` once its pending retry is gone (the drop is written in the background),
/// within 10 real seconds.
async fn retry_dropped(engine: &Engine, run_id: i64) -> batchboard::store::RunRecord {
    let dropped = async {
        loop {
            let run = engine.run(run_id).await;
            if run.retry_at.is_none() {
                return run;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), dropped)
        .await
        .expect("the retry is dropped within 10 s")
}

#[tokio::test]
async fn the_pending_retry_of_a_disabled_job_is_dropped_and_does_not_fire_when_it_returns() {
    let mut engine = Engine::start(&[failing("flaky")]).await;
    engine.advance(3600).await;
    let (first, status) = engine.finished("flaky").await;
    assert_eq!(status, RunStatus::Retrying);
    let version = engine
        .store
        .job_by_name("flaky")
        .await
        .expect("loads")
        .expect("exists")
        .version;
    let disable = enabled(false);
    let disabled = engine
        .handle
        .edit_job("flaky", disable, version, "ada")
        .await
        .expect("the job is disabled");

    engine.advance(10).await;
    let dropped = retry_dropped(&engine, first).await;
    assert_eq!(
        (dropped.status, dropped.retry_at),
        (RunStatus::Failed, None),
        "the chain ends with the failed attempt"
    );

    let enable = enabled(true);
    engine
        .handle
        .edit_job("flaky", enable, disabled.version, "ada")
        .await
        .expect("the job is enabled again");
    engine.advance(10).await;
    assert_eq!(engine.runs("flaky").await.len(), 1, "no retry fired");
    engine.stop().await;
}

#[tokio::test]
async fn the_pending_retry_of_a_removed_job_is_dropped_at_its_time_and_not_run_when_it_returns() {
    let mut engine = Engine::start(&[failing("flaky")]).await;
    engine.advance(3600).await;
    let (first, status) = engine.finished("flaky").await;
    assert_eq!(status, RunStatus::Retrying);
    let (dir, clock) = engine.stop().await;

    let engine = Engine::boot(dir, clock, &[], config()).await;
    engine.advance(10).await;
    let dropped = retry_dropped(&engine, first).await;
    assert_eq!(dropped.status, RunStatus::Failed);
    let (dir, clock) = engine.stop().await;

    let engine = Engine::boot(dir, clock, &[failing("flaky")], config()).await;
    engine.advance(1).await;
    assert_eq!(engine.runs("flaky").await.len(), 1, "no retry fired");
    engine.stop().await;
}

#[tokio::test]
async fn re_enabling_a_job_whose_slot_passed_follows_its_misfire_policy() {
    let skip = JobSettings {
        misfire: Some("skip".into()),
        ..job("nightly", "1h", serde_json::json!({"action": "ok"}))
    };
    let engine = Engine::start(std::slice::from_ref(&skip)).await;
    let (dir, clock) = engine.stop().await;
    // Disabled in the file while its stored next fire (t0 + 1h) passes.
    let disabled = JobSettings {
        enabled: Some(false),
        ..skip.clone()
    };
    clock.advance(chrono::Duration::minutes(90));
    let engine = Engine::boot(dir, clock, &[disabled], config()).await;
    let stored = engine
        .store
        .job_by_name("nightly")
        .await
        .expect("loads")
        .expect("exists");
    assert_eq!(stored.next_run_at, Some(t0() + chrono::Duration::hours(1)));

    let enable = enabled(true);
    let enabled = engine
        .handle
        .edit_job("nightly", enable, stored.version, "ada")
        .await
        .expect("the job is enabled");
    assert_eq!(
        enabled.next_run_at,
        Some(t0() + chrono::Duration::hours(2)),
        "skip waits for the next slot instead of firing the missed one"
    );
    engine.advance(1).await;
    assert!(engine.runs("nightly").await.is_empty());
    engine.stop().await;
}

#[tokio::test]
async fn the_runs_of_an_instance_whose_lease_ran_out_are_interrupted_and_retried_by_policy() {
    let settings = JobSettings {
        max_attempts: Some(2),
        backoff: Some("1s".into()),
        max_backoff: Some("1s".into()),
        ..job("copy", "1h", serde_json::json!({"action": "ok"}))
    };
    let mut engine = Engine::start(&[settings]).await;
    let ghost = batchboard::store::NewInstance {
        id: "ghost".into(),
        kind: batchboard::store::InstanceKind::Run,
        host: "elsewhere".into(),
        pid: 7,
    };
    engine
        .store
        .register_instance(&ghost, t0())
        .await
        .expect("the other instance registers");
    let job_id = engine
        .store
        .job_by_name("copy")
        .await
        .expect("loads")
        .expect("exists")
        .id;
    let (writer, writer_task) = Writer::start(engine.store.clone());
    let orphan = writer
        .insert_run(NewRun {
            job_id,
            trigger: Trigger::Manual,
            attempt: 1,
            first_run_id: None,
            status: RunStatus::Running,
            scheduled_for: t0(),
            started_at: t0(),
            finished_at: None,
            error_kind: None,
            error_message: None,
            instance_id: "ghost".into(),
            exclusive: false,
        })
        .await
        .expect("its run is written")
        .run_id()
        .expect("it is not exclusive");
    drop(writer);
    writer_task.await.expect("the writer ends");

    // Within its lease the run is the other instance's.
    engine.advance(10).await;
    assert_eq!(engine.run(orphan).await.status, RunStatus::Running);

    engine.advance(10).await;
    let interrupted = async {
        loop {
            let run = engine.run(orphan).await;
            if run.status != RunStatus::Running {
                return run;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let interrupted = tokio::time::timeout(Duration::from_secs(10), interrupted)
        .await
        .expect("the run is interrupted within 10 s");
    assert_eq!(interrupted.status, RunStatus::Interrupted);
    assert!(interrupted.retry_at.is_some(), "a retry is due");

    engine.advance(2).await;
    let retry = engine.started("copy").await;
    let retry = engine.run(retry).await;
    assert_eq!(
        (retry.trigger, retry.attempt, retry.first_run_id),
        (Trigger::Retry, 2, Some(orphan))
    );
    engine.stop().await;
}

#[tokio::test]
async fn the_scheduler_keeps_dispatching_while_a_pause_waits_for_the_database() {
    let engine = Engine::start(&[
        job("slow-to-pause", "1h", serde_json::json!({"action": "ok"})),
        job("tick", "10s", serde_json::json!({"action": "ok"})),
    ])
    .await;
    // Another process holds the write lock: the pause's write waits for it.
    let mut other = second_connection(&engine).await;
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut other)
        .await
        .expect("the lock is taken");
    // Polled once, the pause is on the scheduler's queue, ahead of what follows.
    let mut pause = Box::pin(engine.handle.pause("slow-to-pause"));
    assert!(futures::poll!(&mut pause).is_pending());

    // The scheduler task still answers at once: it does not wait on that write.
    engine.clock.advance(chrono::Duration::seconds(10));
    tokio::time::timeout(Duration::from_secs(1), engine.handle.sync())
        .await
        .expect("the scheduler answers while the pause is being saved");
    assert!(
        futures::poll!(&mut pause).is_pending(),
        "the pause is still waiting for the lock"
    );

    sqlx::query("COMMIT")
        .execute(&mut other)
        .await
        .expect("the lock is released");
    pause
        .await
        .expect("the pause is saved once the lock is free");
    let paused = engine
        .store
        .job_by_name("slow-to-pause")
        .await
        .expect("loads")
        .expect("exists");
    assert!(paused.paused);
    engine.stop().await;
}

#[tokio::test]
async fn a_retry_that_an_instance_now_gone_was_to_start_is_started_by_the_leader_once() {
    let settings = JobSettings {
        max_attempts: Some(3),
        ..job("copy", "1h", serde_json::json!({"action": "ok"}))
    };
    let mut engine = Engine::start(&[settings]).await;
    let ghost = batchboard::store::NewInstance {
        id: "ghost".into(),
        kind: batchboard::store::InstanceKind::Serve,
        host: "elsewhere".into(),
        pid: 7,
    };
    engine
        .store
        .register_instance(&ghost, t0())
        .await
        .expect("the other instance registers");
    let job_id = engine
        .store
        .job_by_name("copy")
        .await
        .expect("loads")
        .expect("exists")
        .id;
    // The other instance ran an attempt that failed after this one started, and holds
    // its retry, due in ten seconds.
    let (writer, writer_task) = Writer::start(engine.store.clone());
    let failed = writer
        .insert_run(NewRun {
            job_id,
            trigger: Trigger::Manual,
            attempt: 1,
            first_run_id: None,
            status: RunStatus::Running,
            scheduled_for: t0(),
            started_at: t0(),
            finished_at: None,
            error_kind: None,
            error_message: None,
            instance_id: "ghost".into(),
            exclusive: false,
        })
        .await
        .expect("its run is written")
        .run_id()
        .expect("it is not exclusive");
    let retry_at = t0() + chrono::Duration::seconds(10);
    writer
        .finish_run(batchboard::store::RunFinish {
            run_id: failed,
            status: RunStatus::Retrying,
            started_at: Some(t0()),
            finished_at: t0(),
            duration_ms: Some(0),
            items_checked: 0,
            items_updated: 0,
            items_total: None,
            error_kind: Some("retryable".into()),
            error_message: Some("upstream timed out".into()),
            summary: None,
            retry_at: Some(retry_at),
        })
        .await
        .expect("its failure is written");
    drop(writer);
    writer_task.await.expect("the writer ends");

    // While the other instance lives, its retry is its own; once its lease ran out, the
    // leader takes it over and starts it when it is due, once.
    engine.advance(5).await;
    engine.advance(6).await;
    assert_eq!(
        engine.runs("copy").await.len(),
        1,
        "a live instance's retry is left to it"
    );
    engine.advance(5).await;
    let retry = engine.started("copy").await;
    let retry = engine.run(retry).await;
    assert_eq!(
        (retry.trigger, retry.attempt, retry.first_run_id),
        (Trigger::Retry, 2, Some(failed))
    );
    engine.finished("copy").await;
    for _ in 0..4 {
        engine.advance(5).await;
    }
    assert_eq!(engine.runs("copy").await.len(), 2, "the retry ran once");
    engine.stop().await;
}

#[tokio::test]
async fn a_one_off_run_of_a_forbid_job_going_elsewhere_is_refused_by_the_database() {
    let engine = Engine::start(&[job("copy", "1h", serde_json::json!({"action": "ok"}))]).await;
    let job_id = engine
        .store
        .job_by_name("copy")
        .await
        .expect("loads")
        .expect("exists")
        .id;
    // A run of the job going on another instance, which this process knows nothing of.
    let (writer, writer_task) = Writer::start(engine.store.clone());
    writer
        .insert_run(NewRun {
            job_id,
            trigger: Trigger::Schedule,
            attempt: 1,
            first_run_id: None,
            status: RunStatus::Running,
            scheduled_for: t0(),
            started_at: t0(),
            finished_at: None,
            error_kind: None,
            error_message: None,
            instance_id: "elsewhere".into(),
            exclusive: true,
        })
        .await
        .expect("its run is written")
        .run_id()
        .expect("nothing else goes");
    drop(writer);
    writer_task.await.expect("the writer ends");

    // What `batchboard run copy` does.
    let (writer, writer_task) = Writer::start(engine.store.clone());
    let parts = batchboard::scheduler::SchedulerParts {
        store: engine.store.clone(),
        writer,
        registry: batchboard::job::Registry::builder()
            .handler("scripted", crate::support::Scripted::default())
            .build(),
        clock: engine.clock.shared(),
        config: config(),
        leading: None,
    };
    let refused = batchboard::scheduler::run_once(parts, "copy")
        .await
        .expect_err("a second run of a forbid job is refused");
    writer_task.await.expect("the writer ends");
    assert!(
        refused.to_string().contains("already running"),
        "{refused:#}"
    );
    assert_eq!(engine.runs("copy").await.len(), 1, "nothing was recorded");
    engine.stop().await;
}
