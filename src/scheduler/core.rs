//! The scheduler task: one job table, the [`DueQueue`] of what comes due when, and the
//! runs dispatched to the executor. Everything here runs on one task, so its state needs
//! no locks. Start-up recovery and the commands that change a job live in the submodules.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, SubsecRound, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod chains;
mod changes;

pub(in crate::scheduler) use changes::Saved;
pub(in crate::scheduler) use reload::Reloaded;
mod manual;
mod recovery;
mod refusals;
mod reload;
mod shared;
mod shutdown;

use super::due_queue::{DueEntry, DueQueue, FireDue, LOOKAHEAD};
use super::events::EventBus;
use super::executor::Exec;
use super::handoff::{Claim, Ended, JobSnapshot, RetryDue};
use super::live::{LiveRuns, StopReason};
use super::overlap::{self, Hold, Overlap, Start};
use super::{Command, CommandError, SchedulerEvent, policy};
use crate::clock::SharedClock;
use crate::job::{ConcurrencyPolicy, ErasedHandler, JobSpec, Registry};
use crate::store::{FireClaim, JobRecord, NewRun, RetryClaim, RunStatus, SharedStore, Trigger};

pub(in crate::scheduler) struct JobState {
    name: String,
    spec: Arc<JobSpec>,
    handler: Arc<dyn ErasedHandler>,
    /// See [`JobSnapshot::secrets`].
    secrets: Arc<[String]>,
    next_run_at: Option<DateTime<Utc>>,
    paused: bool,
    /// The stored version this was built from.
    version: i64,
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
    queue: DueQueue,
    /// Numbers each dispatched run, so that its end is matched to its entry in `active`.
    dispatches: u64,
    active: HashMap<i64, Vec<Active>>,
    /// Retries held back because their job's previous run is still going (`forbid`);
    /// they are queued again the moment it ends.
    deferred: HashMap<i64, Vec<RetryDue>>,
    /// Claims the database refused in a row, by job: the next try waits longer.
    refusals: HashMap<i64, u32>,
    /// Whether this instance decides scheduled fires now. Only the leader queues and
    /// fires them; every instance runs its manual runs and claims retries.
    leads: bool,
    /// Where leadership changes are heard; taken by the loop.
    leadership: Option<crate::instance::Leading>,
    /// This instance holds the lease but could not take over the fires yet.
    lead_pending: bool,
    /// Failed runs whose retry this instance took over from an instance that is gone
    /// (or found at start-up), until the retry comes due: each is taken once.
    adopted: std::collections::HashSet<i64>,
    /// Scheduled fires are queued for every instance to claim (see [`shared`]), rather
    /// than run here.
    shared: bool,
    /// Stops the claim loop of shared execution at shutdown.
    claiming: CancellationToken,
    /// Scheduled fires decided, for the leader's own share of them.
    fires_decided: u64,
    /// Which jobs follow which (`after`, `after_failure`); `None` once a job changed,
    /// built again when next needed.
    followers: Option<chains::Followers>,
    /// Where the console reads the followers; replaced each time they are built.
    published_followers: crate::scheduler::followers::PublishedFollowers,
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

/// See [`Core::job_state`]; usable off the scheduler task.
fn job_state_of(record: &JobRecord, registry: &Registry, exec: &Exec) -> Option<JobState> {
    if record.removed_at.is_some() {
        return None;
    }
    match runnable(record, registry) {
        Ok((spec, handler)) => Some(JobState {
            name: record.name.clone(),
            secrets: exec.secrets_of(&spec),
            spec,
            handler,
            next_run_at: record.next_run_at,
            paused: record.paused,
            version: record.version,
        }),
        Err(reason) => {
            tracing::error!(job = %record.name, %reason, "job cannot run");
            None
        }
    }
}

fn now_of(clock: &SharedClock) -> DateTime<Utc> {
    // Both databases keep microseconds; times are cut to that so that a value read back
    // compares equal to the one written (the fire compare-and-swap relies on it).
    clock.now().trunc_subsecs(6)
}

impl Core {
    /// The job's runnable state, or `None` (with the reason logged) if it cannot run.
    fn job_state(&self, record: &JobRecord) -> Option<JobState> {
        job_state_of(record, &self.registry, &self.exec)
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

    fn queue_fire(&mut self, job_id: i64, nominal: DateTime<Utc>, catch_up: bool) {
        let Some(job) = self.jobs.get_mut(&job_id) else {
            return;
        };
        job.next_run_at = Some(nominal);
        if !self.leads {
            return; // the leader fires it; the store holds the time
        }
        self.queue
            .push_fire(job_id, nominal, catch_up, job.spec.jitter, rand::random);
    }

    fn queue_retry(&mut self, due: RetryDue) {
        self.queue.push_retry(due);
    }

    /// The scheduler's loop: fire what is due, then sleep until the next due time or the
    /// next command, whichever comes first.
    pub(crate) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let lease_check_every = chrono::Duration::from_std(crate::instance::HEARTBEAT_EVERY)
            .unwrap_or(chrono::Duration::seconds(5));
        let mut next_lease_check = now_of(&self.clock) + lease_check_every;
        let mut leadership = self.leadership.take();
        let claim_loop = self.shared.then(|| {
            let claim_loop =
                Arc::clone(&self.exec).claim_queued_runs(self.store.clone(), self.claiming.clone());
            tokio::spawn(claim_loop)
        });
        loop {
            if self.followers.is_none() {
                // A job changed: what the console shows follows at once.
                self.publish_followers();
            }
            self.fire_due();
            let now = now_of(&self.clock);
            if now >= next_lease_check {
                // Off this task: the check reads the database.
                let check = Arc::clone(&self.exec).check_leases(self.store.clone(), self.leads);
                tokio::spawn(check);
                next_lease_check = now + lease_check_every;
                if self.lead_pending {
                    self.follow_leadership(true).await;
                    continue;
                }
            }
            let wake = self
                .queue
                .next_at()
                .map_or(next_lease_check, |due| due.min(next_lease_check));
            let sleep = self.clock.sleep_until(wake);
            tokio::select! {
                // A change of leader first, then commands: an operator's pause must win
                // over a fire due at the same moment.
                biased;
                changed = async {
                    match leadership.as_mut() {
                        Some(leading) => leading.changed().await,
                        None => std::future::pending().await,
                    }
                } => {
                    let term = match (changed, leadership.as_ref()) {
                        (Ok(()), Some(leading)) => *leading.borrow(),
                        // The elector is gone (shutting down): keep the current state.
                        _ => {
                            leadership = None;
                            continue;
                        }
                    };
                    self.follow_leadership(term.is_some()).await;
                }
                command = commands.recv() => match command {
                    None | Some(Command::Shutdown) => break,
                    Some(command) => self.handle(command).await,
                },

                () = sleep => {}
            }
        }
        self.stop_claiming(claim_loop, &mut commands).await;
        self.shutdown().await;
    }

