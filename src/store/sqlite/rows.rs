//! How model values are laid out in SQLite rows, and back.
//!
//! Times are INTEGER microseconds since the Unix epoch (see the first migration for why);
//! enums are their `as_str` text; JSON is TEXT. Every conversion from a row is checked:
//! a stored value the model cannot hold is a [`StoreError::Decode`], never a panic.

use chrono::{DateTime, Utc};

use crate::job::JobSettings;
use crate::store::{JobRecord, LogLine, RunRecord, StoreError, StoreResult};

/// The columns of `jobs`, in [`JobRow`] order.
pub(super) const JOB_COLUMNS: &str = "id, name, defaults, overrides, paused, removed_at, \
     next_run_at, version, created_at, updated_at";

/// The columns of `runs` (alias-free, the table must be named `runs`) plus the job's
/// name. The name comes from a correlated lookup rather than a join so that `runs` always
/// drives the query and its indexes decide the order.
pub(super) const RUN_COLUMNS: &str = "runs.id, runs.job_id, \
     (SELECT jobs.name FROM jobs WHERE jobs.id = runs.job_id) AS job_name, \
     runs.trigger, runs.attempt, runs.first_run_id, runs.status, runs.scheduled_for, \
     runs.started_at, runs.finished_at, runs.duration_ms, runs.items_checked, \
     runs.items_updated, runs.items_total, runs.error_kind, runs.error_message, \
     runs.summary, runs.instance_id, runs.retry_at";

/// An instant as stored: whole microseconds since the epoch. Anything finer is dropped;
/// the scheduler truncates its times to microseconds, so nothing it writes is changed.
pub(super) fn micros(time: DateTime<Utc>) -> i64 {
    time.timestamp_micros()
}

/// [`micros`] for optional instants.
pub(super) fn opt_micros(time: Option<DateTime<Utc>>) -> Option<i64> {
    time.map(micros)
}

fn time(stored: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_micros(stored)
        .ok_or_else(|| StoreError::Decode(format!("time {stored} µs is out of range")))
}

fn opt_time(stored: Option<i64>) -> StoreResult<Option<DateTime<Utc>>> {
    stored.map(time).transpose()
}

fn parse<T>(what: &str, text: &str) -> StoreResult<T>
where
    T: std::str::FromStr<Err = String>,
{
    text.parse()
        .map_err(|e: String| StoreError::Decode(format!("{what}: {e}")))
}

fn json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Decode(format!("{what}: {e}")))
}

/// Serialises a value the store writes as JSON text.
///
/// # Errors
/// Only for values serde_json cannot represent (maps with non-text keys), which the
/// model types never contain; reported as [`StoreError::Decode`] all the same.
pub(super) fn to_json<T: serde::Serialize>(what: &str, value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Decode(format!("{what}: {e}")))
}

/// A `jobs` row as read.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct JobRow {
    id: i64,
    name: String,
    defaults: String,
    overrides: String,
    paused: bool,
    removed_at: Option<i64>,
    next_run_at: Option<i64>,
    version: i64,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<JobRow> for JobRecord {
    type Error = StoreError;

    fn try_from(row: JobRow) -> StoreResult<Self> {
        let defaults: JobSettings = json("jobs.defaults", &row.defaults)?;
        let overrides = json("jobs.overrides", &row.overrides)?;
        Ok(JobRecord {
            id: row.id,
            name: row.name,
            defaults,
            overrides,
            paused: row.paused,
            removed_at: opt_time(row.removed_at)?,
            next_run_at: opt_time(row.next_run_at)?,
            version: row.version,
            created_at: time(row.created_at)?,
            updated_at: time(row.updated_at)?,
        })
    }
}

/// A `runs` row (with its job's name) as read; see [`RUN_COLUMNS`].
#[derive(Debug, sqlx::FromRow)]
pub(super) struct RunRow {
    id: i64,
    job_id: i64,
    job_name: String,
    trigger: String,
    attempt: i64,
    first_run_id: Option<i64>,
    status: String,
    scheduled_for: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    duration_ms: Option<i64>,
    items_checked: i64,
    items_updated: i64,
    items_total: Option<i64>,
    error_kind: Option<String>,
    error_message: Option<String>,
    summary: Option<String>,
    instance_id: String,
    retry_at: Option<i64>,
}

impl TryFrom<RunRow> for RunRecord {
    type Error = StoreError;

    fn try_from(row: RunRow) -> StoreResult<Self> {
        let attempt = u32::try_from(row.attempt).map_err(|_| {
            StoreError::Decode(format!("runs.attempt {} is out of range", row.attempt))
        })?;
        Ok(RunRecord {
            id: row.id,
            job_id: row.job_id,
            job_name: row.job_name,
            trigger: parse("runs.trigger", &row.trigger)?,
            attempt,
            first_run_id: row.first_run_id,
            status: parse("runs.status", &row.status)?,
            scheduled_for: time(row.scheduled_for)?,
            started_at: opt_time(row.started_at)?,
            finished_at: opt_time(row.finished_at)?,
            duration_ms: row.duration_ms,
            items_checked: row.items_checked,
            items_updated: row.items_updated,
            items_total: row.items_total,
            error_kind: row.error_kind,
            error_message: row.error_message,
            summary: row.summary,
            instance_id: row.instance_id,
            retry_at: opt_time(row.retry_at)?,
        })
    }
}

/// A `run_logs` row as read.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct LogRow {
    id: i64,
    run_id: i64,
    ts: i64,
    level: String,
    message: String,
    fields: String,
}

impl TryFrom<LogRow> for (i64, LogLine) {
    type Error = StoreError;

    fn try_from(row: LogRow) -> StoreResult<Self> {
        let line = LogLine {
            run_id: row.run_id,
            ts: time(row.ts)?,
            level: row.level,
            message: row.message,
            fields: json("run_logs.fields", &row.fields)?,
        };
        Ok((row.id, line))
    }
}

/// Converts every row, stopping at the first that does not decode.
pub(super) fn decode_all<R, T>(rows: Vec<R>) -> StoreResult<Vec<T>>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_times_keep_every_microsecond_and_drop_only_finer_parts() {
        let exact = DateTime::from_timestamp(1_767_225_600, 123_456_000).expect("valid time");
        assert_eq!(time(micros(exact)).expect("in range"), exact);
        let finer = DateTime::from_timestamp(1_767_225_600, 123_456_789).expect("valid time");
        assert_eq!(time(micros(finer)).expect("in range"), exact);
    }

    #[test]
    fn an_out_of_range_stored_time_is_a_decode_error_not_a_panic() {
        assert!(matches!(time(i64::MAX), Err(StoreError::Decode(_))));
    }
}
