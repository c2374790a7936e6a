//! Whether a job's `after` jobs have all succeeded since it last started: the same read on
//! both backends (the newest run of each job, served by `runs_by_job`), and one decision.

use chrono::{DateTime, Utc};

use super::{RunRecord, RunStatus};

/// A job's newest run, skipped fires aside (they never ran).
pub(crate) const NEWEST_RUN: &str =
    "WHERE job_id = $1 AND status <> 'skipped' ORDER BY id DESC LIMIT 1";

/// Given the newest run of each upstream job and of the follower: the key of the run by
/// dependency they make due (the latest upstream end), if every upstream run succeeded
/// after the follower's newest run started. A follower run that started later already
/// worked on what they made, whatever started it; one that has not started yet will.
pub(crate) fn made_due(
    upstream: &[Option<RunRecord>],
    follower: Option<&RunRecord>,
) -> Option<DateTime<Utc>> {
    let since = match follower {
        None => None,
        Some(run) => Some(run.started_at?),
    };
    let mut latest: Option<DateTime<Utc>> = None;
    for run in upstream {
        let run = run.as_ref()?;
        let ended = run
            .finished_at
            .filter(|_| run.status == RunStatus::Succeeded)?;
        if since.is_some_and(|since| ended <= since) {
            return None;
        }
        latest = latest.max(Some(ended));
    }
    latest
}