    fn fire_due(&mut self) {
        let now = now_of(&self.clock);
        self.queue.set_extra_lead(self.exec.extra_lead());
        while let Some(entry) = self.queue.pop_due(now) {
            match entry {
                // Left from a term that ended: the new leader fires it.
                DueEntry::Fire(_) if !self.leads => {}
                DueEntry::Fire(fire) if fire.early && self.is_active(fire.job_id) => {
                    if now < fire.start_at - LOOKAHEAD {
                        // Brought forward by a burst's lead while the previous burst's
                        // runs end: look again at the plain look-ahead.
                        self.queue.push_without_extra_lead(fire);
                    } else {
                        // Decide at the slot itself whether the previous run is over.
                        self.queue.push_at_start(fire);
                    }
                }
                DueEntry::Fire(fire) => self.fire(fire, now),
                DueEntry::Retry(due) => self.retry(due, now),
            }
        }
    }

    fn fire(&mut self, fire: FireDue, now: DateTime<Utc>) {
        let FireDue {
            job_id,
            nominal,
            start_at,
            catch_up,
            early,
        } = fire;
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
        if self.shared && concurrency == ConcurrencyPolicy::Replace {
            // Its older runs may go on any instance, whichever one runs this fire.
            self.replace_older_runs(job_id, nominal);
        }
        if self.shared && !self.runs_own_share() {
            let claim = FireClaim {
                job_id,
                expected: nominal,
                next,
                run: Some(run),
                early,
            };
            self.enqueue_fire(claim, fire);
            return;
        }
        if let Some(hold) = self.make_way(job_id, concurrency, Start::Scheduled) {
            debug_assert_eq!(hold, Hold::RecordSkipped);
            run = run.skipped_by_overlap(now);
            let claim = FireClaim {
                job_id,
                expected: nominal,
                next,
                run: Some(run),
                early: false,
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
        self.dispatch(
            job_id,
            Claim::Fire(FireClaim {
                job_id,
                expected: nominal,
                next,
                run: Some(run),
                early: false,
            }),
        );
    }

    fn retry(&mut self, due: RetryDue, now: DateTime<Utc>) {
        self.adopted.remove(&due.failed_run_id);
        let Some(job) = self.jobs.get(&due.job_id).filter(|job| job.spec.enabled) else {
            // Removed, disabled, or unable to run: the chain ends here rather than
            // waiting to fire the moment the job comes back.
            tracing::info!(
                job_id = due.job_id,
                run_id = due.failed_run_id,
                "dropping the retry of a job that no longer runs"
            );
            let claim = RetryClaim {
                failed_run_id: due.failed_run_id,
                expected: due.retry_at,
                run: None,
            };
            let exec = Arc::clone(&self.exec);
            self.tracker.spawn(exec.drop_retry(claim));
            return;
        };
        if job.paused {
            return; // queued again from the store when the job is resumed
        }
        if let Some(hold) = self.make_way(due.job_id, job.spec.concurrency, Start::Retry) {
            debug_assert_eq!(hold, Hold::DeferUntilEnded);
            self.deferred.entry(due.job_id).or_default().push(due);
            return;
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
            run: Some(run),
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
            exclusive: self
                .jobs
                .get(&job_id)
                .is_some_and(|job| job.spec.concurrency == ConcurrencyPolicy::Forbid),
        }
    }

    fn is_active(&self, job_id: i64) -> bool {
        self.active
            .get(&job_id)
            .is_some_and(|runs| !runs.is_empty())
    }

    /// Applies the job's concurrency policy to a new run of `job_id`: stops the runs going
    /// when they are to be replaced, and says how the new run is held when it may not
    /// start now.
    fn make_way(&self, job_id: i64, policy: ConcurrencyPolicy, start: Start) -> Option<Hold> {
        match overlap::decide(policy, start, self.is_active(job_id)) {
            Overlap::Start => None,
            Overlap::ReplaceThenStart => {
                self.stop_active(job_id, StopReason::Replaced);
                None
            }
            Overlap::Hold(hold) => Some(hold),
        }
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
            secrets: Arc::clone(&job.secrets),
        };
        self.dispatches += 1;
        let dispatch = self.dispatches;
        let cancel = CancellationToken::new();
        let stop = Arc::new(OnceLock::new());
        self.active.entry(job_id).or_default().push(Active {
            dispatch,
            cancel: cancel.clone(),
            stop: Arc::clone(&stop),
        });
        if !matches!(claim, Claim::Queued { .. }) {
            self.exec.dispatching();
        }
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
            Command::Pause { job, actor, reply } => self.start_pause(&job, true, &actor, reply),
            Command::Resume { job, actor, reply } => {
                self.start_pause(&job, false, &actor, reply);
            }
            Command::Edit {
                job,
                edit,
                expected_version,
                actor,
                reply,
            } => self.start_edit(job, edit, expected_version, actor, reply),
            Command::Saved(saved) => self.apply_saved(*saved),
            Command::Reload { job, reply } => self.start_reload(job, Some(reply)),
            Command::Reloaded(reloaded) => self.apply_reloaded(*reloaded),
            Command::Sync { reply } => {
                self.fire_due();
                let _ = reply.send(());
            }
            Command::Ended(ended) => self.ended(ended),
            Command::Orphaned(runs) => {
                for run in runs {
                    let (finish, retry) = self.interruption(&run);
                    let exec = Arc::clone(&self.exec);
                    self.tracker
                        .spawn(exec.interrupt(run.job_id, finish, retry));
                }
            }
            Command::QueueRetry(due) => self.queue_retry(due),
            Command::Adopt(runs) => self.adopt_retries(&runs),
            Command::Claimed(claimed, at) => self.take_claimed(claimed, at),
            Command::UpstreamDone { job_id, at } => self.run_after(job_id, at),
            Command::RunEnded { job_id, finished } => self.follow_upstream(job_id, finished),
            Command::Shutdown => {}
        }
    }

