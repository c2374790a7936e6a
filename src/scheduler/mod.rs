//! The scheduler: one task that keeps every job's next due time in a min-heap, sleeps
//! until the earliest, claims each fire in the store and hands the run to the executor.
//!
//! The rest of the program talks to it through a [`SchedulerHandle`]: commands go over a
//! channel and wake the task at once, so there is no polling anywhere. What happens is
//! published as [`SchedulerEvent`]s, and the runs going on right now are visible through
//! [`SchedulerHandle::live_runs`].

mod claiming;
mod core;
mod due_queue;
mod edit;
mod events;
mod executor;
pub mod followers;
mod handoff;
mod lead;
mod live;
pub mod metrics;
mod overlap;
pub mod policy;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, mpsc, oneshot};

use self::events::EventBus;
pub use self::events::Generation;
use tokio::task::JoinHandle;

use crate::clock::SharedClock;
use crate::job::Registry;
use crate::runlog::RunLogPolicy;
use crate::store::writer::Writer;
use crate::store::{JobRecord, RunStatus, SharedStore, Trigger};

pub use claiming::ClaimStats;
pub use edit::{EditError, JobPatch, NOT_A_SETTING};
pub use live::{LiveRun, LiveRuns, StopReason};

/// How the scheduler behaves; see the `[scheduler]` table of the settings file.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Runs executing at once, across all jobs; more wait for a free slot.
    pub max_concurrent_runs: usize,
    /// At shutdown, how long running runs may take to finish before they are cancelled.
    pub shutdown_grace: Duration,
    /// How long a cancelled (or timed-out) handler may take to stop before it is abandoned.
    pub timeout_grace: Duration,
    /// This process's name in the `runs.instance_id` column.
    pub instance_id: String,
    /// Queue scheduled fires for every instance of the database to claim, instead of
    /// running them here: for several instances on PostgreSQL.
    pub shared_execution: bool,
    /// Redaction and size limits of run logs.
    pub runlog: Arc<RunLogPolicy>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            max_concurrent_runs: 256,
            shutdown_grace: Duration::from_secs(30),
            timeout_grace: Duration::from_secs(10),
            instance_id: new_instance_id(),
            shared_execution: false,
            runlog: Arc::new(RunLogPolicy::new(10_000, &[])),
        }
    }
}

/// The actor named in the history for changes no person asked for.
pub const SYSTEM_ACTOR: &str = "system";

/// A name for this process that is unique across restarts and machines.
pub fn new_instance_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
    let unique = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &unique[..8])
}

/// What the scheduler needs to run.
pub struct SchedulerParts {
    pub store: SharedStore,
    pub writer: Writer,
    pub registry: Registry,
    pub clock: SharedClock,
    pub config: SchedulerConfig,
    /// Whether this instance leads (decides scheduled fires); `None`: it always does
    /// (one-off runs, tests of one scheduler).
    pub leading: Option<crate::instance::Leading>,
}

/// Something that happened in the scheduler, for live views and tests.
#[derive(Debug, Clone, PartialEq)]
pub enum SchedulerEvent {
    /// A run's `running` row is committed and its handler is about to start.
    RunStarted {
        run_id: i64,
        job: String,
        trigger: Trigger,
        attempt: u32,
        scheduled_for: DateTime<Utc>,
    },
    /// A run ended and its final row is committed.
    RunFinished {
        run_id: i64,
        job: String,
        status: RunStatus,
        retry_at: Option<DateTime<Utc>>,
    },
    /// The database refused to record the start of a run of `job` (`refusals` times in a
    /// row); the claim is tried again at `retry_at`.
    ClaimRefused {
        job: String,
        refusals: u32,
        retry_at: DateTime<Utc>,
    },
    /// A fire was recorded as skipped because the previous run was still going.
    FireSkipped {
        job: String,
        scheduled_for: DateTime<Utc>,
    },
    /// A job's schedule or state changed (edit, pause, resume, reload).
    JobChanged { job: String },
    /// The scheduler stopped firing and is waiting for running runs to end.
    ShuttingDown,
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("there is no job named {0:?}")]
    UnknownJob(String),
    #[error("job {0:?} was removed from the settings file")]
    Removed(String),
    #[error("job {job:?} is already running{} and does not allow overlapping runs", run_id.map(|id| format!(" (run {id})")).unwrap_or_default())]
    AlreadyRunning { job: String, run_id: Option<i64> },
    #[error("run {0} is not running")]
    NotRunning(i64),
    #[error("job {job:?} cannot run: {reason}")]
    Invalid { job: String, reason: String },
    #[error("the scheduler has stopped")]
    Stopped,
    #[error("the database could not be written: {0}")]
    Store(String),
}

