//! Rows as both backends read them, and their checked conversion to the model.
//!
//! The backends store the same values in different types: SQLite keeps instants as
//! INTEGER microseconds and JSON as TEXT, PostgreSQL as TIMESTAMPTZ and JSONB. So each
//! row type is generic over how an instant (`T`) and a JSON document (`J`) come out of
//! the database, and every backend names its own instance of it (`JobRow<i64, String>`
//! on SQLite). The conversion itself is written once, here: a stored value the model
//! cannot hold is a [`StoreError::Decode`], never a panic, on either backend.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use crate::store::{
    ApiToken, JobChangeRecord, JobRecord, LogLine, Role, RunRecord, StoreError, StoreResult, User,
};

/// How a backend hands out a stored instant.
pub(crate) trait StoredTime {
    fn instant(self) -> StoreResult<DateTime<Utc>>;
}

/// SQLite: whole microseconds since the Unix epoch.
impl StoredTime for i64 {
    fn instant(self) -> StoreResult<DateTime<Utc>> {
        DateTime::from_timestamp_micros(self)
            .ok_or_else(|| StoreError::Decode(format!("time {self} µs is out of range")))
    }
}

/// PostgreSQL: TIMESTAMPTZ, already an instant.
impl StoredTime for DateTime<Utc> {
    fn instant(self) -> StoreResult<DateTime<Utc>> {
        Ok(self)
    }
}

fn opt_instant<T: StoredTime>(stored: Option<T>) -> StoreResult<Option<DateTime<Utc>>> {
    stored.map(StoredTime::instant).transpose()
}

/// How a backend hands out a stored JSON document.
pub(crate) trait StoredJson {
    fn decode<V: DeserializeOwned>(self, what: &str) -> StoreResult<V>;
}

/// SQLite: JSON text.
impl StoredJson for String {
    fn decode<V: DeserializeOwned>(self, what: &str) -> StoreResult<V> {
        serde_json::from_str(&self).map_err(|e| StoreError::Decode(format!("{what}: {e}")))
    }
}

/// PostgreSQL: JSONB, already parsed.
impl StoredJson for serde_json::Value {
    fn decode<V: DeserializeOwned>(self, what: &str) -> StoreResult<V> {
        serde_json::from_value(self).map_err(|e| StoreError::Decode(format!("{what}: {e}")))
    }
}

pub(crate) fn parse<V>(what: &str, text: &str) -> StoreResult<V>
where
    V: std::str::FromStr<Err = String>,
{
    text.parse()
        .map_err(|e: String| StoreError::Decode(format!("{what}: {e}")))
}

/// Serialises a value the store writes as JSON text.
///
/// # Errors
/// Only for values serde_json cannot represent (maps with non-text keys), which the
/// model types never contain; reported as [`StoreError::Decode`] all the same.
pub(crate) fn to_json<V: serde::Serialize>(what: &str, value: &V) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Decode(format!("{what}: {e}")))
}

/// Whether `error` is the database refusing a duplicate of a unique key.
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// `error` as the store reports it: a taken unique key is [`StoreError::Conflict`].
pub(crate) fn conflict_on_duplicate(error: sqlx::Error) -> StoreError {
    if is_unique_violation(&error) {
        StoreError::Conflict
    } else {
        error.into()
    }
}

/// Converts every row, stopping at the first that does not decode.
pub(crate) fn decode_all<R, V>(rows: Vec<R>) -> StoreResult<Vec<V>>
where
    V: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(V::try_from).collect()
}

/// A `jobs` row as read, in the order of each backend's `JOB_COLUMNS`.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct JobRow<T, J> {
    id: i64,
    name: String,
    defaults: J,
    overrides: J,
    paused: bool,
    removed_at: Option<T>,
    next_run_at: Option<T>,
    version: i64,
    created_at: T,
    updated_at: T,
}

impl<T: StoredTime, J: StoredJson> TryFrom<JobRow<T, J>> for JobRecord {
    type Error = StoreError;

