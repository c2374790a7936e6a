//! The rows the store reads and writes, shared by both backends.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::job::JobSettings;

/// How a run came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Schedule,
    Manual,
    Retry,
    Dependency,
    CatchUp,
}

/// Where a run stands. `Queued` and `Running` are the statuses that are not final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Due and claimed, but waiting for a free executor slot: its handler has not
    /// started (`started_at` is empty).
    Queued,
    Running,
    Succeeded,
    /// Failed, and no retry will follow (fatal error, retries not allowed), or its retry
    /// has started: the attempt that followed tells the rest.
    Failed,
    /// Failed, and a retry is scheduled (see `retry_at`) that has not started yet.
    Retrying,
    /// Failed on its last allowed attempt: the job needs attention.
    Dead,
    Cancelled,
    TimedOut,
    Interrupted,
    Skipped,
}

macro_rules! text_enum {
    ($ty:ty { $($variant:ident => $text:literal),* $(,)? }) => {
        impl $ty {
            /// The name stored in the database and shown in the API.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),* }
            }
        }

        impl std::str::FromStr for $ty {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)*
                    other => Err(format!("unknown {} {other:?}", stringify!($ty))),
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use text_enum;

text_enum!(Trigger {
    Schedule => "schedule",
    Manual => "manual",
    Retry => "retry",
    Dependency => "dependency",
    CatchUp => "catch_up",
});

text_enum!(RunStatus {
    Queued => "queued",
    Running => "running",
    Succeeded => "succeeded",
    Failed => "failed",
    Retrying => "retrying",
    Dead => "dead",
    Cancelled => "cancelled",
    TimedOut => "timed_out",
    Interrupted => "interrupted",
    Skipped => "skipped",
});

impl RunStatus {
    /// The statuses of an attempt that failed, retried or not: what the dashboard counts
    /// as failed, `status=failures` lists and a `failed` alert reports.
    pub const FAILURES: [RunStatus; 4] = [
        RunStatus::Failed,
        RunStatus::Retrying,
        RunStatus::Dead,
        RunStatus::TimedOut,
    ];

    /// Whether the run has ended.
    pub fn is_final(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }

    /// Whether it is one of [`RunStatus::FAILURES`].
    pub fn is_failure(self) -> bool {
        Self::FAILURES.contains(&self)
    }
}

/// A job as stored: its file defaults, the operators' overrides, and scheduling state.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: i64,
    pub name: String,
    /// The settings from the settings file (or the demo set).
    pub defaults: JobSettings,
    /// Fields operators changed at run time, as a JSON object of [`JobSettings`] fields;
    /// they win over `defaults`.
    pub overrides: serde_json::Map<String, serde_json::Value>,
    pub paused: bool,
    /// Set when the job disappeared from the settings file; its history stays.
    pub removed_at: Option<DateTime<Utc>>,
    /// The next nominal fire time (before jitter); `None` when not scheduled.
    pub next_run_at: Option<DateTime<Utc>>,
    /// Bumped by every change, for optimistic concurrency.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One run of a job, as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub job_id: i64,
    pub job_name: String,
    pub trigger: Trigger,
    pub attempt: u32,
    /// The first attempt's id, for retries; `None` on a first attempt.
    pub first_run_id: Option<i64>,
    pub status: RunStatus,
    pub scheduled_for: DateTime<Utc>,
    /// When the handler started: empty while the run is queued, and for a run that
    /// ended before it ever started (cancelled while queued, say). While a run is
    /// `running` this is when its slot began; the finish records the true start.
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// `finished_at - started_at`; empty while going and for runs that never started.
    pub duration_ms: Option<i64>,
    pub items_checked: i64,
    pub items_updated: i64,
    pub items_total: Option<i64>,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    pub summary: Option<String>,
    pub instance_id: String,
    /// When a retry of this run is due; cleared when the retry is claimed.
    pub retry_at: Option<DateTime<Utc>>,
}

/// A run to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    pub job_id: i64,
    pub trigger: Trigger,
    pub attempt: u32,
    pub first_run_id: Option<i64>,
    /// `Running`, or `Skipped` for a fire recorded but not run.
    pub status: RunStatus,
    pub scheduled_for: DateTime<Utc>,
    /// When the handler is to start (its slot). The finish replaces it with the moment
    /// it really started, which is later when the run waited for a free slot. A skipped
    /// fire keeps the moment it was decided.
    pub started_at: DateTime<Utc>,
    /// Set for rows that are final when inserted (skipped).
    pub finished_at: Option<DateTime<Utc>>,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    /// The instance that runs it; [`UNCLAIMED`] for a run queued for whichever instance
    /// claims it first (see [`crate::store::Store::claim_queued`]).
    pub instance_id: String,
    /// Its job forbids overlap: the database holds at most one exclusive run of a job
    /// `queued` or `running` at a time, whichever instance or process inserts it.
    pub exclusive: bool,
}