enum Command {
    RunNow {
        job: String,
        reply: oneshot::Sender<Result<i64, CommandError>>,
    },
    Pause {
        job: String,
        actor: String,
        reply: oneshot::Sender<Result<(), CommandError>>,
    },
    Resume {
        job: String,
        actor: String,
        reply: oneshot::Sender<Result<(), CommandError>>,
    },
    Edit {
        job: String,
        edit: edit::Edit,
        expected_version: i64,
        actor: String,
        reply: oneshot::Sender<Result<JobRecord, EditError>>,
    },
    Reload {
        job: String,
        reply: oneshot::Sender<Result<(), CommandError>>,
    },
    Sync {
        reply: oneshot::Sender<()>,
    },
    Shutdown,
    /// From the executor: a dispatched run is over (or never started).
    Ended(handoff::Ended),
    /// From the lease check: runs of instances that are gone.
    Orphaned(Vec<crate::store::RunRecord>),
    /// From the leader's lease check: retries that instances now gone were to start.
    Adopt(Vec<crate::store::RunRecord>),
    /// A retry of a run interrupted by the lease check, once its end is written.
    QueueRetry(handoff::RetryDue),
    /// A pause, resume or edit, as the store saved (or refused) it.
    Saved(Box<core::Saved>),
    /// A reload's read or write.
    Reloaded(Box<core::Reloaded>),
    /// Runs the claim loop took from the queue, and when it took them.
    Claimed(Vec<crate::store::RunRecord>, DateTime<Utc>),
    /// Every `after` job of `job_id` has succeeded since it last started, the last of
    /// them at `at`.
    UpstreamDone {
        job_id: i64,
        at: DateTime<Utc>,
    },
    /// A run of `job_id` that did not end here (its instance is gone) was recorded as
    /// ended: the jobs that follow it may be due.
    RunEnded {
        job_id: i64,
        finished: handoff::Finished,
    },
}

/// A cheap, cloneable way to command the scheduler and watch it.
#[derive(Clone)]
pub struct SchedulerHandle {
    commands: mpsc::UnboundedSender<Command>,
    events: EventBus,
    live: LiveRuns,
    instance_id: Arc<str>,
    max_concurrent_runs: usize,
    claiming: Arc<claiming::Claiming>,
    followers: followers::PublishedFollowers,
}

impl SchedulerHandle {
    /// The jobs that follow `job` (`after`, `after_failure`), by name, as this scheduler
    /// runs them.
    pub fn followers_of(&self, job: &str) -> Vec<(String, crate::job::chain::Follows)> {
        self.followers.of(job)
    }

    /// Every job in a chain, by name, as this scheduler runs them.
    pub fn chained_jobs(&self) -> std::collections::BTreeSet<String> {
        self.followers.chained()
    }

    /// Starts a run of `job` now, outside its schedule; returns the new run's id once its
    /// row is committed.
    ///
    /// # Errors
    /// When the job is unknown or removed, when it is running and forbids overlap, or
    /// when the run could not be recorded.
    pub async fn run_now(&self, job: &str) -> Result<i64, CommandError> {
        self.ask(|reply| Command::RunNow {
            job: job.to_owned(),
            reply,
        })
        .await?
    }

    /// Stops firing `job` until it is resumed; a run in progress carries on. Recorded
    /// in the history as done by `system`; see [`SchedulerHandle::pause_as`].
    ///
    /// # Errors
    /// When the job is unknown or the change could not be saved.
    pub async fn pause(&self, job: &str) -> Result<(), CommandError> {
        self.pause_as(job, SYSTEM_ACTOR).await
    }

    /// [`SchedulerHandle::pause`] on behalf of `actor`, who is named in the history.
    ///
    /// # Errors
    /// When the job is unknown or the change could not be saved.
    pub async fn pause_as(&self, job: &str, actor: &str) -> Result<(), CommandError> {
        self.ask(|reply| Command::Pause {
            job: job.to_owned(),
            actor: actor.to_owned(),
            reply,
        })
        .await?
    }

    /// Resumes a paused job from its next slot after now. Recorded in the history as
    /// done by `system`; see [`SchedulerHandle::resume_as`].
    ///
    /// # Errors
    /// When the job is unknown or removed, or the change could not be saved.
    pub async fn resume(&self, job: &str) -> Result<(), CommandError> {
        self.resume_as(job, SYSTEM_ACTOR).await
    }

