//! The scheduler, on a real SQLite file with a manual clock.

use batchboard::scheduler::{CommandError, SchedulerEvent};
use batchboard::store::{RunStatus, Trigger};
use serde_json::json;

use crate::support::{Engine, config, job, t0};

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

#[tokio::test]
async fn an_interval_job_fires_at_fixed_rate_without_drift() {
    // Each run takes 3 s; the next fire is still counted from the previous slot.
    let mut engine =
        Engine::start(&[job("tick", "10s", json!({"action": "sleep", "secs": 3}))]).await;
    for slot in 1..=3 {
        engine.clock.set(t0() + secs(10 * slot));
        engine.handle.sync().await;
        let run_id = engine.started("tick").await;
        engine.advance(3).await;
        let (finished, status) = engine.finished("tick").await;
        assert_eq!((finished, status), (run_id, RunStatus::Succeeded));
        let run = engine.run(run_id).await;
        assert_eq!(run.scheduled_for, t0() + secs(10 * slot));
        assert_eq!(run.started_at, Some(t0() + secs(10 * slot)));
        assert_eq!(run.duration_ms, Some(3000));
    }
    let runs = engine.runs("tick").await;
    assert_eq!(runs.len(), 3);
    assert!(
        runs.iter()
            .all(|run| run.trigger == Trigger::Schedule && run.attempt == 1)
    );
    engine.stop().await;
}

#[tokio::test]
async fn nothing_fires_before_its_time() {
    let engine = Engine::start(&[job("tick", "1m", json!({"action": "ok"}))]).await;
    engine.advance(59).await;
    assert!(engine.runs("tick").await.is_empty());
    let record = engine
        .store
        .job_by_name("tick")
        .await
        .expect("loads")
        .expect("exists");
    assert_eq!(record.next_run_at, Some(t0() + secs(60)));
    engine.stop().await;
}

#[tokio::test]
async fn a_successful_run_records_counts_summary_and_log() {
    let mut engine = Engine::start(&[job("tick", "10s", json!({"action": "ok"}))]).await;
    engine.advance(10).await;
    let (run_id, status) = engine.finished("tick").await;
    assert_eq!(status, RunStatus::Succeeded);
    let run = engine.run(run_id).await;
    assert_eq!(run.items_checked, 1);
    assert_eq!(run.summary.as_deref(), Some("fine"));
    assert_eq!(run.finished_at, Some(t0() + secs(10)));
    let logs = engine
        .store
        .run_logs(run_id, None, 100)
        .await
        .expect("logs load");
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(logs[0].1.message, "checked one item");
    assert_eq!(logs[0].1.level, "INFO");
    assert_eq!(logs[0].1.fields["attempt"], json!(1));
    engine.stop().await;
}

#[tokio::test]
async fn forbid_records_an_overlapping_fire_as_skipped() {
    let mut engine =
        Engine::start(&[job("slow", "10s", json!({"action": "sleep", "secs": 25}))]).await;
    engine.advance(10).await;
    let first = engine.started("slow").await;
    engine.advance(10).await;
    engine
        .wait_for(|event| matches!(event, SchedulerEvent::FireSkipped { .. }))
        .await;
    engine.advance(5).await; // t0 + 25
    engine.advance(10).await; // t0 + 35: the first run is over at 35
    let (finished, status) = engine.finished("slow").await;
    assert_eq!((finished, status), (first, RunStatus::Succeeded));
    let runs = engine.runs("slow").await;
    let skipped: Vec<_> = runs
        .iter()
        .filter(|run| run.status == RunStatus::Skipped)
        .collect();
    assert!(!skipped.is_empty());
    assert_eq!(skipped[0].scheduled_for, t0() + secs(20));
    assert_eq!(skipped[0].error_kind.as_deref(), Some("overlap"));
    assert!(
        skipped[0]
            .error_message
            .as_deref()
            .is_some_and(|m| m.contains("still going"))
    );
    engine.stop().await;
}

#[tokio::test]
async fn allow_lets_runs_overlap() {
    let mut slow = job("slow", "10s", json!({"action": "sleep", "secs": 15}));
    slow.concurrency = Some("allow".into());
    let mut engine = Engine::start(&[slow]).await;
    engine.advance(10).await;
    let first = engine.started("slow").await;
    engine.advance(10).await;
    let second = engine.started("slow").await;
    assert_ne!(first, second);
    assert_eq!(engine.handle.live_runs().len(), 2);
    engine.advance(5).await; // t0 + 25: the first is done
    assert_eq!(engine.finished("slow").await, (first, RunStatus::Succeeded));
    engine.stop().await;
}

