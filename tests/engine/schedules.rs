//! What schedules mean once the scheduler runs them: cron lines across daylight-saving
//! changes, jitter, and manual runs of a paused job. The manual clock walks in steps small
//! enough that every fire is dispatched at (not after) its slot, and every run list is
//! read after the scheduler has stopped, so a stray extra fire cannot hide.

use std::sync::Arc;

use batchboard::clock::{Clock as _, ManualClock};
use batchboard::job::JobSettings;
use batchboard::store::{RunFilter, RunRecord, RunStatus, SharedStore, Trigger};
use chrono::{DateTime, Duration, TimeZone, Timelike, Utc};
use chrono_tz::Europe::Berlin;
use serde_json::json;

use crate::support::{Engine, config, job, t0};

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .expect("a valid instant")
}

/// A `scripted` job that succeeds at once, on `cron` in Europe/Berlin.
fn berlin_cron(name: &str, cron: &str) -> JobSettings {
    JobSettings {
        name: name.into(),
        handler: "scripted".into(),
        cron: Some(cron.into()),
        timezone: Some("Europe/Berlin".into()),
        params: Some(json!({"action": "ok"})),
        ..JobSettings::default()
    }
}

/// A fresh database with `jobs`, and the scheduler started with the clock at `start`.
async fn boot_at(start: DateTime<Utc>, jobs: &[JobSettings]) -> Engine {
    let dir = Arc::new(tempfile::tempdir().expect("a temporary directory"));
    Engine::boot(dir, ManualClock::new(start), jobs, config()).await
}

/// Every run of `job`, oldest first, straight from the store.
async fn stored_runs(store: &SharedStore, job: &str) -> Vec<RunRecord> {
    let job_id = store
        .job_by_name(job)
        .await
        .expect("jobs load")
        .expect("the job exists")
        .id;
    let mut runs = store
        .runs(&RunFilter {
            job_id: Some(job_id),
            limit: 1000,
            ..RunFilter::default()
        })
        .await
        .expect("runs load");
    runs.reverse();
    runs
}

/// Stops the scheduler (so every dispatched run is committed) and returns all runs of `job`.
async fn runs_after_stop(engine: Engine, job: &str) -> Vec<RunRecord> {
    let store = engine.store.clone();
    engine.stop().await;
    stored_runs(&store, job).await
}

/// Moves the clock to `until` in `step`s, letting the scheduler fire at each one. When
/// the clock reaches a time in `expected` (which must lie on the step grid), waits for
/// that run to finish and checks it was the fire for that slot and started right at it.
async fn walk(
    engine: &mut Engine,
    job: &str,
    until: DateTime<Utc>,
    step: Duration,
    expected: &[DateTime<Utc>],
) {
    let mut due = expected.iter().copied().peekable();
    let mut now = engine.clock.now();
    while now < until {
        now += step;
        engine.clock.set(now);
        engine.handle.sync().await;
        while let Some(slot) = due.next_if(|slot| *slot <= now) {
            let (run_id, status) = engine.finished(job).await;
            let run = engine.run(run_id).await;
            assert_eq!(run.scheduled_for, slot, "the run due at {slot}: {run:?}");
            assert_eq!(run.started_at, Some(slot), "started at its slot: {run:?}");
            assert_eq!(
                (status, run.trigger),
                (RunStatus::Succeeded, Trigger::Schedule)
            );
        }
    }
    assert_eq!(due.next(), None, "the walk ends after every expected fire");
}

fn scheduled(runs: &[RunRecord]) -> Vec<DateTime<Utc>> {
    runs.iter().map(|run| run.scheduled_for).collect()
}