    /// [`SchedulerHandle::resume`] on behalf of `actor`, who is named in the history.
    ///
    /// # Errors
    /// When the job is unknown or removed, or the change could not be saved.
    pub async fn resume_as(&self, job: &str, actor: &str) -> Result<(), CommandError> {
        self.ask(|reply| Command::Resume {
            job: job.to_owned(),
            actor: actor.to_owned(),
            reply,
        })
        .await?
    }

    /// Applies `patch` to `job`'s operator overrides if the job is still at
    /// `expected_version`: the merged settings are validated (schedule, durations,
    /// policies, handler and params), saved with one history row per changed field, and
    /// the job is rescheduled at once. Returns the job as it now stands (its new
    /// `next_run_at` included); a patch that changes nothing saves nothing.
    ///
    /// # Errors
    /// [`EditError::Invalid`] with a message per bad field, [`EditError::Conflict`] when
    /// someone else changed the job first, or when the job is unknown or removed; in
    /// every case nothing is saved.
    pub async fn edit_job(
        &self,
        job: &str,
        patch: JobPatch,
        expected_version: i64,
        actor: &str,
    ) -> Result<JobRecord, EditError> {
        self.edit(
            job,
            edit::Edit::Patch(Box::new(patch)),
            expected_version,
            actor,
        )
        .await
    }

    /// Drops the operator override of `field` (one of [`crate::job::SETTINGS`], or
    /// `schedule`; any schedule field resets the whole schedule), or of every field when
    /// `None`, so the file's settings apply again. Recorded and applied like
    /// [`SchedulerHandle::edit_job`].
    ///
    /// # Errors
    /// As [`SchedulerHandle::edit_job`]; an unknown field is [`EditError::Invalid`].
    pub async fn reset_job(
        &self,
        job: &str,
        field: Option<&str>,
        expected_version: i64,
        actor: &str,
    ) -> Result<JobRecord, EditError> {
        let reset = edit::Edit::Reset(field.map(str::to_owned));
        self.edit(job, reset, expected_version, actor).await
    }

    async fn edit(
        &self,
        job: &str,
        edit: edit::Edit,
        expected_version: i64,
        actor: &str,
    ) -> Result<JobRecord, EditError> {
        self.ask(|reply| Command::Edit {
            job: job.to_owned(),
            edit,
            expected_version,
            actor: actor.to_owned(),
            reply,
        })
        .await
        .map_err(|_| EditError::Stopped)?
    }

    /// Re-reads `job` from the store after its settings changed, and reschedules it.
    ///
    /// # Errors
    /// When the job is unknown or its stored settings are invalid.
    pub async fn reload(&self, job: &str) -> Result<(), CommandError> {
        self.ask(|reply| Command::Reload {
            job: job.to_owned(),
            reply,
        })
        .await?
    }

    /// Cancels a running run. Its handler sees the cancellation token fire; one that
    /// ignores it is abandoned after the grace period.
    ///
    /// # Errors
    /// When no such run is going on in this process.
    pub fn cancel(&self, run_id: i64, by: Option<&str>) -> Result<(), CommandError> {
        let reason = StopReason::Cancelled {
            by: by.map(str::to_owned),
        };
        if self.live.stop(run_id, reason) {
            Ok(())
        } else {
            Err(CommandError::NotRunning(run_id))
        }
    }

    /// Returns once every fire due at the clock's current time has been dispatched.
    /// Tests use it after moving a manual clock.
    pub async fn sync(&self) {
        let _ = self.ask(|reply| Command::Sync { reply }).await;
    }

    /// Counters that move whenever the scheduler publishes an event: equal values mean
    /// nothing of that kind happened in between.
    pub fn generation(&self) -> Generation {
        self.events.generation()
    }