    fn try_from(row: JobRow<T, J>) -> StoreResult<Self> {
        Ok(JobRecord {
            id: row.id,
            name: row.name,
            defaults: row.defaults.decode("jobs.defaults")?,
            overrides: row.overrides.decode("jobs.overrides")?,
            paused: row.paused,
            removed_at: opt_instant(row.removed_at)?,
            next_run_at: opt_instant(row.next_run_at)?,
            version: row.version,
            created_at: row.created_at.instant()?,
            updated_at: row.updated_at.instant()?,
        })
    }
}

/// A `runs` row with its job's name, as read through each backend's `RUN_COLUMNS`.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct RunRow<T> {
    id: i64,
    job_id: i64,
    job_name: String,
    trigger: String,
    attempt: i64,
    first_run_id: Option<i64>,
    status: String,
    scheduled_for: T,
    started_at: Option<T>,
    finished_at: Option<T>,
    duration_ms: Option<i64>,
    items_checked: i64,
    items_updated: i64,
    items_total: Option<i64>,
    error_kind: Option<String>,
    error_message: Option<String>,
    summary: Option<String>,
    instance_id: String,
    retry_at: Option<T>,
}

impl<T: StoredTime> TryFrom<RunRow<T>> for RunRecord {
    type Error = StoreError;

    fn try_from(row: RunRow<T>) -> StoreResult<Self> {
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
            scheduled_for: row.scheduled_for.instant()?,
            started_at: opt_instant(row.started_at)?,
            finished_at: opt_instant(row.finished_at)?,
            duration_ms: row.duration_ms,
            items_checked: row.items_checked,
            items_updated: row.items_updated,
            items_total: row.items_total,
            error_kind: row.error_kind,
            error_message: row.error_message,
            summary: row.summary,
            instance_id: row.instance_id,
            retry_at: opt_instant(row.retry_at)?,
        })
    }
}

/// A `run_logs` row as read: `id, run_id, ts, level, message, fields`.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct LogRow<T, J> {
    id: i64,
    run_id: i64,
    ts: T,
    level: String,
    message: String,
    fields: J,
}

impl<T: StoredTime, J: StoredJson> TryFrom<LogRow<T, J>> for (i64, LogLine) {
    type Error = StoreError;

    fn try_from(row: LogRow<T, J>) -> StoreResult<Self> {
        let line = LogLine {
            run_id: row.run_id,
            ts: row.ts.instant()?,
            level: row.level,
            message: row.message,
            fields: row.fields.decode("run_logs.fields")?,
        };
        Ok((row.id, line))
    }
}

/// A `job_changes` row with its job's name, as read.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ChangeRow<T, J> {
    id: i64,
    job_id: i64,
    job_name: String,
    actor: String,
    field: String,
    old_value: Option<J>,
    new_value: Option<J>,
    changed_at: T,
}

impl<T: StoredTime, J: StoredJson> TryFrom<ChangeRow<T, J>> for JobChangeRecord {
    type Error = StoreError;

    fn try_from(row: ChangeRow<T, J>) -> StoreResult<Self> {
        Ok(JobChangeRecord {
            id: row.id,
            job_id: row.job_id,
            job_name: row.job_name,
            actor: row.actor,
            field: row.field,
            old_value: row
                .old_value
                .map(|v| v.decode("job_changes.old_value"))
                .transpose()?,
            new_value: row
                .new_value
                .map(|v| v.decode("job_changes.new_value"))
                .transpose()?,
            changed_at: row.changed_at.instant()?,
        })
    }
}

/// The columns of `users`, in [`UserRow`] order (the same on both backends).
pub(crate) const USER_COLUMNS: &str =
    "id, name, password_hash, role, disabled, must_change_password, created_at, updated_at";

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct UserRow<T> {
    id: i64,
    name: String,
    password_hash: String,
    role: String,
    disabled: bool,
    must_change_password: bool,
    created_at: T,
    updated_at: T,
}

impl<T: StoredTime> TryFrom<UserRow<T>> for User {
    type Error = StoreError;

    fn try_from(row: UserRow<T>) -> StoreResult<Self> {
        Ok(User {
            role: parse::<Role>("user role", &row.role)?,
            created_at: row.created_at.instant()?,
            updated_at: row.updated_at.instant()?,
            id: row.id,
            name: row.name,
            password_hash: row.password_hash,
            disabled: row.disabled,
            must_change_password: row.must_change_password,
        })
    }
}

