//! Shapes of the console's aggregate reads (the dashboard, the job and run pages).

use chrono::{DateTime, Utc};

use super::RunStatus;

/// How many runs of one job, with one status, started in one time bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutcomeBucket {
    pub job_id: i64,
    /// The bucket's number, counted from the window's start: bucket `n` holds the runs
    /// that started in `[since + n × width, since + (n + 1) × width)`.
    pub bucket: u32,
    pub status: RunStatus,
    pub runs: u32,
}

/// The start of bucket `bucket` of a window that starts at `since`.
pub fn bucket_start(since: DateTime<Utc>, width: chrono::Duration, bucket: u32) -> DateTime<Utc> {
    since + width * i32::try_from(bucket).unwrap_or(i32::MAX)
}

/// Which jobs a dashboard page lists: by name, from the keyset on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobQuery {
    /// Only names containing this (names are lowercase).
    pub name_contains: Option<String>,
    /// Only jobs of this handler.
    pub handler: Option<String>,
    /// Only names after this one (keyset paging).
    pub after: Option<String>,
    pub limit: u32,
}

/// A run as a job's duration chart draws it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunBar {
    pub id: i64,
    pub status: RunStatus,
    pub duration_ms: Option<i64>,
    pub scheduled_for: DateTime<Utc>,
}