    pub(super) fn known_job(&self, name: &str) -> Result<i64, CommandError> {
        let job_id = *self
            .ids
            .get(name)
            .ok_or_else(|| CommandError::UnknownJob(name.to_owned()))?;
        Ok(job_id)
    }

    fn ended(&mut self, ended: Ended) {
        if let Some(runs) = self.active.get_mut(&ended.job_id) {
            runs.retain(|run| run.dispatch != ended.dispatch);
        }
        if let Some(retry) = ended.retry {
            self.queue_retry(retry);
        }
        if let Some(busy) = ended.busy {
            self.wait_for_exclusive(busy);
        }
        if let Some(fire) = ended.decide_at_slot {
            self.decide_at_slot(fire);
        }
        if let Some(finished) = ended.finished {
            self.follow_upstream(ended.job_id, finished);
        }
        if !self.is_active(ended.job_id) {
            for due in self.deferred.remove(&ended.job_id).unwrap_or_default() {
                self.queue_retry(RetryDue {
                    retry_at: due.retry_at.min(now_of(&self.clock)),
                    ..due
                });
            }
        }
        match ended.refused {
            Some(refused) => self.back_off(ended.job_id, refused),
            None if !ended.lost => {
                self.refusals.remove(&ended.job_id);
            }
            None => {}
        }
        if ended.lost
            && let Some(job) = self.jobs.get(&ended.job_id)
        {
            // Failures are logged where the reload ends.
            self.start_reload(job.name.clone(), None);
        }
    }

    async fn follow_leadership(&mut self, leads: bool) {
        self.lead_pending = false;
        if !leads {
            tracing::info!("another instance decides the scheduled fires now");
            self.leads = false;
            return;
        }
        if let Err(error) = self.take_the_lead().await {
            // Tried again at the next lease check, while the term lasts.
            tracing::error!(error = %format!("{error:#}"), "could not take over the scheduled fires");
            self.leads = false;
            self.lead_pending = true;
        }
    }
}
