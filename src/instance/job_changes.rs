//! Following the job changes other instances make, and the cancel requests they pass
//! on. An edit, pause or resume is saved by
//! whichever instance the operator used; every instance reloads that job at once when
//! the database announces it (PostgreSQL's NOTIFY, sent with the change's commit), and
//! a periodic reconciliation by version catches what an announcement missed (a lost
//! connection, a change made by a process that does not announce).

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::scheduler::SchedulerHandle;
use crate::store::{Announcement, SharedStore, StoreResult};

/// How often every job's version is compared with what was last loaded, while the
/// announcements are heard.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(60);

/// How often it is compared without announcements (`[scheduler] listen = false`).
pub const POLL_EVERY: Duration = Duration::from_secs(5);

/// Starts following; `Ok(None)` on SQLite, where one server owns the file and sees its
/// own changes. With `listen` off, changes are found by polling alone.
///
/// # Errors
/// When the database cannot be listened to, or the jobs cannot be read.
pub async fn follow(
    store: SharedStore,
    scheduler: SchedulerHandle,
    stop: CancellationToken,
    listen: bool,
) -> StoreResult<Option<JoinHandle<()>>> {
    if store.backend() == "sqlite" {
        return Ok(None);
    }
    let (announcements, mut heard) = mpsc::unbounded_channel();
    let listener = if listen {
        store.follow_announcements(announcements).await?
    } else {
        None
    };
    scheduler.set_claims_announced(listener.is_some());
    let every = if listener.is_some() {
        RECONCILE_EVERY
    } else {
        POLL_EVERY
    };
    let mut versions = versions(&store).await?;
    Ok(Some(tokio::spawn(async move {
        let mut reconcile = tokio::time::interval(every);
        reconcile.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        reconcile.tick().await;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                Some(news) = heard.recv() => match news {
                    Announcement::JobChanged(job) => reload(&scheduler, &job).await,
                    Announcement::CancelRun { run_id, by } => {
                        // Every instance hears it; only the one running the run acts.
                        let _ = scheduler.cancel(run_id, by.as_deref());
                    }
                    Announcement::RunsQueued => scheduler.wake_claimer(),
                    Announcement::MaybeMissed => {
                        scheduler.wake_claimer();
                        reconcile_all(&store, &scheduler, &mut versions).await;
                    }
                },
                _ = reconcile.tick() => reconcile_all(&store, &scheduler, &mut versions).await,
            }
        }
        if let Some(listener) = listener {
            listener.abort();
        }
    })))
}

async fn versions(store: &SharedStore) -> StoreResult<HashMap<String, i64>> {
    Ok(store
        .jobs()
        .await?
        .into_iter()
        .map(|job| (job.name, job.version))
        .collect())
}

/// Reloads every job whose version moved since it was last seen.
async fn reconcile_all(
    store: &SharedStore,
    scheduler: &SchedulerHandle,
    seen: &mut HashMap<String, i64>,
) {
    let jobs = match store.jobs().await {
        Ok(jobs) => jobs,
        Err(error) => {
            tracing::warn!(%error, "could not reconcile the jobs with the database");
            return;
        }
    };
    for job in jobs {
        if seen.get(&job.name) != Some(&job.version) {
            reload(scheduler, &job.name).await;
            seen.insert(job.name, job.version);
        }
    }
}

async fn reload(scheduler: &SchedulerHandle, job: &str) {
    if let Err(error) = scheduler.reload(job).await {
        tracing::warn!(job, %error, "could not reload a job another instance changed");
    }
}
