//! What the CLI's one-off commands need from the application without serving it: the
//! jobs with their state, and one run of one job.

use anyhow::Context as _;

use super::{scheduler_config, use_demo_jobs_without_file};
use crate::config::Settings;
use crate::instance::Registration;
use crate::job::JobSettings;
use crate::scheduler::{self, SchedulerParts};
use crate::store::writer::Writer;
use crate::store::{
    self, InstanceKind, JobRecord, JobRuns, JobState, RunRecord, SharedStore, StoreResult,
};

/// A job as the CLI's `jobs` listing shows it.
pub struct JobOverview {
    pub job: JobRecord,
    /// The settings in force, or the file's when the stored overrides are unreadable.
    pub settings: JobSettings,
    pub state: JobState,
    pub last_run: Option<RunRecord>,
}

/// Every job, removed ones included, by name, with its state and latest run.
///
/// # Errors
/// When the store fails.
pub async fn job_overviews(store: &SharedStore) -> StoreResult<Vec<JobOverview>> {
    let jobs = store.jobs().await?;
    let latest = store.latest_runs().await?;
    let going = store.running_runs().await?;
    let runs = JobRuns::new(&latest, &going);
    Ok(jobs
        .into_iter()
        .map(|job| JobOverview {
            settings: job
                .effective_settings()
                .unwrap_or_else(|_| job.defaults.clone()),
            state: runs.state(&job),
            last_run: runs.latest(job.id).cloned(),
            job,
        })
        .collect())
}

/// Runs the job named `job` once, now, in this process, records the run and returns it
/// (the CLI's `run`). No scheduler loop and no HTTP server are started.
///
/// # Errors
/// When the settings' jobs are invalid, the job is unknown, or the store fails.
pub async fn run_job_once(mut settings: Settings, job: &str) -> anyhow::Result<RunRecord> {
    let store = store::open(&settings.database_url)?;
    let registry = crate::jobs::builtins(store.clone()).build();
    use_demo_jobs_without_file(&mut settings);
    settings.job_specs(&registry)?;
    store.migrate().await?;
    let clock = std::sync::Arc::new(crate::clock::SystemClock);
    // Syncing the settings file here would mark every job missing from it as removed,
    // behind the back of a server that may use another file. Only a database that has
    // no jobs at all is seeded from the settings.
    if store.jobs().await?.is_empty() {
        store.sync_jobs(&settings.jobs, chrono::Utc::now()).await?;
    } else if store.job_by_name(job).await?.is_none() && settings.jobs.iter().any(|j| j.name == job)
    {
        anyhow::bail!(
            "job {job:?} is in the settings file but not in the database yet: start `batchboard serve` with this file once"
        );
    }
    let config = scheduler_config(&settings);
    // Registered, so that a server starting meanwhile leaves this run alone.
    let registration = Registration::register(
        store.clone(),
        clock.clone(),
        &config.instance_id,
        InstanceKind::Run,
    )
    .await
    .context("registering this instance")?;
    let (writer, writer_task) = Writer::start(store.clone());
    let parts = SchedulerParts {
        store: store.clone(),
        writer,
        registry,
        clock,
        config,
        leading: None,
    };
    let run_id = scheduler::run_once(parts, job).await;
    writer_task.await.context("the writer task failed")?;
    registration.deregister().await;
    let run_id = run_id?;
    store.run(run_id).await?.context("the run's row is missing")
}