impl NewRun {
    /// This fire recorded as skipped, decided at `now`, because the previous run of its
    /// job was still going.
    pub fn skipped_by_overlap(mut self, now: DateTime<Utc>) -> Self {
        self.status = RunStatus::Skipped;
        self.finished_at = Some(now);
        self.error_kind = Some(crate::job::ErrorKind::Overlap.as_str().into());
        self.error_message = Some("skipped: the previous run was still going".into());
        self.exclusive = false;
        self
    }
}

/// The `instance_id` of a run queued for any instance: the leader enqueues scheduled
/// fires so, on a database several instances share.
pub const UNCLAIMED: &str = "";

/// What an instance asks for when it claims runs queued for any instance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueuedClaim {
    pub now: DateTime<Utc>,
    /// At most this many runs whose start has come.
    pub due: usize,
    /// At most this many runs starting after `now`, by `ahead_until`.
    pub ahead: usize,
    pub ahead_until: DateTime<Utc>,
}

/// Claim a scheduled fire: `UPDATE jobs SET next_run_at = next WHERE id = job_id AND
/// next_run_at = expected`; if (and only if) that changed the row, insert `run`.
#[derive(Debug, Clone, PartialEq)]
pub struct FireClaim {
    pub job_id: i64,
    pub expected: DateTime<Utc>,
    pub next: Option<DateTime<Utc>>,
    /// `None` moves the schedule without recording a run (a skipped misfire).
    pub run: Option<NewRun>,
    /// Claimed ahead of its slot: when an exclusive run of the job is going, the claim
    /// is given back (the schedule stays at `expected`) and answered
    /// [`ClaimResult::Busy`], so that the fire is decided at its slot, when that run may
    /// have ended. At the slot it is recorded as skipped instead.
    pub early: bool,
}

/// Claim a due retry: `UPDATE runs SET retry_at = NULL WHERE id = failed_run_id AND
/// retry_at = expected`; if that changed the row, insert `run`. The claim also turns the
/// failed run's `retrying` into `failed`: its retry has started.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryClaim {
    pub failed_run_id: i64,
    pub expected: DateTime<Utc>,
    /// `None` ends the retry chain without a run (its job was removed or disabled).
    pub run: Option<NewRun>,
}

/// A change of a run's state between its claim and its end, written only when a run
/// waits for a free slot: it becomes `Queued` (no start) and later `Running` (with the
/// moment its handler started). Runs that get a slot at once never need one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunMark {
    pub run_id: i64,
    pub status: RunStatus,
    pub started_at: Option<DateTime<Utc>>,
}

/// The end of a run. It carries the true start, so a run that never waited costs one
/// write at its claim and one here.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFinish {
    pub run_id: i64,
    pub status: RunStatus,
    /// When the handler started; `None` when it never did.
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: DateTime<Utc>,
    /// `finished_at - started_at`; `None` when the handler never started.
    pub duration_ms: Option<i64>,
    pub items_checked: i64,
    pub items_updated: i64,
    pub items_total: Option<i64>,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    pub summary: Option<String>,
    /// When set, a retry is due then (status is `Retrying`).
    pub retry_at: Option<DateTime<Utc>>,
}

/// One captured log event of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogLine {
    pub run_id: i64,
    pub ts: DateTime<Utc>,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    pub level: String,
    pub message: String,
    /// The event's fields (secrets already redacted), as a JSON object.
    pub fields: serde_json::Value,
}

/// Everything the scheduler wants written, applied in one transaction (group commit).
/// Within the batch: claims first, then inserts, then marks, then logs, then finishes,
/// so a run's log lines land before (or with) its final status, and a finish always
/// wins over a mark of the same run.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct WriteBatch {
    pub fires: Vec<FireClaim>,
    pub retries: Vec<RetryClaim>,
    pub inserts: Vec<NewRun>,
    pub marks: Vec<RunMark>,
    pub logs: Vec<LogLine>,
    pub finishes: Vec<RunFinish>,
}

impl WriteBatch {
    pub fn is_empty(&self) -> bool {
        self.fires.is_empty()
            && self.retries.is_empty()
            && self.inserts.is_empty()
            && self.marks.is_empty()
            && self.logs.is_empty()
            && self.finishes.is_empty()
    }
}

/// What a [`WriteBatch`] did, index for index.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BatchResult {
    /// For each fire claim, in order.
    pub fires: Vec<ClaimResult>,
    pub retries: Vec<ClaimResult>,
    /// For each insert, in order: [`ClaimResult::Run`] or [`ClaimResult::Busy`].
    pub inserts: Vec<ClaimResult>,
}

/// The result of one compare-and-swap claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimResult {
    /// Another instance (or an edit) changed the row first: this fire is not ours.
    Lost,
    /// Claimed; no run was asked for.
    Claimed,
    /// Claimed, and the run was inserted with this id.
    Run(i64),
    /// A fire claimed while an exclusive run of its job was going: the slot is used up
    /// and recorded as `skipped` with this id.
    Skipped(i64),
    /// An exclusive run of the job is going, or the scheduled slot has its run already:
    /// nothing was changed (a retry stays pending, a run is not inserted).
    Busy,
}

