//! Following the job changes other instances make. An edit, pause or resume is saved by
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
use crate::store::{SharedStore, StoreResult};

/// How often every job's version is compared with what was last loaded.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(60);

/// Starts following; `Ok(None)` on a backend that announces nothing (SQLite, where one
/// server owns the file and sees its own changes).
///
/// # Errors
/// When the database cannot be listened to, or the jobs cannot be read.
pub async fn follow(
    store: SharedStore,
    scheduler: SchedulerHandle,
    stop: CancellationToken,
) -> StoreResult<Option<JoinHandle<()>>> {
    let (changed, mut heard) = mpsc::unbounded_channel();
    let Some(listener) = store.follow_job_changes(changed).await? else {
        return Ok(None);
    };
    let mut versions = versions(&store).await?;
    Ok(Some(tokio::spawn(async move {
        let mut reconcile = tokio::time::interval(RECONCILE_EVERY);
        reconcile.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        reconcile.tick().await;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                news = heard.recv() => match news {
                    Some(Some(job)) => reload(&scheduler, &job).await,
                    Some(None) => reconcile_all(&store, &scheduler, &mut versions).await,
                    None => break,
                },
                _ = reconcile.tick() => reconcile_all(&store, &scheduler, &mut versions).await,
            }
        }
        listener.abort();
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