/// The columns of `api_tokens`, in [`TokenRow`] order (the same on both backends).
pub(crate) const TOKEN_COLUMNS: &str =
    "id, user_id, name, token_hash, role, created_at, expires_at, last_used_at, revoked_at";

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct TokenRow<T> {
    id: i64,
    user_id: i64,
    name: String,
    token_hash: String,
    role: String,
    created_at: T,
    expires_at: Option<T>,
    last_used_at: Option<T>,
    revoked_at: Option<T>,
}

impl<T: StoredTime> TryFrom<TokenRow<T>> for ApiToken {
    type Error = StoreError;

    fn try_from(row: TokenRow<T>) -> StoreResult<Self> {
        Ok(ApiToken {
            role: parse::<Role>("token role", &row.role)?,
            created_at: row.created_at.instant()?,
            expires_at: opt_instant(row.expires_at)?,
            last_used_at: opt_instant(row.last_used_at)?,
            revoked_at: opt_instant(row.revoked_at)?,
            id: row.id,
            user_id: row.user_id,
            name: row.name,
            token_hash: row.token_hash,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_out_of_range_stored_time_is_a_decode_error_not_a_panic() {
        assert!(matches!(i64::MAX.instant(), Err(StoreError::Decode(_))));
    }

    #[test]
    fn json_that_does_not_fit_is_a_decode_error_naming_the_column() {
        let text: StoreResult<Vec<i64>> = String::from("{\"a\": 1}").decode("jobs.defaults");
        let Err(StoreError::Decode(message)) = text else {
            panic!("expected a decode error, got {text:?}");
        };
        assert!(message.starts_with("jobs.defaults"));
        let value: StoreResult<Vec<i64>> = serde_json::json!({"a": 1}).decode("x");
        assert!(matches!(value, Err(StoreError::Decode(_))));
    }
}

/// An `instances` row with its count of runs going.
#[derive(sqlx::FromRow)]
pub(crate) struct InstanceRow<T> {
    id: String,
    kind: String,
    host: String,
    pid: i64,
    started_at: T,
    heartbeat_at: T,
    stopped_at: Option<T>,
    running_runs: i64,
}

impl<T: StoredTime> TryFrom<InstanceRow<T>> for crate::store::InstanceRecord {
    type Error = StoreError;

    fn try_from(row: InstanceRow<T>) -> StoreResult<Self> {
        Ok(Self {
            kind: row.kind.parse().map_err(StoreError::Decode)?,
            started_at: row.started_at.instant()?,
            heartbeat_at: row.heartbeat_at.instant()?,
            stopped_at: opt_instant(row.stopped_at)?,
            running_runs: u64::try_from(row.running_runs).unwrap_or(0),
            id: row.id,
            host: row.host,
            pid: row.pid,
        })
    }
}

/// A `leadership` row.
#[derive(sqlx::FromRow)]
pub(crate) struct TermRow<T> {
    holder: String,
    elected_at: T,
    expires_at: T,
}

impl<T: StoredTime> TryFrom<TermRow<T>> for crate::store::LeaderTerm {
    type Error = StoreError;

    fn try_from(row: TermRow<T>) -> StoreResult<Self> {
        Ok(Self {
            holder: row.holder,
            elected_at: row.elected_at.instant()?,
            expires_at: row.expires_at.instant()?,
        })
    }
}

/// The bars of a duration chart from the JSON array both backends aggregate them into,
/// `[[id, status, duration_ms, scheduled_for µs], …]`, newest first: one value to hand
/// over instead of a row per run, which is most of what the read costs.
pub(crate) fn run_bars(json: &str) -> StoreResult<Vec<crate::store::RunBar>> {
    let rows: Vec<(i64, String, Option<i64>, i64)> = serde_json::from_str(json)
        .map_err(|e| StoreError::Decode(format!("run durations: {e}")))?;
    let mut bars = rows
        .into_iter()
        .map(|(id, status, duration_ms, scheduled_for)| {
            Ok(crate::store::RunBar {
                id,
                status: parse("run status", &status)?,
                duration_ms,
                scheduled_for: scheduled_for.instant()?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    // An aggregate keeps no order of its own.
    bars.sort_unstable_by_key(|bar| std::cmp::Reverse(bar.id));
    Ok(bars)
}
