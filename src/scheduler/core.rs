//! The scheduler task: a min-heap of due times, one job table, and the commands that
//! change them. Everything here runs on one task, so its state needs no locks.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, SubsecRound, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::edit::{self, Edit, EditError};
use super::events::EventBus;
use super::executor::{Claim, Exec, JobSnapshot};
use super::live::{LiveRuns, StopReason};
use super::{Command, CommandError, SchedulerEvent, SchedulerParts, policy};
use crate::clock::SharedClock;
use crate::job::{ConcurrencyPolicy, ErasedHandler, ErrorKind, JobSpec, MisfirePolicy, Registry};
use crate::store::writer::Writer;
use crate::store::{
    FireClaim, JobRecord, NewRun, RetryClaim, RunFinish, RunRecord, RunStatus, SharedStore,
    StoreError, Trigger,
};

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
    fn of_stored(run: &RunRecord, now: DateTime<Utc>) -> Self {
        Self {
            job_id: run.job_id,
            failed_run_id: run.id,
            retry_at: run.retry_at.unwrap_or(now),
            next_attempt: run.attempt + u32::from(run.started_at.is_some()),
            first_run_id: run.first_run_id.unwrap_or(run.id),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum DueKind {
    /// A scheduled fire. `start_at` is the nominal time plus jitter; an `early` entry is
    /// queued [`LOOKAHEAD`] before it so the claim is committed by the time it is due.
    Fire {
        job_id: i64,
        nominal: DateTime<Utc>,
        start_at: DateTime<Utc>,
        catch_up: bool,
        early: bool,
    },
    Retry(RetryKey),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct RetryKey {
    retry_at: DateTime<Utc>,
    failed_run_id: i64,
    job_id: i64,
    next_attempt: u32,
    first_run_id: i64,
}

impl From<RetryDue> for RetryKey {
    fn from(due: RetryDue) -> Self {
        Self {
            retry_at: due.retry_at,
            failed_run_id: due.failed_run_id,
            job_id: due.job_id,
            next_attempt: due.next_attempt,
            first_run_id: due.first_run_id,
        }
    }
}

/// An entry of the heap. Entries are never removed early: one that no longer matches
/// its job (rescheduled, paused) is dropped when it comes up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Due {
    at: DateTime<Utc>,
    seq: u64,
    kind: DueKind,
}

struct JobState {
    name: String,
    spec: Arc<JobSpec>,
    handler: Arc<dyn ErasedHandler>,
    next_run_at: Option<DateTime<Utc>>,
    paused: bool,
}

/// A run dispatched and not yet ended, for concurrency policy.
struct Active {
    dispatch: u64,
    cancel: CancellationToken,
    stop: Arc<OnceLock<StopReason>>,
}

pub(crate) struct Core {
    store: SharedStore,
    registry: Registry,
    clock: SharedClock,
    events: EventBus,
    live: LiveRuns,
    exec: Arc<Exec>,
    tracker: TaskTracker,
    shutdown_grace: chrono::Duration,
    jobs: HashMap<i64, JobState>,
    ids: HashMap<String, i64>,
    queue: BinaryHeap<Reverse<Due>>,
    seq: u64,
    active: HashMap<i64, Vec<Active>>,
    /// Retries held back because their job's previous run is still going (`forbid`);
    /// they are queued again the moment it ends.
    deferred: HashMap<i64, Vec<RetryDue>>,
}

/// The validated settings and the handler of a stored job.
///
/// # Errors
/// A sentence saying why the job cannot run (invalid settings, unknown handler).
pub(crate) fn runnable(
    record: &JobRecord,
    registry: &Registry,
) -> Result<(Arc<JobSpec>, Arc<dyn ErasedHandler>), String> {
    let settings = record
        .effective_settings()
        .map_err(|error| format!("its stored settings are unreadable: {error}"))?;
    let spec = JobSpec::from_settings(&settings)
        .map_err(|error| format!("its settings are invalid: {error}"))?;
    let handler = registry
        .get(&spec.handler)
        .ok_or_else(|| format!("its handler {:?} is not registered", spec.handler))?;
    Ok((Arc::new(spec), handler))
}

/// How long before its time a fire is claimed. The claim (a compare-and-swap and the
/// run's `running` row) is committed during this window and the handler starts at the
/// due time itself, so database latency does not make runs late: with 10,000 jobs due
/// at the same instant, the claims take about 150 ms on a two-core machine. A job whose
/// previous run is still going when its window opens is decided at the due time instead,
/// so `forbid` and `replace` see the state at the slot, not before it.
const LOOKAHEAD: chrono::Duration = chrono::Duration::milliseconds(300);

fn now_of(clock: &SharedClock) -> DateTime<Utc> {
    // Both databases keep microseconds; times are cut to that so that a value read back
    // compares equal to the one written (the fire compare-and-swap relies on it).
    clock.now().trunc_subsecs(6)
}

impl Core {
    /// Builds the scheduler's state from the store, and settles what the previous process
    /// left behind: runs cut off while `running` become `interrupted` (and are retried
    /// by policy), missed fires follow each job's misfire policy, and pending retries
    /// are queued again.
    pub(crate) async fn recover(
        parts: SchedulerParts,
        commands: mpsc::UnboundedSender<Command>,
        events: EventBus,
        live: LiveRuns,
    ) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let SchedulerParts {
            store,
            writer,
            registry,
            clock,
            config,
        } = parts;
        let exec = Arc::new(Exec::new(
            writer.clone(),
            clock.clone(),
            &config,
            live.clone(),
            events.clone(),
            commands,
        ));
        let mut core = Core {
            store: store.clone(),
            registry,
            clock,
            events,
            live,
            exec,
            tracker: TaskTracker::new(),
            shutdown_grace: chrono::Duration::from_std(config.shutdown_grace)
                .unwrap_or(chrono::Duration::MAX),
            jobs: HashMap::new(),
            ids: HashMap::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            active: HashMap::new(),
            deferred: HashMap::new(),
        };
        let records = store.jobs().await.context("loading jobs")?;
        for record in &records {
            core.ids.insert(record.name.clone(), record.id);
            if let Some(state) = core.job_state(record) {
                core.jobs.insert(record.id, state);
            }
        }
        core.interrupt_orphans(&writer).await?;
        for record in &records {
            core.schedule_at_start(record).await?;
        }
        for run in store
            .pending_retries()
            .await
            .context("loading pending retries")?
        {
            core.queue_retry(RetryDue::of_stored(&run, now_of(&core.clock)));
        }
        Ok(core)
    }

    /// The job's runnable state, or `None` (with the reason logged) if it cannot run.
    fn job_state(&self, record: &JobRecord) -> Option<JobState> {
        if record.removed_at.is_some() {
            return None;
        }
        match runnable(record, &self.registry) {
            Ok((spec, handler)) => Some(JobState {
                name: record.name.clone(),
                spec,
                handler,
                next_run_at: record.next_run_at,
                paused: record.paused,
            }),
            Err(reason) => {
                tracing::error!(job = %record.name, %reason, "job cannot run");
                None
            }
        }
    }

    async fn interrupt_orphans(&mut self, writer: &Writer) -> anyhow::Result<()> {
        use anyhow::Context as _;
        let now = now_of(&self.clock);
        for run in self
            .store
            .running_runs()
            .await
            .context("loading runs left running")?
        {
            // A queued run never started: it was no attempt, and runs again at once.
            let verdict = match (run.started_at, self.jobs.get(&run.job_id)) {
                (None, _) => policy::FailureVerdict {
                    status: RunStatus::Interrupted,
                    retry_at: Some(now),
                },
                (Some(_), Some(job)) => policy::failure_verdict(
                    &job.spec.retry,
                    run.attempt,
                    ErrorKind::Interrupted,
                    RunStatus::Interrupted,
                    None,
                    now,
                    rand::random(),
                ),
                (Some(_), None) => policy::FailureVerdict {
                    status: RunStatus::Interrupted,
                    retry_at: None,
                },
            };
            let message = if run.started_at.is_some() {
                "the process stopped while this run was going"
            } else {
                "the process stopped before this run started; it runs again now"
            };
            tracing::warn!(run_id = run.id, job = %run.job_name, status = %verdict.status, "a run was cut off by the previous process");
            writer
                .finish_run(RunFinish {
                    run_id: run.id,
                    status: verdict.status,
                    started_at: run.started_at,
                    finished_at: now,
                    duration_ms: run
                        .started_at
                        .map(|started| (now - started).num_milliseconds().max(0)),
                    items_checked: run.items_checked,
                    items_updated: run.items_updated,
                    items_total: run.items_total,
                    error_kind: Some(ErrorKind::Interrupted.as_str().into()),
                    error_message: Some(message.into()),
                    summary: None,
                    retry_at: verdict.retry_at,
                })
                .await
                .context("marking a cut-off run as interrupted")?;
        }
        Ok(())
    }

    async fn schedule_at_start(&mut self, record: &JobRecord) -> anyhow::Result<()> {
        let now = now_of(&self.clock);
        let Some(job) = self.jobs.get(&record.id) else {
            if record.next_run_at.is_some() {
                self.store.set_next_run(record.id, None).await?;
            }
            return Ok(());
        };
        if job.paused || !job.spec.enabled {
            return Ok(());
        }
        let schedule = &job.spec.schedule;
        let stored = record
            .next_run_at
            .filter(|at| policy::stored_next_is_valid(schedule, *at, now));
        match stored {
            Some(at) if at > now => self.queue_fire(record.id, at, false),
            Some(missed) if job.spec.misfire == MisfirePolicy::RunOnce => {
                tracing::info!(job = %job.name, missed = %missed, "running a missed fire once");
                self.queue_fire(record.id, missed, true);
            }
            Some(missed) => {
                // `skip`: wait for the next slot, on the schedule's grid.
                let next = policy::next_fire(schedule, missed, now);
                self.set_next(record.id, next).await?;
            }
            None => {
                let next = schedule.next_after(now);
                self.set_next(record.id, next).await?;
            }
        }
        Ok(())
    }

    async fn set_next(
        &mut self,
        job_id: i64,
        next: Option<DateTime<Utc>>,
    ) -> Result<(), crate::store::StoreError> {
        self.store.set_next_run(job_id, next).await?;
        if let Some(job) = self.jobs.get_mut(&job_id) {
            job.next_run_at = next;
        }
        if let Some(next) = next {
            self.queue_fire(job_id, next, false);
        }
        Ok(())
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn queue_fire(&mut self, job_id: i64, nominal: DateTime<Utc>, catch_up: bool) {
        let Some(job) = self.jobs.get_mut(&job_id) else {
            return;
        };
        job.next_run_at = Some(nominal);
        let jitter = job.spec.jitter;
        let start_at = if jitter.is_zero() || catch_up {
            nominal
        } else {
            let offset = jitter.mul_f64(rand::random::<f64>());
            nominal
                + chrono::Duration::microseconds(
                    i64::try_from(offset.as_micros()).unwrap_or(i64::MAX),
                )
        };
        let early = !catch_up;
        let at = if early {
            start_at - LOOKAHEAD
        } else {
            start_at
        };
        let seq = self.next_seq();
        self.queue.push(Reverse(Due {
            at,
            seq,
            kind: DueKind::Fire {
                job_id,
                nominal,
                start_at,
                catch_up,
                early,
            },
        }));
    }

    fn queue_retry(&mut self, due: RetryDue) {
        let seq = self.next_seq();
        self.queue.push(Reverse(Due {
            at: due.retry_at,
            seq,
            kind: DueKind::Retry(due.into()),
        }));
    }

    /// The scheduler's loop: fire what is due, then sleep until the next due time or the
    /// next command, whichever comes first.
    pub(crate) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        loop {
            self.fire_due();
            let next_due = self.queue.peek().map(|Reverse(due)| due.at);
            let sleep = {
                let clock = self.clock.clone();
                async move {
                    match next_due {
                        Some(at) => clock.sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                }
            };
            tokio::select! {
                // Commands first: an operator's pause must win over a fire due at the
                // same moment.
                biased;
                command = commands.recv() => match command {
                    None | Some(Command::Shutdown) => break,
                    Some(command) => self.handle(command).await,
                },
                () = sleep => {}
            }
        }
        self.shutdown().await;
    }

    fn fire_due(&mut self) {
        let now = now_of(&self.clock);
        while let Some(Reverse(due)) = self.queue.peek().copied() {
            if due.at > now {
                break;
            }
            self.queue.pop();
            match due.kind {
                DueKind::Fire {
                    job_id,
                    nominal,
                    start_at,
                    catch_up,
                    early,
                } => {
                    if early && self.is_active(job_id) {
                        // Decide at the slot itself whether the previous run is over.
                        let seq = self.next_seq();
                        let kind = DueKind::Fire {
                            job_id,
                            nominal,
                            start_at,
                            catch_up,
                            early: false,
                        };
                        self.queue.push(Reverse(Due {
                            at: start_at,
                            seq,
                            kind,
                        }));
                    } else {
                        self.fire(job_id, nominal, start_at, catch_up, now);
                    }
                }
                DueKind::Retry(key) => self.retry(
                    RetryDue {
                        job_id: key.job_id,
                        failed_run_id: key.failed_run_id,
                        retry_at: key.retry_at,
                        next_attempt: key.next_attempt,
                        first_run_id: key.first_run_id,
                    },
                    now,
                ),
            }
        }
    }

    fn fire(
        &mut self,
        job_id: i64,
        nominal: DateTime<Utc>,
        start_at: DateTime<Utc>,
        catch_up: bool,
        now: DateTime<Utc>,
    ) {
        let Some(job) = self.jobs.get(&job_id) else {
            return;
        };
        if job.paused || job.next_run_at != Some(nominal) {
            return; // a stale heap entry: the job was paused or rescheduled since
        }
        let next = policy::next_fire(&job.spec.schedule, nominal, now);
        let trigger = if catch_up {
            Trigger::CatchUp
        } else {
            Trigger::Schedule
        };
        let concurrency = job.spec.concurrency;
        let name = job.name.clone();
        if let Some(job) = self.jobs.get_mut(&job_id) {
            job.next_run_at = None;
        }
        if let Some(next) = next {
            self.queue_fire(job_id, next, false);
        }
        // The handler starts at the slot (plus jitter), which may be a moment away.
        let mut run = self.new_run(job_id, trigger, 1, None, nominal, start_at.max(now));
        if self.is_active(job_id) {
            match concurrency {
                ConcurrencyPolicy::Allow => {}
                ConcurrencyPolicy::Replace => self.stop_active(job_id, StopReason::Replaced),
                ConcurrencyPolicy::Forbid => {
                    run.status = RunStatus::Skipped;
                    run.finished_at = Some(now);
                    run.error_kind = Some(ErrorKind::Overlap.as_str().into());
                    run.error_message = Some("skipped: the previous run was still going".into());
                    let claim = FireClaim {
                        job_id,
                        expected: nominal,
                        next,
                        run: Some(run),
                    };
                    let exec = Arc::clone(&self.exec);
                    self.tracker
                        .spawn(async move { exec.record_skip(claim).await });
                    self.events.send(SchedulerEvent::FireSkipped {
                        job: name,
                        scheduled_for: nominal,
                    });
                    return;
                }
            }
        }
        self.dispatch(
            job_id,
            Claim::Fire(FireClaim {
                job_id,
                expected: nominal,
                next,
                run: Some(run),
            }),
        );
    }

    fn retry(&mut self, due: RetryDue, now: DateTime<Utc>) {
        let Some(job) = self.jobs.get(&due.job_id) else {
            return;
        };
        if job.paused {
            return; // queued again from the store when the job is resumed
        }
        if self.is_active(due.job_id) {
            match job.spec.concurrency {
                ConcurrencyPolicy::Allow => {}
                ConcurrencyPolicy::Replace => self.stop_active(due.job_id, StopReason::Replaced),
                ConcurrencyPolicy::Forbid => {
                    self.deferred.entry(due.job_id).or_default().push(due);
                    return;
                }
            }
        }
        let run = self.new_run(
            due.job_id,
            Trigger::Retry,
            due.next_attempt,
            Some(due.first_run_id),
            due.retry_at,
            now,
        );
        let claim = RetryClaim {
            failed_run_id: due.failed_run_id,
            expected: due.retry_at,
            run,
        };
        self.dispatch(due.job_id, Claim::Retry(claim));
    }

    fn new_run(
        &self,
        job_id: i64,
        trigger: Trigger,
        attempt: u32,
        first_run_id: Option<i64>,
        scheduled_for: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> NewRun {
        NewRun {
            job_id,
            trigger,
            attempt,
            first_run_id,
            status: RunStatus::Running,
            scheduled_for,
            started_at: now,
            finished_at: None,
            error_kind: None,
            error_message: None,
            instance_id: self.exec.instance_id().to_owned(),
        }
    }

    fn is_active(&self, job_id: i64) -> bool {
        self.active
            .get(&job_id)
            .is_some_and(|runs| !runs.is_empty())
    }

    fn stop_active(&self, job_id: i64, reason: StopReason) {
        for run in self.active.get(&job_id).into_iter().flatten() {
            let _ = run.stop.set(reason.clone());
            run.cancel.cancel();
        }
    }

    fn dispatch(&mut self, job_id: i64, claim: Claim) {
        let Some(job) = self.jobs.get(&job_id) else {
            return;
        };
        let snapshot = JobSnapshot {
            id: job_id,
            name: job.name.clone(),
            spec: Arc::clone(&job.spec),
            handler: Arc::clone(&job.handler),
        };
        let dispatch = self.next_seq();
        let cancel = CancellationToken::new();
        let stop = Arc::new(OnceLock::new());
        self.active.entry(job_id).or_default().push(Active {
            dispatch,
            cancel: cancel.clone(),
            stop: Arc::clone(&stop),
        });
        let exec = Arc::clone(&self.exec);
        self.tracker
            .spawn(exec.execute(snapshot, claim, dispatch, cancel, stop));
    }

    async fn handle(&mut self, command: Command) {
        match command {
            Command::RunNow { job, reply } => match self.run_now(&job) {
                Ok((job_id, run)) => self.dispatch(job_id, Claim::Manual(run, reply)),
                Err(error) => {
                    let _ = reply.send(Err(error));
                }
            },
            Command::Pause { job, actor, reply } => {
                let _ = reply.send(self.set_paused(&job, true, &actor).await);
            }
            Command::Resume { job, actor, reply } => {
                let _ = reply.send(self.set_paused(&job, false, &actor).await);
            }
            Command::Edit {
                job,
                edit,
                expected_version,
                actor,
                reply,
            } => {
                let _ = reply.send(self.edit(&job, &edit, expected_version, &actor).await);
            }
            Command::Reload { job, reply } => {
                let _ = reply.send(self.reload(&job).await);
            }
            Command::Sync { reply } => {
                self.fire_due();
                let _ = reply.send(());
            }
            Command::Ended(ended) => self.ended(ended).await,
            Command::Shutdown => {}
        }
    }

    /// Checks that `name` may run now and returns the run to insert.
    fn run_now(&mut self, name: &str) -> Result<(i64, NewRun), CommandError> {
        let job_id = self.known_job(name)?;
        let job = self
            .jobs
            .get(&job_id)
            .ok_or_else(|| CommandError::Invalid {
                job: name.to_owned(),
                reason: "its settings are invalid or its handler is unknown (see the server log)"
                    .into(),
            })?;
        if self.is_active(job_id) {
            match job.spec.concurrency {
                ConcurrencyPolicy::Allow => {}
                ConcurrencyPolicy::Replace => self.stop_active(job_id, StopReason::Replaced),
                ConcurrencyPolicy::Forbid => {
                    let run_id = self
                        .live
                        .all()
                        .into_iter()
                        .find(|run| run.job_id == job_id)
                        .map_or(0, |run| run.run_id);
                    return Err(CommandError::AlreadyRunning {
                        job: name.to_owned(),
                        run_id,
                    });
                }
            }
        }
        let now = now_of(&self.clock);
        Ok((
            job_id,
            self.new_run(job_id, Trigger::Manual, 1, None, now, now),
        ))
    }

    fn known_job(&self, name: &str) -> Result<i64, CommandError> {
        let job_id = *self
            .ids
            .get(name)
            .ok_or_else(|| CommandError::UnknownJob(name.to_owned()))?;
        Ok(job_id)
    }

    async fn set_paused(
        &mut self,
        name: &str,
        paused: bool,
        actor: &str,
    ) -> Result<(), CommandError> {
        let job_id = self.known_job(name)?;
        let Some(job) = self.jobs.get(&job_id) else {
            return Err(CommandError::Removed(name.to_owned()));
        };
        let next = if paused {
            None
        } else {
            job.spec.schedule.next_after(now_of(&self.clock))
        };
        self.store
            .set_paused_by(job_id, paused, next, actor, now_of(&self.clock))
            .await
            .map_err(|error| CommandError::Store(error.to_string()))?;
        if let Some(job) = self.jobs.get_mut(&job_id) {
            job.paused = paused;
            job.next_run_at = None;
        }
        if let Some(next) = next {
            self.queue_fire(job_id, next, false);
            self.requeue_pending_retries(job_id).await;
        }
        self.events.send(SchedulerEvent::JobChanged {
            job: name.to_owned(),
        });
        Ok(())
    }

    async fn requeue_pending_retries(&mut self, job_id: i64) {
        match self.store.pending_retries().await {
            Ok(runs) => {
                for run in runs.into_iter().filter(|run| run.job_id == job_id) {
                    self.queue_retry(RetryDue::of_stored(&run, now_of(&self.clock)));
                }
            }
            Err(error) => tracing::error!(%error, "could not load pending retries"),
        }
    }

    /// Plans, saves and applies an operator's edit; see `SchedulerHandle::edit_job`.
    async fn edit(
        &mut self,
        name: &str,
        edit: &Edit,
        expected_version: i64,
        actor: &str,
    ) -> Result<JobRecord, EditError> {
        let store_error = |error: StoreError| match error {
            StoreError::Conflict => EditError::Conflict,
            StoreError::NotFound => EditError::UnknownJob(name.to_owned()),
            other => EditError::Store(other.to_string()),
        };
        let record = self
            .store
            .job_by_name(name)
            .await
            .map_err(store_error)?
            .ok_or_else(|| EditError::UnknownJob(name.to_owned()))?;
        if record.removed_at.is_some() {
            return Err(EditError::Removed(name.to_owned()));
        }
        // Checked before planning, so that a stale form is refused even when it changes
        // nothing against what it shows: its other fields would undo the newer change.
        if record.version != expected_version {
            return Err(EditError::Conflict);
        }
        let Some(plan) = edit::plan(&record, edit, actor, &self.registry)? else {
            return Ok(record);
        };
        let now = now_of(&self.clock);
        self.store
            .update_job_overrides(
                record.id,
                expected_version,
                plan.overrides,
                &plan.changes,
                now,
            )
            .await
            .map_err(store_error)?;
        self.reload(name)
            .await
            .map_err(|error| EditError::Store(error.to_string()))?;
        self.store
            .job_by_name(name)
            .await
            .map_err(store_error)?
            .ok_or_else(|| EditError::UnknownJob(name.to_owned()))
    }

    async fn reload(&mut self, name: &str) -> Result<(), CommandError> {
        let record = self
            .store
            .job_by_name(name)
            .await
            .map_err(|error| CommandError::Store(error.to_string()))?
            .ok_or_else(|| CommandError::UnknownJob(name.to_owned()))?;
        self.ids.insert(record.name.clone(), record.id);
        let old_schedule = self
            .jobs
            .get(&record.id)
            .map(|job| job.spec.schedule.clone());
        let Some(mut state) = self.job_state(&record) else {
            self.jobs.remove(&record.id);
            return Err(CommandError::Invalid {
                job: name.to_owned(),
                reason: "its settings are invalid, its handler is unknown, or it was removed"
                    .into(),
            });
        };
        let now = now_of(&self.clock);
        let runnable = !state.paused && state.spec.enabled;
        let keep = runnable
            && old_schedule.as_ref() == Some(&state.spec.schedule)
            && state
                .next_run_at
                .is_some_and(|at| policy::stored_next_is_valid(&state.spec.schedule, at, now));
        let next = if !runnable {
            None
        } else if keep {
            state.next_run_at
        } else {
            state.spec.schedule.next_after(now)
        };
        state.next_run_at = None;
        self.jobs.insert(record.id, state);
        if keep {
            if let Some(next) = next {
                self.queue_fire(record.id, next, false);
            }
        } else {
            self.set_next(record.id, next)
                .await
                .map_err(|error| CommandError::Store(error.to_string()))?;
        }
        self.events.send(SchedulerEvent::JobChanged {
            job: name.to_owned(),
        });
        Ok(())
    }

    async fn ended(&mut self, ended: Ended) {
        if let Some(runs) = self.active.get_mut(&ended.job_id) {
            runs.retain(|run| run.dispatch != ended.dispatch);
        }
        if let Some(retry) = ended.retry {
            self.queue_retry(retry);
        }
        if !self.is_active(ended.job_id) {
            for due in self.deferred.remove(&ended.job_id).unwrap_or_default() {
                self.queue_retry(RetryDue {
                    retry_at: due.retry_at.min(now_of(&self.clock)),
                    ..due
                });
            }
        }
        if ended.lost {
            let name = self.jobs.get(&ended.job_id).map(|job| job.name.clone());
            if let Some(name) = name {
                if let Err(error) = self.reload(&name).await {
                    tracing::warn!(job = %name, %error, "could not reload a job after losing a fire");
                }
            }
        }
    }

    /// Stops firing, gives running runs the grace period, then cancels what is left
    /// (those runs end as `interrupted`, to be retried by the next process).
    async fn shutdown(self) {
        self.tracker.close();
        self.events.send(SchedulerEvent::ShuttingDown);
        let running = self.live.len();
        if running > 0 {
            let grace =
                crate::schedule::format_duration(self.shutdown_grace.to_std().unwrap_or_default());
            tracing::info!(running, %grace, "waiting for running runs to finish");
        }
        let deadline = now_of(&self.clock) + self.shutdown_grace;
        tokio::select! {
            () = self.tracker.wait() => {}
            () = self.clock.sleep_until(deadline) => {
                tracing::warn!(running = self.live.len(), "grace period over; cancelling the runs still going");
                self.live.stop_all(&StopReason::Shutdown);
                // Dispatched runs that had not started yet see the token at once.
                for runs in self.active.values() {
                    for run in runs {
                        let _ = run.stop.set(StopReason::Shutdown);
                        run.cancel.cancel();
                    }
                }
                self.tracker.wait().await;
            }
        }
        tracing::info!("scheduler stopped");
    }
}