#[tokio::test]
async fn replace_cancels_the_running_run_for_the_new_one() {
    let mut slow = job("slow", "10s", json!({"action": "sleep", "secs": 25}));
    slow.concurrency = Some("replace".into());
    let mut engine = Engine::start(&[slow]).await;
    engine.advance(10).await;
    let first = engine.started("slow").await;
    engine.advance(10).await;
    let (cancelled, status) = engine.finished("slow").await;
    assert_eq!((cancelled, status), (first, RunStatus::Cancelled));
    let run = engine.run(first).await;
    assert!(
        run.error_message
            .as_deref()
            .is_some_and(|m| m.contains("replaced")),
        "{run:?}"
    );
    let live = engine.handle.live_runs().all();
    assert_eq!(live.len(), 1, "only the new run is going");
    assert_ne!(live[0].run_id, first);
    assert_eq!(live[0].job, "slow");
    engine.stop().await;
}

#[tokio::test]
async fn a_run_over_its_timeout_is_cancelled_and_marked_timed_out() {
    let mut slow = job("slow", "1h", json!({"action": "sleep", "secs": 600}));
    slow.timeout = Some("5s".into());
    slow.max_attempts = Some(1);
    let mut engine = Engine::start(&[slow]).await;
    engine.advance(3600).await;
    let run_id = engine.started("slow").await;
    engine.advance(5).await;
    let (finished, status) = engine.finished("slow").await;
    assert_eq!(finished, run_id);
    // The only attempt timed out: no retry is left, so the run is dead.
    assert_eq!(status, RunStatus::Dead);
    let run = engine.run(run_id).await;
    assert_eq!(run.error_kind.as_deref(), Some("timeout"));
    assert_eq!(run.duration_ms, Some(5000));
    engine.stop().await;
}

#[tokio::test]
async fn a_handler_that_ignores_cancellation_is_abandoned_after_the_grace_period() {
    let mut stubborn = job("stubborn", "1h", json!({"action": "hang"}));
    stubborn.timeout = Some("5s".into());
    stubborn.max_attempts = Some(2);
    stubborn.backoff = Some("1m".into());
    let mut engine = Engine::start(&[stubborn]).await;
    engine.advance(3600).await;
    let run_id = engine.started("stubborn").await;
    engine.advance(5).await; // timeout: cancelled, but the handler does not stop
    engine.advance(1).await;
    assert!(
        engine.handle.live_runs().get(run_id).is_some(),
        "still within the grace period"
    );
    engine.advance(1).await; // the 2 s grace is over
    let (finished, status) = engine.finished("stubborn").await;
    assert_eq!((finished, status), (run_id, RunStatus::TimedOut));
    let run = engine.run(run_id).await;
    assert!(
        run.error_message
            .as_deref()
            .is_some_and(|m| m.contains("abandoned")),
        "{run:?}"
    );
    assert!(
        run.retry_at.is_some(),
        "a timed-out attempt is retried by policy"
    );
    engine.stop().await;
}

#[tokio::test]
async fn failures_are_retried_with_exponential_backoff_until_dead() {
    let mut flaky = job("flaky", "1h", json!({"action": "fail"}));
    flaky.max_attempts = Some(3);
    flaky.backoff = Some("10s".into());
    flaky.max_backoff = Some("15s".into());
    let mut engine = Engine::start(&[flaky]).await;
    engine.advance(3600).await;
    let (first, status) = engine.finished("flaky").await;
    assert_eq!(status, RunStatus::Retrying);
    let run = engine.run(first).await;
    let failed_at = run.finished_at.expect("finished");
    let retry_at = run.retry_at.expect("a retry is scheduled");
    // Attempt 1 → 10 s, shortened by jitter by at most a fifth.
    assert!(
        retry_at > failed_at + secs(7) && retry_at <= failed_at + secs(10),
        "{retry_at} after {failed_at}"
    );

    engine.clock.set(retry_at);
    engine.handle.sync().await;
    let (second, status) = engine.finished("flaky").await;
    assert_eq!(status, RunStatus::Retrying);
    let run = engine.run(second).await;
    assert_eq!(
        (run.attempt, run.trigger, run.first_run_id),
        (2, Trigger::Retry, Some(first))
    );
    assert_eq!(run.scheduled_for, retry_at);
    // Attempt 2 → 20 s, capped at 15 s.
    let next_retry = run.retry_at.expect("a second retry");
    assert!(
        next_retry > retry_at + secs(11) && next_retry <= retry_at + secs(15),
        "{next_retry}"
    );

    engine.clock.set(next_retry);
    engine.handle.sync().await;
    let (third, status) = engine.finished("flaky").await;
    assert_eq!(status, RunStatus::Dead);
    let run = engine.run(third).await;
    assert_eq!(
        (run.attempt, run.first_run_id, run.retry_at),
        (3, Some(first), None)
    );
    engine.stop().await;
}

