//! Cancelling a run from the console or the API, whichever instance runs it: this one
//! stops it at once; a run going on another instance is asked to stop through the
//! database's announcements (PostgreSQL), and that instance stops it.

use super::error::{WebError, WebResult};
use super::state::AppState;
use crate::scheduler::CommandError;
use crate::store::{RunStatus, UNCLAIMED};

/// Asks run `run_id` to stop, on behalf of `by`.
///
/// # Errors
/// [`WebError::NotFound`] for an unknown run; a conflict when it is not going anywhere
/// (or goes on another instance of a database that cannot pass the request on).
pub async fn cancel_run(state: &AppState, run_id: i64, by: &str) -> WebResult<()> {
    match state.scheduler.cancel(run_id, Some(by)) {
        Ok(()) => return Ok(()),
        Err(CommandError::NotRunning(_)) => {}
        Err(error) => return Err(error.into()),
    }
    let run = state
        .store
        .run(run_id)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("there is no run {run_id}")))?;
    if run.status == RunStatus::Queued && run.instance_id == UNCLAIMED {
        // Queued for any instance and not claimed yet: no instance owns it to stop it,
        // so it is cancelled where it waits (unless an instance claims it first).
        let message = format!("cancelled by {by} before it started");
        if state
            .store
            .cancel_unclaimed(run_id, &message, state.clock.now())
            .await?
        {
            return Ok(());
        }
        return Box::pin(cancel_run(state, run_id, by)).await;
    }
    let going_elsewhere = matches!(run.status, RunStatus::Running | RunStatus::Queued)
        && run.instance_id != state.scheduler.instance_id();
    if going_elsewhere && state.store.announce_cancel(run_id, Some(by)).await? {
        return Ok(());
    }
    Err(CommandError::NotRunning(run_id).into())
}
