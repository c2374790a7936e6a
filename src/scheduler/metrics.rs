//! What the scheduler records for Prometheus (served at `/metrics` by the web layer).
//!
//! Each function is one cheap call through the `metrics` facade: with no recorder
//! installed (the CLI's one-off commands, the engine tests) it does nothing, and with one
//! it is a lookup and an atomic add, so the executor's hot path stays fast.

use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};

use crate::store::{RunStatus, Trigger};

/// Runs whose handler started, by `job`.
pub const RUNS_STARTED: &str = "batchboard_runs_started_total";
/// Runs whose final row was committed, by `job` and `status`.
pub const RUNS_FINISHED: &str = "batchboard_runs_finished_total";
/// How long runs took, in seconds, by `job`.
pub const RUN_DURATION: &str = "batchboard_run_duration_seconds";
/// Failed runs that will be retried (status `retrying`), by `job`.
pub const RETRIES: &str = "batchboard_retries_total";
/// Runs that failed on their last allowed attempt (status `dead`), by `job`.
pub const DEAD_RUNS: &str = "batchboard_dead_runs_total";
/// Handler start minus the time the run was due, in seconds, by `job`, for every run
/// not started by hand.
pub const FIRE_LATENESS: &str = "batchboard_fire_lateness_seconds";

/// Whether a recorder is installed. Without one the calls below would still build their
/// labels (allocations on every run) only for the facade to drop them; the scheduler
/// benchmark showed that as a tenth more CPU under a burst.
static RECORDING: AtomicBool = AtomicBool::new(false);

/// Tells the scheduler that a recorder is installed, so runs are measured from now on.
pub fn start_recording() {
    RECORDING.store(true, Ordering::Relaxed);
}

fn recording() -> bool {
    RECORDING.load(Ordering::Relaxed)
}

/// A run's handler is about to start (at `started`; the run was due at `due`).
pub(crate) fn run_started(job: &str, trigger: Trigger, due: DateTime<Utc>, started: DateTime<Utc>) {
    if !recording() {
        return;
    }
    let job = job.to_owned();
    // A manual run is due when it is asked for, so its lateness says nothing.
    if trigger != Trigger::Manual {
        metrics::histogram!(FIRE_LATENESS, "job" => job.clone())
            .record(seconds_between(due, started));
    }
    metrics::counter!(RUNS_STARTED, "job" => job).increment(1);
}

/// A run's final row is committed.
pub(crate) fn run_finished(
    job: &str,
    status: RunStatus,
    started: DateTime<Utc>,
    finished: DateTime<Utc>,
) {
    if !recording() {
        return;
    }
    let job = job.to_owned();
    metrics::counter!(RUNS_FINISHED, "job" => job.clone(), "status" => status.as_str())
        .increment(1);
    metrics::histogram!(RUN_DURATION, "job" => job.clone())
        .record(seconds_between(started, finished));
    match status {
        RunStatus::Retrying => metrics::counter!(RETRIES, "job" => job).increment(1),
        RunStatus::Dead => metrics::counter!(DEAD_RUNS, "job" => job).increment(1),
        _ => {}
    }
}

/// Gives every metric above its `# HELP` line; called once the recorder is installed.
pub fn describe() {
    metrics::describe_counter!(RUNS_STARTED, "Runs whose handler started, by job.");
    metrics::describe_counter!(
        RUNS_FINISHED,
        "Runs whose final state was recorded, by job and status."
    );
    metrics::describe_histogram!(
        RUN_DURATION,
        metrics::Unit::Seconds,
        "How long runs took, by job."
    );
    metrics::describe_counter!(RETRIES, "Failed runs that will be retried, by job.");
    metrics::describe_counter!(
        DEAD_RUNS,
        "Runs that failed on their last allowed attempt, by job."
    );
    metrics::describe_histogram!(
        FIRE_LATENESS,
        metrics::Unit::Seconds,
        "Handler start minus the time the run was due, by job (runs started by hand excluded)."
    );
}

/// `to - from` in seconds; negative spans (a clock set back) count as zero.
fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    let micros = (to - from).num_microseconds().unwrap_or(i64::MAX).max(0);
    // Precision beyond 2^53 µs (285 years) does not matter here.
    #[allow(clippy::cast_precision_loss)]
    let seconds = micros as f64 / 1_000_000.0;
    seconds
}