impl ClaimResult {
    /// The id of the run this inserted, if it did.
    pub fn run_id(self) -> Option<i64> {
        match self {
            Self::Run(id) => Some(id),
            _ => None,
        }
    }
}

/// Which runs to list, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFilter {
    pub job_id: Option<i64>,
    pub status: Option<RunStatus>,
    /// Only runs with one of these statuses (empty: any).
    pub any_status: Vec<RunStatus>,
    pub trigger: Option<Trigger>,
    /// Only runs that started at or after this.
    pub started_from: Option<DateTime<Utc>>,
    /// Only runs that started before this.
    pub started_before: Option<DateTime<Utc>>,
    /// Only runs whose error message contains this, whatever the case.
    pub error_contains: Option<String>,
    /// Only runs with `id < before` (keyset paging).
    pub before: Option<i64>,
    pub limit: u32,
}

/// How much history `prune_history` removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    pub runs_deleted: u64,
    pub log_lines_deleted: u64,
}

impl JobRecord {
    /// The settings in force: the file defaults with the operators' overrides on top.
    /// An override of the schedule (`every` or `cron`) replaces the whole schedule of the
    /// defaults, so that switching from an interval to a cron line leaves no stale field.
    ///
    /// # Errors
    /// When the stored overrides do not fit the settings' shape.
    pub fn effective_settings(&self) -> Result<JobSettings, serde_json::Error> {
        let serde_json::Value::Object(mut merged) = serde_json::to_value(&self.defaults)? else {
            return Ok(self.defaults.clone());
        };
        if self.overrides.contains_key("every") || self.overrides.contains_key("cron") {
            for field in ["every", "cron", "timezone"] {
                merged.remove(field);
            }
        }
        for (field, value) in &self.overrides {
            if value.is_null() {
                merged.remove(field);
            } else {
                merged.insert(field.clone(), value.clone());
            }
        }
        serde_json::from_value(serde_json::Value::Object(merged))
    }
}

/// One field of a job changed by an operator, for the audit trail (`job_changes`).
/// Values are the effective ones, as JSON; `None` when the field was (or becomes) unset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobChange {
    /// Who made the change: a user name, or `system`.
    pub actor: String,
    /// A [`JobSettings`] field name, or `paused`.
    pub field: String,
    pub old_value: Option<serde_json::Value>,
    pub new_value: Option<serde_json::Value>,
}

/// Everything an operator's edit writes to a job, saved in one transaction by
/// [`crate::store::Store::update_job_overrides`]: the scheduler plans it whole, so a
/// failed write leaves neither a half-saved change nor an unscheduled job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobEdit {
    pub overrides: serde_json::Map<String, serde_json::Value>,
    pub paused: bool,
    /// The next fire worked out from the edited settings; `None` leaves the job
    /// unscheduled (paused or disabled).
    pub next_run_at: Option<DateTime<Utc>>,
    /// One history row per changed field, `paused` included.
    pub changes: Vec<JobChange>,
}

/// A recorded [`JobChange`], with its job's name and when it was made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobChangeRecord {
    pub id: i64,
    pub job_id: i64,
    pub job_name: String,
    pub actor: String,
    pub field: String,
    pub old_value: Option<serde_json::Value>,
    pub new_value: Option<serde_json::Value>,
    pub changed_at: DateTime<Utc>,
}

/// Which recorded changes to list, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChangeFilter {
    pub job_id: Option<i64>,
    /// Only changes with `id < before` (keyset paging).
    pub before: Option<i64>,
    pub limit: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(overrides: serde_json::Value) -> JobRecord {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        JobRecord {
            id: 1,
            name: "sync".into(),
            defaults: JobSettings {
                name: "sync".into(),
                handler: "command".into(),
                cron: Some("0 3 * * *".into()),
                timezone: Some("Europe/Berlin".into()),
                max_attempts: Some(5),
                ..JobSettings::default()
            },
            overrides: overrides.as_object().cloned().unwrap_or_default(),
            paused: false,
            removed_at: None,
            next_run_at: None,
            version: 1,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn overrides_win_over_file_defaults() {
        let settings = record(serde_json::json!({"max_attempts": 2}))
            .effective_settings()
            .expect("valid");
        assert_eq!(settings.max_attempts, Some(2));
        assert_eq!(settings.cron.as_deref(), Some("0 3 * * *"));
    }

    #[test]
    fn an_overridden_schedule_replaces_the_whole_default_schedule() {
        let settings = record(serde_json::json!({"every": "5m"}))
            .effective_settings()
            .expect("valid");
        assert_eq!(
            (settings.every.as_deref(), settings.cron, settings.timezone),
            (Some("5m"), None, None)
        );
    }

    #[test]
    fn a_null_override_clears_a_default() {
        let settings = record(serde_json::json!({"max_attempts": null}))
            .effective_settings()
            .expect("valid");
        assert_eq!(settings.max_attempts, None);
    }
}