#[tokio::test]
async fn a_daily_cron_time_in_the_spring_forward_gap_runs_once_right_after_the_gap() {
    // Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC); 02:30 never exists.
    let mut engine = boot_at(
        utc(2026, 3, 28, 12, 0),
        &[berlin_cron("nightly", "30 2 * * *")],
    )
    .await;
    let expected = [
        utc(2026, 3, 29, 1, 0),  // 03:00 CEST, the first instant after the gap
        utc(2026, 3, 30, 0, 30), // 02:30 CEST
        utc(2026, 3, 31, 0, 30),
    ];
    walk(
        &mut engine,
        "nightly",
        utc(2026, 3, 31, 12, 0),
        Duration::minutes(15),
        &expected,
    )
    .await;
    let runs = runs_after_stop(engine, "nightly").await;
    assert_eq!(scheduled(&runs), expected, "one run per day, no more");
    let local: Vec<String> = runs
        .iter()
        .map(|run| {
            run.scheduled_for
                .with_timezone(&Berlin)
                .format("%F %R %Z")
                .to_string()
        })
        .collect();
    assert_eq!(
        local,
        [
            "2026-03-29 03:00 CEST",
            "2026-03-30 02:30 CEST",
            "2026-03-31 02:30 CEST"
        ]
    );
}

#[tokio::test]
async fn a_daily_cron_time_that_fall_back_repeats_runs_once_in_its_first_occurrence() {
    // Berlin, 2026-10-25: 03:00 CEST goes back to 02:00 CET (01:00 UTC), so 02:30 local
    // happens at 00:30 UTC and again at 01:30 UTC. Only the first may fire.
    let mut engine = boot_at(
        utc(2026, 10, 23, 12, 0),
        &[berlin_cron("nightly", "30 2 * * *")],
    )
    .await;
    let expected = [
        utc(2026, 10, 24, 0, 30), // 02:30 CEST
        utc(2026, 10, 25, 0, 30), // 02:30 CEST, the first of the two
        utc(2026, 10, 26, 1, 30), // 02:30 CET
    ];
    walk(
        &mut engine,
        "nightly",
        utc(2026, 10, 26, 12, 0),
        Duration::minutes(15),
        &expected,
    )
    .await;
    let runs = runs_after_stop(engine, "nightly").await;
    assert_eq!(
        scheduled(&runs),
        expected,
        "no second run at 01:30 UTC on the fall-back night"
    );
}

/// The local hours (Berlin) of `runs`' slots.
fn local_hours(runs: &[RunRecord]) -> Vec<u32> {
    runs.iter()
        .map(|run| run.scheduled_for.with_timezone(&Berlin).hour())
        .collect()
}

/// Every whole UTC hour from `first` to `last`, both included.
fn hours(first: DateTime<Utc>, last: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let count = (last - first).num_hours();
    (0..=count).map(|n| first + Duration::hours(n)).collect()
}

#[tokio::test]
async fn an_hourly_cron_runs_once_per_real_hour_over_the_25_hour_fall_back_day() {
    // The local day 2026-10-25 runs from 22:00 UTC the evening before to 23:00 UTC: 25
    // real hours, with 02:00 local twice (CEST, then CET).
    let mut engine = boot_at(
        utc(2026, 10, 24, 21, 30),
        &[berlin_cron("hourly", "0 * * * *")],
    )
    .await;
    let expected = hours(utc(2026, 10, 24, 22, 0), utc(2026, 10, 25, 22, 0));
    assert_eq!(expected.len(), 25);
    walk(
        &mut engine,
        "hourly",
        utc(2026, 10, 25, 22, 30),
        Duration::minutes(30),
        &expected,
    )
    .await;
    let runs = runs_after_stop(engine, "hourly").await;
    assert_eq!(scheduled(&runs), expected);
    let mut local = vec![0, 1, 2, 2];
    local.extend(3..=23);
    assert_eq!(local_hours(&runs), local);
}

#[tokio::test]
async fn an_hourly_cron_skips_the_hour_that_spring_forward_removes() {
    // The local day 2026-03-29 runs from 23:00 UTC the evening before to 22:00 UTC: 23
    // real hours, and 02:00 local never happens.
    let mut engine = boot_at(
        utc(2026, 3, 28, 22, 30),
        &[berlin_cron("hourly", "0 * * * *")],
    )
    .await;
    let expected = hours(utc(2026, 3, 28, 23, 0), utc(2026, 3, 29, 21, 0));
    assert_eq!(expected.len(), 23);
    walk(
        &mut engine,
        "hourly",
        utc(2026, 3, 29, 21, 30),
        Duration::minutes(30),
        &expected,
    )
    .await;
    let runs = runs_after_stop(engine, "hourly").await;
    assert_eq!(scheduled(&runs), expected);
    let mut local = vec![0, 1];
    local.extend(3..=23);
    assert_eq!(local_hours(&runs), local);
}

