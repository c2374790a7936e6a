//! How a handler's ending becomes a run's final state: what it returned, whether it
//! panicked or was abandoned, and why it was asked to stop. Pure, so the executor's
//! `run` only applies it.

use std::any::Any;

use crate::job::{ErrorKind, JobError, Outcome};
use crate::scheduler::live::StopReason;
use crate::store::RunStatus;

/// How the handler's task ended.
pub(super) enum Ending {
    Returned(Result<Outcome, JobError>),
    Panicked(String),
    /// It did not stop within the grace period after being cancelled, and was dropped.
    Abandoned,
    /// It was cancelled before it started.
    NotStarted,
}

/// A run's final state, before the retry policy is applied.
pub(super) struct Verdict {
    pub(super) status: RunStatus,
    pub(super) kind: Option<ErrorKind>,
    pub(super) message: Option<String>,
    pub(super) summary: Option<String>,
    pub(super) retry_after: Option<std::time::Duration>,
}

pub(super) fn ending_of(ended: Result<Result<Outcome, JobError>, Box<dyn Any + Send>>) -> Ending {
    match ended {
        Ok(result) => Ending::Returned(result),
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|text| (*text).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            Ending::Panicked(message)
        }
    }
}

pub(super) fn verdict(
    ending: Ending,
    stop: Option<&StopReason>,
    timeout: std::time::Duration,
) -> Verdict {
    let failed = |status, kind, message: String| Verdict {
        status,
        kind: Some(kind),
        message: Some(message),
        summary: None,
        retry_after: None,
    };
    let suffix = match ending {
        Ending::Abandoned => "; the handler did not stop within the grace period and was abandoned",
        Ending::NotStarted => " before it started",
        _ => "",
    };
    match (ending, stop) {
        // A handler that finished its work despite being asked to stop did the work.
        (Ending::Returned(Ok(outcome)), _) => Verdict {
            status: RunStatus::Succeeded,
            kind: None,
            message: None,
            summary: outcome.summary,
            retry_after: None,
        },
        (Ending::Panicked(message), _) => failed(
            RunStatus::Failed,
            ErrorKind::Panic,
            format!("the handler panicked: {message}"),
        ),
        (_, Some(StopReason::Timeout)) => failed(
            RunStatus::TimedOut,
            ErrorKind::Timeout,
            format!(
                "timed out after {}{suffix}",
                crate::schedule::format_duration(timeout)
            ),
        ),
        (_, Some(StopReason::Cancelled { by })) => {
            let who = by
                .as_deref()
                .map(|by| format!(" by {by}"))
                .unwrap_or_default();
            failed(
                RunStatus::Cancelled,
                ErrorKind::Cancelled,
                format!("cancelled{who}{suffix}"),
            )
        }
        (_, Some(StopReason::Replaced)) => failed(
            RunStatus::Cancelled,
            ErrorKind::Cancelled,
            format!("cancelled: replaced by a newer run{suffix}"),
        ),
        (_, Some(StopReason::Shutdown)) => failed(
            RunStatus::Interrupted,
            ErrorKind::Interrupted,
            format!("interrupted: the process was shutting down{suffix}"),
        ),
        (Ending::Returned(Err(error)), None) => {
            let kind = error.kind();
            let retry_after = match &error {
                JobError::RateLimited { retry_after, .. } => Some(*retry_after),
                _ => None,
            };
            let status = match kind {
                ErrorKind::Cancelled => RunStatus::Cancelled,
                ErrorKind::Fatal => RunStatus::Failed,
                _ => RunStatus::Retrying,
            };
            Verdict {
                status,
                kind: Some(kind),
                message: Some(error.to_string()),
                summary: None,
                retry_after,
            }
        }
        (Ending::Abandoned | Ending::NotStarted, None) => failed(
            RunStatus::Interrupted,
            ErrorKind::Interrupted,
            "the run was abandoned".into(),
        ),
    }
}