    /// Follows what the scheduler does from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<SchedulerEvent> {
        self.events.subscribe()
    }

    /// The runs going on in this process.
    pub fn live_runs(&self) -> &LiveRuns {
        &self.live
    }

    /// This process's name, as written in `runs.instance_id`.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// Runs at once at most (`max_concurrent_runs`).
    pub fn max_concurrent_runs(&self) -> usize {
        self.max_concurrent_runs
    }

    /// Runs started but waiting for a free slot. A run is live from before it asks for
    /// a slot until after it gave it back, so the live runs beyond the slots are waiting.
    pub fn queue_depth(&self) -> usize {
        self.live.len().saturating_sub(self.max_concurrent_runs)
    }

    /// Looks for runs queued for any instance now (the database announced some).
    pub fn wake_claimer(&self) {
        self.claiming.wake();
    }

    /// How many live instances share the runs, as this one last saw (at least one).
    pub fn instances_sharing(&self) -> usize {
        self.claiming.sharing()
    }

    /// What this instance's claim loop did so far (shared execution).
    pub fn claim_stats(&self) -> ClaimStats {
        self.claiming.stats()
    }

    /// Says whether the database's announcements of queued runs reach this instance
    /// (they do once it listens). While they do not, it looks for queued runs four times
    /// a second instead of once.
    pub fn set_claims_announced(&self, announced: bool) {
        self.claiming.set_announced(announced);
    }

    /// Whether the scheduler task is still running: its command channel closes when the
    /// task ends (after a shutdown, or if it panicked).
    pub fn is_alive(&self) -> bool {
        !self.commands.is_closed()
    }

    /// Asks the scheduler to stop: no new fires; running runs get the shutdown grace
    /// period, then are cancelled and marked interrupted. Await the task returned by
    /// [`start`] to know when it is done.
    pub fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown);
    }

    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, CommandError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .map_err(|_| CommandError::Stopped)?;
        answer.await.map_err(|_| CommandError::Stopped)
    }
}

/// Recovers from the previous process (interrupted runs, missed fires, pending
/// retries), then starts the scheduler task.
///
/// # Errors
/// When the store cannot be read at start-up.
pub async fn start(parts: SchedulerParts) -> anyhow::Result<(SchedulerHandle, JoinHandle<()>)> {
    let (commands, command_rx) = mpsc::unbounded_channel();
    let events = EventBus::new(1024);
    let live = LiveRuns::default();
    let handle = SchedulerHandle {
        commands: commands.clone(),
        events: events.clone(),
        live: live.clone(),
        instance_id: Arc::from(parts.config.instance_id.as_str()),
        // As the executor sizes its pool.
        max_concurrent_runs: parts.config.max_concurrent_runs.max(1),
        claiming: Arc::default(),
        followers: followers::PublishedFollowers::default(),
    };
    let claiming = Arc::clone(&handle.claiming);
    let core = core::Core::recover(parts, commands, events, live, claiming)
        .await?
        .publishing_followers(handle.followers.clone());
    let task = tokio::spawn(core.run(command_rx));
    Ok((handle, task))
}

/// Runs `job` once, now, outside any schedule, and returns the run's id once its final
/// row is committed. No other job fires and nothing of another process is recovered, so
/// this is safe next to a running server (`batchboard run JOB`).
///
/// # Errors
/// When the job is unknown, cannot run, or its run could not be recorded.
pub async fn run_once(parts: SchedulerParts, job: &str) -> anyhow::Result<i64> {
    use anyhow::Context as _;
    let SchedulerParts {
        store,
        writer,
        registry,
        clock,
        config,
        leading: _,
    } = parts;
    let record = store
        .job_by_name(job)
        .await
        .context("loading the job")?
        .ok_or_else(|| CommandError::UnknownJob(job.to_owned()))?;
    if record.removed_at.is_some() {
        return Err(CommandError::Removed(job.to_owned()).into());
    }
    let (spec, handler) =
        core::runnable(&record, &registry).map_err(|reason| CommandError::Invalid {
            job: job.to_owned(),
            reason,
        })?;
    let (commands, _ignored) = mpsc::unbounded_channel();
    let events = EventBus::new(16);
    let exec = Arc::new(executor::Exec::new(
        writer,
        clock.clone(),
        &config,
        LiveRuns::default(),
        events,
        commands,
        Arc::default(),
    ));
    let now = chrono::SubsecRound::trunc_subsecs(clock.now(), 6);
    let run = crate::store::NewRun {
        job_id: record.id,
        trigger: Trigger::Manual,
        attempt: 1,
        first_run_id: None,
        status: RunStatus::Running,
        scheduled_for: now,
        started_at: now,
        finished_at: None,
        error_kind: None,
        error_message: None,
        instance_id: config.instance_id.clone(),
        exclusive: spec.concurrency == crate::job::ConcurrencyPolicy::Forbid,
    };
    let (reply, run_id) = oneshot::channel();
    let snapshot = handoff::JobSnapshot {
        id: record.id,
        name: record.name.clone(),
        secrets: exec.secrets_of(&spec),
        spec,
        handler,
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let stop = Arc::new(std::sync::OnceLock::new());
    exec.execute(
        snapshot,
        handoff::Claim::Manual(run, reply),
        0,
        cancel,
        stop,
    )
    .await;
    let run_id = run_id.await.context("the run was not started")??;
    Ok(run_id)
}