#[tokio::test]
async fn jitter_delays_each_start_within_its_bound_without_moving_the_grid() {
    let mut jittery = job("jittery", "1m", json!({"action": "ok"}));
    jittery.jitter = Some("30s".into());
    let mut engine = Engine::start(&[jittery]).await;
    let jitter = Duration::seconds(30);
    // Steps shorter than the scheduler's 300 ms lookahead: every fire is claimed before
    // its jittered start. The recorded start is when the handler really started: the
    // first step at or after the jittered start, as time only moves in steps here.
    let step = Duration::milliseconds(100);
    let slots = 6;
    let mut offsets = Vec::new();
    for slot in 1..=slots {
        let nominal = t0() + Duration::minutes(slot);
        while engine.clock.now() < nominal + jitter {
            engine.clock.advance(step);
            engine.handle.sync().await;
            // A run woken by this step starts before time moves on, as in real time.
            for _ in 0..8 {
                tokio::task::yield_now().await;
            }
        }
        let (run_id, status) = engine.finished("jittery").await;
        assert_eq!(status, RunStatus::Succeeded);
        let run = engine.run(run_id).await;
        assert_eq!(run.scheduled_for, nominal, "slots stay on the minute grid");
        let started = run.started_at.expect("the run started");
        let offset = started - run.scheduled_for;
        assert!(
            offset >= Duration::zero() && offset < jitter + step,
            "slot {slot} started {offset} after its time"
        );
        let logs = engine
            .store
            .run_logs(run_id, None, 10)
            .await
            .expect("logs load");
        assert!(
            logs.first().is_some_and(|(_, line)| line.ts >= started),
            "the handler did not start before the jittered time: {logs:?} vs {run:?}"
        );
        offsets.push(offset);
    }
    let record = engine
        .store
        .job_by_name("jittery")
        .await
        .expect("loads")
        .expect("exists");
    assert_eq!(
        record.next_run_at,
        Some(t0() + Duration::minutes(slots + 1)),
        "the next slot is on the grid too"
    );
    let runs = runs_after_stop(engine, "jittery").await;
    assert_eq!(
        scheduled(&runs),
        (1..=slots)
            .map(|slot| t0() + Duration::minutes(slot))
            .collect::<Vec<_>>(),
        "one run per slot"
    );
    offsets.sort();
    offsets.dedup();
    assert!(
        offsets.len() > 1 && offsets.iter().any(|offset| !offset.is_zero()),
        "each fire draws its own delay: {offsets:?}"
    );
}

#[tokio::test]
async fn a_paused_job_still_runs_when_started_by_hand() {
    let mut engine = Engine::start(&[job("paused", "1h", json!({"action": "ok"}))]).await;
    engine.handle.pause("paused").await.expect("pauses");
    engine.advance(60).await;
    let run_id = engine
        .handle
        .run_now("paused")
        .await
        .expect("a paused job can be run by hand");
    let (finished, status) = engine.finished("paused").await;
    assert_eq!((finished, status), (run_id, RunStatus::Succeeded));
    let run = engine.run(run_id).await;
    assert_eq!((run.trigger, run.attempt), (Trigger::Manual, 1));
    assert_eq!(run.scheduled_for, t0() + Duration::seconds(60));
    assert_eq!(run.started_at, Some(t0() + Duration::seconds(60)));
    assert_eq!(run.items_checked, 1, "the handler really ran");

    // The manual run did not resume the schedule.
    engine.advance(2 * 3600).await;
    let record = engine
        .store
        .job_by_name("paused")
        .await
        .expect("loads")
        .expect("exists");
    assert!(record.paused);
    assert_eq!(record.next_run_at, None);
    let runs = runs_after_stop(engine, "paused").await;
    assert_eq!(
        runs.iter().map(|run| run.id).collect::<Vec<_>>(),
        [run_id],
        "no scheduled run while paused"
    );
}
