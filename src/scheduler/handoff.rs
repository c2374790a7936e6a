//! What the scheduler task and the executor hand each other: the run to claim and the
//! job it belongs to on the way out, how it ended (and its retry) on the way back. Both
//! sides import these from here, so neither imports the other's types.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use super::CommandError;
use crate::job::{ErasedHandler, JobSpec};
use crate::store::{FireClaim, NewRun, RetryClaim, RunRecord};

/// How a dispatched run is to be recorded before it starts.
pub(crate) enum Claim {
    Fire(FireClaim),
    Retry(RetryClaim),
    Manual(NewRun, oneshot::Sender<Result<i64, CommandError>>),
    /// Claimed already from the runs queued for any instance; `ahead` of its start or
    /// not.
    Queued {
        run_id: i64,
        row: NewRun,
        ahead: bool,
    },
}

/// What the executor needs of a job; a snapshot, so an edit during a run does not
/// change the run.
pub(crate) struct JobSnapshot {
    pub id: i64,
    pub name: String,
    pub spec: Arc<JobSpec>,
    pub handler: Arc<dyn ErasedHandler>,
    /// The values its params declare secret, found once when the job was loaded.
    pub secrets: Arc<[String]>,
}

/// A dispatched run is over: sent by the executor to the scheduler.
#[derive(Debug)]
pub(crate) struct Ended {
    pub job_id: i64,
    pub dispatch: u64,
    /// A retry to schedule.
    pub retry: Option<RetryDue>,
    /// The claim was lost to someone else (an edit, or another instance): the job's
    /// schedule in memory may be stale.
    pub lost: bool,
    /// The database refused the claim: it is tried again after a backoff.
    pub refused: Option<Refused>,
    /// A retry that waits because an exclusive run of its job is going (perhaps on
    /// another instance).
    pub busy: Option<RetryDue>,
    /// A fire queued ahead of its slot that met an exclusive run of its job going: it
    /// was given back, to be decided at its slot.
    pub decide_at_slot: Option<super::due_queue::FireDue>,
    /// How the run ended, once its end was committed: the jobs that follow it may be
    /// due.
    pub finished: Option<Finished>,
}

/// The recorded end of a run, for the jobs that follow its job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Finished {
    pub status: crate::store::RunStatus,
    pub finished_at: DateTime<Utc>,
    /// No retry follows: this is the chain's last word on the run.
    pub for_good: bool,
}

/// A claim the database refused (a write error, not a claim lost to someone else).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The fire of this slot, which is still the job's stored next fire.
    Fire {
        nominal: DateTime<Utc>,
    },
    Retry(RetryDue),
}

impl Refused {
    /// What to try again if `claim` is refused; a manual run is not tried again (its
    /// caller is told).
    pub(crate) fn of(claim: &Claim) -> Option<Self> {
        match claim {
            Claim::Fire(claim) => Some(Refused::Fire {
                nominal: claim.expected,
            }),
            Claim::Retry(claim) => claim.run.as_ref().map(|run| {
                Refused::Retry(RetryDue {
                    job_id: run.job_id,
                    failed_run_id: claim.failed_run_id,
                    retry_at: claim.expected,
                    next_attempt: run.attempt,
                    first_run_id: run.first_run_id.unwrap_or(claim.failed_run_id),
                })
            }),
            Claim::Manual(..) | Claim::Queued { .. } => None,
        }
    }
}

/// A retry waiting for its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryDue {
    pub job_id: i64,
    pub failed_run_id: i64,
    pub retry_at: DateTime<Utc>,
    /// The retry's attempt number: one past the failed one, or the same when the
    /// failed run never started (it was no attempt).
    pub next_attempt: u32,
    pub first_run_id: i64,
}

impl RetryDue {
    /// The retry of `run`, a stored run with a retry pending.
    pub(crate) fn of_stored(run: &RunRecord, now: DateTime<Utc>) -> Self {
        Self {
            job_id: run.job_id,
            failed_run_id: run.id,
            retry_at: run.retry_at.unwrap_or(now),
            next_attempt: run.attempt + u32::from(run.started_at.is_some()),
            first_run_id: run.first_run_id.unwrap_or(run.id),
        }
    }
}