#[tokio::test]
async fn a_fatal_error_is_not_retried() {
    let mut engine = Engine::start(&[job("broken", "1h", json!({"action": "fatal"}))]).await;
    engine.advance(3600).await;
    let (run_id, status) = engine.finished("broken").await;
    assert_eq!(status, RunStatus::Failed);
    let run = engine.run(run_id).await;
    assert_eq!(
        (run.error_kind.as_deref(), run.retry_at),
        (Some("fatal"), None)
    );
    assert_eq!(run.error_message.as_deref(), Some("the file is gone"));
    engine.stop().await;
}

#[tokio::test]
async fn a_panicking_handler_fails_the_run_and_not_the_scheduler() {
    let mut engine = Engine::start(&[job("boom", "1h", json!({"action": "panic"}))]).await;
    engine.advance(3600).await;
    let (run_id, status) = engine.finished("boom").await;
    assert_eq!(status, RunStatus::Failed);
    let run = engine.run(run_id).await;
    assert!(
        run.error_message
            .as_deref()
            .is_some_and(|m| m.contains("scripted panic")),
        "{run:?}"
    );
    engine.advance(3600).await;
    assert_eq!(
        engine.finished("boom").await.1,
        RunStatus::Failed,
        "the scheduler still fires"
    );
    engine.stop().await;
}

#[tokio::test]
async fn a_rate_limit_retry_waits_for_retry_after() {
    let mut limited = job(
        "limited",
        "1h",
        json!({"action": "rate_limited", "retry_after_secs": 100}),
    );
    limited.backoff = Some("10s".into());
    let mut engine = Engine::start(&[limited]).await;
    engine.advance(3600).await;
    let (run_id, status) = engine.finished("limited").await;
    assert_eq!(status, RunStatus::Retrying);
    let run = engine.run(run_id).await;
    assert_eq!(run.error_kind.as_deref(), Some("rate_limited"));
    assert_eq!(run.retry_at, Some(t0() + secs(3600 + 100)));
    engine.advance(99).await;
    assert_eq!(
        engine.runs("limited").await.len(),
        1,
        "no retry before retry_after"
    );
    engine.advance(1).await;
    let retry = engine.started("limited").await;
    assert_eq!(engine.run(retry).await.attempt, 2);
    engine.stop().await;
}

#[tokio::test]
async fn run_now_pause_resume_and_cancel_take_effect_at_once() {
    let mut engine =
        Engine::start(&[job("manual", "1h", json!({"action": "sleep", "secs": 600}))]).await;
    let run_id = engine.handle.run_now("manual").await.expect("runs");
    assert_eq!(engine.started("manual").await, run_id);
    let run = engine.run(run_id).await;
    assert_eq!(
        (run.trigger, run.status),
        (Trigger::Manual, RunStatus::Running)
    );
    let refused = engine.handle.run_now("manual").await;
    assert_eq!(
        refused,
        Err(CommandError::AlreadyRunning {
            job: "manual".into(),
            run_id: Some(run_id)
        })
    );
    engine
        .handle
        .cancel(run_id, Some("alice"))
        .expect("cancels");
    let (finished, status) = engine.finished("manual").await;
    assert_eq!((finished, status), (run_id, RunStatus::Cancelled));
    assert_eq!(
        engine.run(run_id).await.error_message.as_deref(),
        Some("cancelled by alice")
    );

    engine.handle.pause("manual").await.expect("pauses");
    engine.advance(7200).await;
    assert_eq!(
        engine.runs("manual").await.len(),
        1,
        "a paused job does not fire"
    );
    engine.handle.resume("manual").await.expect("resumes");
    let record = engine
        .store
        .job_by_name("manual")
        .await
        .expect("loads")
        .expect("exists");
    assert_eq!(record.next_run_at, Some(t0() + secs(7200 + 3600)));
    assert!(!record.paused);
    assert_eq!(
        engine.handle.run_now("nope").await,
        Err(CommandError::UnknownJob("nope".into()))
    );
    engine.stop().await;
}

