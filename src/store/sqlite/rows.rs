//! How model values are laid out in SQLite rows: times are INTEGER microseconds since
//! the Unix epoch (see the first migration for why), enums their `as_str` text, JSON
//! TEXT. The conversion back to the model is shared with PostgreSQL (`store::rows`).

use chrono::{DateTime, Utc};

pub(super) use crate::store::rows::{decode_all, to_json};

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

pub(super) type JobRow = crate::store::rows::JobRow<i64, String>;
pub(super) type RunRow = crate::store::rows::RunRow<i64>;
pub(super) type LogRow = crate::store::rows::LogRow<i64, String>;
pub(super) type ChangeRow = crate::store::rows::ChangeRow<i64, String>;
pub(super) type UserRow = crate::store::rows::UserRow<i64>;
pub(super) type TokenRow = crate::store::rows::TokenRow<i64>;

/// An instant as stored: whole microseconds since the epoch. Anything finer is dropped;
/// the scheduler truncates its times to microseconds, so nothing it writes is changed.
pub(super) fn micros(time: DateTime<Utc>) -> i64 {
    time.timestamp_micros()
}

/// [`micros`] for optional instants.
pub(super) fn opt_micros(time: Option<DateTime<Utc>>) -> Option<i64> {
    time.map(micros)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::rows::StoredTime as _;

    #[test]
    fn stored_times_keep_every_microsecond_and_drop_only_finer_parts() {
        let exact = DateTime::from_timestamp(1_767_225_600, 123_456_000).expect("valid time");
        assert_eq!(micros(exact).instant().expect("in range"), exact);
        let finer = DateTime::from_timestamp(1_767_225_600, 123_456_789).expect("valid time");
        assert_eq!(micros(finer).instant().expect("in range"), exact);
    }
}
