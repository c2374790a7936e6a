//! Maintenance: an admin holds every job paused at once, with a reason the console shows
//! on every page, and ending it resumes exactly the jobs it paused (a job paused before
//! stays paused). Each pause and resume is in the history, done by the admin "for
//! maintenance" with the reason.
//!
//! The row is written before any job is paused, so two admins cannot start two
//! maintenances, and a second instance sees it at once (the banner reads the database).

use chrono::{DateTime, Utc};

use crate::scheduler::{CommandError, SchedulerHandle};
use crate::store::{Maintenance, SharedStore, StoreError};

/// The longest reason accepted, in characters.
pub const MAX_REASON_CHARS: usize = 200;

/// Why maintenance could not begin or end.
#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    #[error("say why: the reason is shown to everyone on every page")]
    NoReason,
    #[error("the reason can be at most {MAX_REASON_CHARS} characters")]
    ReasonTooLong,
    #[error("a maintenance is already under way, begun by {by} at {since}")]
    AlreadyOn { by: String, since: DateTime<Utc> },
    #[error("no maintenance is under way")]
    NotOn,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who the history names for a change made by maintenance.
fn actor(by: &str, reason: &str) -> String {
    format!("{by} (maintenance: {reason})")
}

/// Begins a maintenance: every job not paused yet is paused. Returns it as recorded.
///
/// # Errors
/// A missing or overlong reason, a maintenance already under way, a store failure.
pub async fn begin(
    store: &SharedStore,
    scheduler: &SchedulerHandle,
    reason: &str,
    by: &str,
    now: DateTime<Utc>,
) -> Result<Maintenance, MaintenanceError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(MaintenanceError::NoReason);
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(MaintenanceError::ReasonTooLong);
    }
    if !store
        .maintenance()
        .begin_maintenance(reason, by, now)
        .await?
    {
        return Err(match store.maintenance().maintenance().await? {
            Some(under_way) => MaintenanceError::AlreadyOn {
                by: under_way.started_by,
                since: under_way.started_at,
            },
            // Ended in between: the caller may simply try again.
            None => MaintenanceError::NotOn,
        });
    }
    let who = actor(by, reason);
    let mut paused = Vec::new();
    for job in store.jobs().await? {
        if job.paused || job.removed_at.is_some() {
            continue;
        }
        match scheduler.pause_as(&job.name, &who).await {
            Ok(()) => paused.push(job.name),
            // Removed since it was read: nothing to hold.
            Err(CommandError::UnknownJob(_) | CommandError::Removed(_)) => {}
            Err(error) => {
                tracing::error!(job = %job.name, %error, "maintenance could not pause a job");
            }
        }
    }
    store.maintenance().set_maintenance_jobs(&paused).await?;
    Ok(Maintenance {
        reason: reason.to_owned(),
        started_by: by.to_owned(),
        started_at: now,
        paused_jobs: paused,
    })
}

/// Ends the maintenance under way: the jobs it paused that are still paused resume.
/// Returns it as it was.
///
/// # Errors
/// No maintenance under way, a store failure.
pub async fn end(
    store: &SharedStore,
    scheduler: &SchedulerHandle,
    by: &str,
) -> Result<Maintenance, MaintenanceError> {
    let ended = store
        .maintenance()
        .end_maintenance()
        .await?
        .ok_or(MaintenanceError::NotOn)?;
    let who = actor(by, &ended.reason);
    for name in &ended.paused_jobs {
        // Resumed by hand meanwhile, or gone: leave it be.
        match store.job_by_name(name).await? {
            Some(job) if job.paused && job.removed_at.is_none() => {}
            _ => continue,
        }
        if let Err(error) = scheduler.resume_as(name, &who).await {
            tracing::error!(job = %name, %error, "ending maintenance could not resume a job");
        }
    }
    Ok(ended)
}