#[tokio::test]
async fn after_downtime_run_once_fires_a_single_catch_up_run() {
    let engine = Engine::start(&[job("daily", "1h", json!({"action": "ok"}))]).await;
    let (dir, clock) = engine.stop().await;
    // Down for five hours: five slots missed.
    clock.set(t0() + secs(5 * 3600 + 1800));
    let mut engine = Engine::boot(
        dir,
        clock,
        &[job("daily", "1h", json!({"action": "ok"}))],
        config(),
    )
    .await;
    engine.handle.sync().await;
    let (run_id, status) = engine.finished("daily").await;
    assert_eq!(status, RunStatus::Succeeded);
    let run = engine.run(run_id).await;
    assert_eq!(
        (run.trigger, run.scheduled_for),
        (Trigger::CatchUp, t0() + secs(3600))
    );
    assert_eq!(
        engine.runs("daily").await.len(),
        1,
        "missed slots are not replayed"
    );
    let record = engine
        .store
        .job_by_name("daily")
        .await
        .expect("loads")
        .expect("exists");
    assert_eq!(record.next_run_at, Some(t0() + secs(6 * 3600)));
    engine.stop().await;
}

#[tokio::test]
async fn after_downtime_skip_waits_for_the_next_slot() {
    let mut skip = job("daily", "1h", json!({"action": "ok"}));
    skip.misfire = Some("skip".into());
    let engine = Engine::start(std::slice::from_ref(&skip)).await;
    let (dir, clock) = engine.stop().await;
    clock.set(t0() + secs(5 * 3600 + 1800));
    let engine = Engine::boot(dir, clock, &[skip], config()).await;
    engine.handle.sync().await;
    assert!(engine.runs("daily").await.is_empty());
    let record = engine
        .store
        .job_by_name("daily")
        .await
        .expect("loads")
        .expect("exists");
    assert_eq!(record.next_run_at, Some(t0() + secs(6 * 3600)));
    engine.stop().await;
}

#[tokio::test]
async fn shutdown_lets_a_run_finish_within_the_grace_period() {
    let mut engine =
        Engine::start(&[job("slow", "1h", json!({"action": "sleep", "secs": 5}))]).await;
    engine.advance(3600).await;
    let run_id = engine.started("slow").await;
    engine.handle.shutdown();
    engine.advance(5).await;
    let (finished, status) = engine.finished("slow").await;
    assert_eq!((finished, status), (run_id, RunStatus::Succeeded));
    engine.stop().await;
}

#[tokio::test]
async fn shutdown_interrupts_a_run_that_outlives_the_grace_period_and_the_next_start_retries_it() {
    let slow = job("slow", "1d", json!({"action": "sleep", "secs": 600}));
    let mut engine = Engine::start(std::slice::from_ref(&slow)).await;
    engine.advance(86_400).await;
    let run_id = engine.started("slow").await;
    engine.handle.shutdown();
    engine
        .wait_for(|event| *event == SchedulerEvent::ShuttingDown)
        .await;
    engine.clock.advance(secs(30)); // the grace period is over: the run is cancelled
    let (finished, status) = engine.finished("slow").await;
    assert_eq!((finished, status), (run_id, RunStatus::Interrupted));
    let run = engine.run(run_id).await;
    let retry_at = run.retry_at.expect("an interrupted run is retried");
    let (dir, clock) = engine.stop().await;

    clock.set(retry_at);
    let mut engine = Engine::boot(dir, clock, &[slow], config()).await;
    engine.handle.sync().await;
    let retry = engine.started("slow").await;
    let run = engine.run(retry).await;
    assert_eq!(
        (run.trigger, run.attempt, run.first_run_id),
        (Trigger::Retry, 2, Some(run_id))
    );
    engine.stop().await;
}

#[tokio::test]
async fn run_logs_are_redacted_and_capped_with_a_visible_truncation_line() {
    let mut engine =
        Engine::start(&[job("chatty", "1h", json!({"action": "log", "lines": 150}))]).await;
    engine.advance(3600).await;
    let (run_id, status) = engine.finished("chatty").await;
    assert_eq!(status, RunStatus::Succeeded);
    let logs = engine
        .store
        .run_logs(run_id, None, 1000)
        .await
        .expect("logs load");
    // The cap is 100 lines, plus the line that says so.
    assert_eq!(logs.len(), 101);
    assert_eq!(logs[0].1.fields["password"], json!("[redacted]"));
    assert_eq!(logs[0].1.fields["sku"], json!("A-1"));
    let last = &logs[100].1;
    assert_eq!(last.level, "WARN");
    assert!(last.message.contains("50"), "{last:?}");
    engine.stop().await;
}
