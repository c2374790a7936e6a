//! The executor: claims a dispatched fire in the store, runs the handler on the bounded
//! pool with its timeout and cancellation token, and records how it ended.

use std::sync::{Arc, OnceLock};

use chrono::{DateTime, SubsecRound, Utc};
use std::panic::AssertUnwindSafe;
use tokio::sync::{Semaphore, mpsc};

use futures::FutureExt as _;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::claiming::Claiming;
use super::events::EventBus;
use super::handoff::{Claim, Ended, Finished, JobSnapshot, Refused, RetryDue};
use super::lead::Lead;
use super::live::{LiveRun, LiveRuns, StopReason};
use super::{Command, CommandError, SchedulerConfig, SchedulerEvent, policy};
use crate::clock::SharedClock;
use crate::job::{JobContext, JobError, JobName, RunCounters};
use crate::runlog::{self, RunLogPolicy, RunLogSink};
use crate::secrets::{self, SecretMask};
use crate::store::writer::{WriteFailed, Writer};
use crate::store::{ClaimResult, FireClaim, NewRun, RunFinish, RunMark, RunStatus, SharedStore};

/// How long a run may wait for a free slot before it is marked `queued`. Shorter waits
/// (a burst of fires sharing the pool) are not worth two writes per run: the finish
/// records when the handler really started either way.
pub(crate) const QUEUED_AFTER: chrono::Duration = chrono::Duration::milliseconds(250);

mod queued;
mod verdict;

use verdict::{Ending, ending_of, verdict};

/// Shared by every run: the pool, the writer, and where to report.
pub(crate) struct Exec {
    writer: Writer,
    clock: SharedClock,
    permits: Arc<Semaphore>,
    /// The slots of `permits` in all (`max_concurrent_runs`).
    slots: usize,
    live: LiveRuns,
    events: EventBus,
    commands: mpsc::UnboundedSender<Command>,
    runlog: Arc<RunLogPolicy>,
    timeout_grace: chrono::Duration,
    instance_id: String,
    capture_warned: OnceLock<()>,
    claiming: Arc<Claiming>,
    lead: Lead,
}

/// Why a dispatched run got no row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Missed {
    /// Someone else claimed the fire first.
    Lost,
    /// The database refused the write.
    Refused,
    /// The fire was recorded as skipped: an exclusive run of its job was going.
    Skipped,
    /// An exclusive run of the job is going: the retry waits, the manual run is refused.
    Busy,
}

impl Exec {
    pub(crate) fn new(
        writer: Writer,
        clock: SharedClock,
        config: &SchedulerConfig,
        live: LiveRuns,
        events: EventBus,
        commands: mpsc::UnboundedSender<Command>,
        claiming: Arc<Claiming>,
    ) -> Self {
        Self {
            writer,
            clock,
            permits: Arc::new(Semaphore::new(config.max_concurrent_runs.max(1))),
            slots: config.max_concurrent_runs.max(1),
            live,
            events,
            commands,
            runlog: Arc::clone(&config.runlog),
            timeout_grace: chrono::Duration::from_std(config.timeout_grace)
                .unwrap_or(chrono::Duration::MAX),
            instance_id: config.instance_id.clone(),
            capture_warned: OnceLock::new(),
            claiming,
            lead: Lead::default(),
        }
    }

    /// Claims a scheduled fire, and learns from a claim sent ahead of its start how far
    /// ahead the next ones must go.
    pub(crate) async fn claim_fire(&self, claim: FireClaim) -> Result<ClaimResult, WriteFailed> {
        let sent = self.now();
        let ahead = claim.run.as_ref().is_some_and(|run| run.started_at > sent);
        let result = self.writer.claim_fire(claim).await;
        if ahead {
            let now = self.now();
            self.lead.claim_took(now - sent, now);
        }
        result
    }

    /// How much sooner than the plain look-ahead fires are claimed now.
    pub(crate) fn extra_lead(&self) -> chrono::Duration {
        self.lead.extra(self.now())
    }

    /// The values `spec`'s params declare secret, to mask in each of its runs' output.
    pub(crate) fn secrets_of(&self, spec: &crate::job::JobSpec) -> Arc<[String]> {
        secrets::secret_values(&spec.params, self.runlog.redaction()).into()
    }

    /// Where the scheduler task hears from the tasks it starts.
    pub(crate) fn commands(&self) -> &mpsc::UnboundedSender<Command> {
        &self.commands
    }

    pub(crate) fn instance_id(&self) -> &str {
        &self.instance_id
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now().trunc_subsecs(6)
    }

    fn ended(&self, ended: Ended) {
        // The scheduler task is gone only at the very end of shutdown, when nobody needs
        // to hear about this run any more.
        let _ = self.commands.send(Command::Ended(ended));
    }

    /// Writes a skipped fire: the schedule moves on and the skip is on record.
    pub(crate) async fn record_skip(self: Arc<Self>, claim: FireClaim) {
        if let Err(error) = self.writer.claim_fire(claim).await {
            tracing::error!(%error, "could not record a skipped fire");
        }
    }

    /// Records that a run of an instance that is gone was interrupted, then has its
    /// retry (if any) queued, and tells the jobs that follow its job.
    pub(crate) async fn interrupt(
        self: Arc<Self>,
        job_id: i64,
        finish: RunFinish,
        retry: Option<RetryDue>,
    ) {
        let run_id = finish.run_id;
        let finished = Finished {
            status: finish.status,
            finished_at: finish.finished_at,
            for_good: retry.is_none(),
        };
        match self.writer.finish_run(finish).await {
            Ok(()) => {
                let _ = self.commands.send(Command::RunEnded { job_id, finished });
                if let Some(retry) = retry {
                    let _ = self.commands.send(Command::QueueRetry(retry));
                }
            }
            Err(error) => {
                tracing::error!(run_id, %error, "could not record that a run was cut off");
            }
        }
    }

    /// Looks for runs of instances that are gone and hands them to the scheduler; the
    /// leader (`adopt`) also takes over the retries they were waiting to start.
    pub(crate) async fn check_leases(self: Arc<Self>, store: SharedStore, adopt: bool) {
        let live = match crate::instance::live_instance_ids(&store, &self.clock).await {
            Ok(live) => {
                self.claiming.set_sharing(live.len());
                live
            }
            Err(error) => {
                tracing::warn!(%error, "could not check the instances' leases");
                return;
            }
        };
        let orphans: Vec<_> = match store.running_runs().await {
            Ok(runs) => runs
                .into_iter()
                .filter(|run| run.instance_id != self.instance_id)
                .filter(|run| run.instance_id != crate::store::UNCLAIMED)
                .filter(|run| !live.contains(&run.instance_id))
                .collect(),
            Err(error) => {
                tracing::warn!(%error, "could not check the runs going");
                return;
            }
        };
        if !orphans.is_empty() {
            let _ = self.commands.send(Command::Orphaned(orphans));
        }
        if !adopt {
            return;
        }
        let waiting: Vec<_> = match store.pending_retries().await {
            Ok(runs) => runs
                .into_iter()
                .filter(|run| run.instance_id != self.instance_id)
                .filter(|run| !live.contains(&run.instance_id))
                .collect(),
            Err(error) => {
                tracing::warn!(%error, "could not check the retries waiting");
                return;
            }
        };
        if !waiting.is_empty() {
            let _ = self.commands.send(Command::Adopt(waiting));
        }
    }

    /// Ends a retry chain without a run: its job was removed or disabled.
    pub(crate) async fn drop_retry(self: Arc<Self>, claim: crate::store::RetryClaim) {
        if let Err(error) = self.writer.claim_retry(claim).await {
            tracing::error!(%error, "could not drop the retry of a job that no longer runs");
        }
    }

    /// Claims, runs and records one dispatched run.
    pub(crate) async fn execute(
        self: Arc<Self>,
        job: JobSnapshot,
        claim: Claim,
        dispatch: u64,
        cancel: CancellationToken,
        stop: Arc<OnceLock<StopReason>>,
    ) {
        let refused = Refused::of(&claim);
        let ended = |retry, missed, finished| Ended {
            job_id: job.id,
            dispatch,
            retry,
            lost: missed == Some(Missed::Lost),
            refused: refused.filter(|_| missed == Some(Missed::Refused)),
            busy: match refused {
                Some(Refused::Retry(due)) if missed == Some(Missed::Busy) => Some(due),
                _ => None,
            },
            decide_at_slot: None,
            finished,
        };
        let from_queue = match &claim {
            Claim::Queued { ahead, .. } => Some(*ahead),
            _ => None,
        };
        let (run_id, row) = match self.claim(&job, claim).await {
            Ok(claimed) => claimed,
            Err(missed) => {
                self.claiming.took_slot();
                self.ended(ended(None, Some(missed), None));
                return;
            }
        };
        let (retry, finished) = self
            .run(&job, run_id, &row, from_queue, cancel, stop)
            .await
            .unzip();
        self.ended(ended(retry.flatten(), None, finished));
    }

    /// Records the run's `running` row; a run claimed from the queue has it already.
    async fn claim(&self, job: &JobSnapshot, claim: Claim) -> Result<(i64, NewRun), Missed> {
        let (result, row) = match claim {
            Claim::Queued { run_id, row, .. } => return Ok((run_id, row)),
            Claim::Fire(claim) => {
                let row = claim.run.clone().ok_or(Missed::Lost)?;
                (self.claim_fire(claim).await, row)
            }
            Claim::Retry(claim) => {
                let row = claim.run.clone().ok_or(Missed::Lost)?;
                (self.writer.claim_retry(claim).await, row)
            }
            Claim::Manual(row, reply) => {
                let inserted = self.writer.insert_run(row.clone()).await;
                let answer = match &inserted {
                    Ok(ClaimResult::Run(id)) => Ok(*id),
                    Ok(_) => Err(CommandError::AlreadyRunning {
                        job: job.name.clone(),
                        run_id: None,
                    }),
                    Err(error) => Err(CommandError::Store(error.to_string())),
                };
                let _ = reply.send(answer);
                (inserted, row)
            }
        };
        match result {
            Ok(ClaimResult::Run(run_id)) => Ok((run_id, row)),
            Ok(ClaimResult::Skipped(_)) => {
                self.events.send(SchedulerEvent::FireSkipped {
                    job: job.name.clone(),
                    scheduled_for: row.scheduled_for,
                });
                Err(Missed::Skipped)
            }
            Ok(ClaimResult::Busy) => Err(Missed::Busy),
            Ok(ClaimResult::Lost | ClaimResult::Claimed) => {
                tracing::debug!(job = %job.name, "fire claimed elsewhere");
                Err(Missed::Lost)
            }
            Err(error) => {
                tracing::error!(job = %job.name, %error, "could not record the start of a run");
                Err(Missed::Refused)
            }
        }
    }

    async fn run(
        &self,
        job: &JobSnapshot,
        run_id: i64,
        row: &NewRun,
        from_queue: Option<bool>,
        cancel: CancellationToken,
        stop: Arc<OnceLock<StopReason>>,
    ) -> Option<(Option<RetryDue>, Finished)> {
        // A fire claimed ahead of its slot waits for it; if the run is cancelled in
        // between (shutdown), its handler never starts.
        if row.started_at > self.now() {
            tokio::select! {
                () = self.clock.sleep_until(row.started_at) => {}
                () = cancel.cancelled() => {}
            }
        }
        if from_queue == Some(true) {
            self.claiming.reached_start();
        }
        let counters = Arc::new(RunCounters::default());
        let live = LiveRun {
            run_id,
            job_id: job.id,
            job: job.name.clone(),
            trigger: row.trigger,
            attempt: row.attempt,
            due_at: row.started_at,
            started: Arc::default(),
            cancel: cancel.clone(),
            stop: Arc::clone(&stop),
            counters: Arc::clone(&counters),
        };
        // Live before it asks for a slot, so a queued run can be seen and cancelled.
        self.live.insert(live.clone());
        let slot = self.take_slot(run_id, &cancel).await;
        self.claiming.took_slot();
        let span = runlog::run_span(run_id, &job.name);
        let sink = Arc::new(RunLogSink::new(
            run_id,
            Arc::clone(&self.runlog),
            self.writer.log_sender(),
            self.clock.clone(),
        ));
        let secrets = Arc::clone(sink.secrets());
        secrets.register_all(job.secrets.iter().cloned());
        if !runlog::attach(&span, Arc::clone(&sink)) && self.capture_warned.set(()).is_ok() {
            tracing::warn!("run logs are not captured: the tracing subscriber has no RunLogLayer");
        }
        let (ending, started) = match slot {
            Some((permit, waited)) => {
                let started = self.now();
                let _ = live.started.set(started);
                if waited {
                    // The row says `queued`; it must say `running` before the handler
                    // starts. A failed write is logged and the run goes ahead: the
                    // finish records the truth.
                    let mark = RunMark {
                        run_id,
                        status: RunStatus::Running,
                        started_at: Some(started),
                    };
                    if let Err(error) = self.writer.mark_run(mark).await {
                        tracing::error!(run_id, %error, "could not record the start of a queued run");
                    }
                }
                super::metrics::run_started(&job.name, row.trigger, row.scheduled_for, started);
                self.events.send(SchedulerEvent::RunStarted {
                    run_id,
                    job: job.name.clone(),
                    trigger: row.trigger,
                    attempt: row.attempt,
                    scheduled_for: row.scheduled_for,
                });
                let ending = self
                    .supervise(job, run_id, row, &live, &secrets, span.clone())
                    .await;
                drop(permit);
                self.claiming.slot_freed(self.now() - started);
                (ending, Some(started))
            }
            None => {
                live.stop(StopReason::Shutdown);
                (Ending::NotStarted, None)
            }
        };
        let finished = self.now();
        let verdict = verdict(ending, stop.get(), job.spec.timeout);
        let (status, retry_at) = match verdict.kind {
            // A run that never started was no attempt: cancelled stays cancelled, and
            // one stopped by shutdown runs again at once, with the same attempt number.
            _ if started.is_none() => (
                verdict.status,
                (verdict.status == RunStatus::Interrupted).then_some(finished),
            ),
            Some(kind) if verdict.status != RunStatus::Succeeded => {
                let verdict = policy::failure_verdict(
                    &job.spec.retry,
                    row.attempt,
                    kind,
                    verdict.status,
                    verdict.retry_after,
                    finished,
                    rand::random(),
                );
                (verdict.status, verdict.retry_at)
            }
            _ => (verdict.status, None),
        };
        if let Some(message) = &verdict.message {
            span.in_scope(|| tracing::warn!(status = status.as_str(), "run ended: {message}"));
        }
        if let Some(line) = sink.truncation_line() {
            self.writer.log(line);
        }
        let progress = counters.snapshot();
        let finish = RunFinish {
            run_id,
            status,
            started_at: started,
            finished_at: finished,
            duration_ms: started.map(|started| (finished - started).num_milliseconds().max(0)),
            items_checked: saturating_i64(progress.checked),
            items_updated: saturating_i64(progress.updated),
            items_total: progress.total.map(saturating_i64),
            error_kind: verdict.kind.map(|kind| kind.as_str().to_owned()),
            error_message: verdict.message.map(|text| secrets.mask_owned(text)),
            summary: verdict.summary.map(|text| secrets.mask_owned(text)),
            retry_at,
        };
        let committed = self.writer.finish_run(finish).await;
        self.live.remove(run_id);
        if let Err(error) = committed {
            // The row stays `running`; the next start-up marks it interrupted.
            tracing::error!(run_id, %error, "could not record the end of a run");
            return None;
        }
        if let Some(started) = started {
            super::metrics::run_finished(&job.name, status, started, finished);
        }
        self.events.send(SchedulerEvent::RunFinished {
            run_id,
            job: job.name.clone(),
            status,
            retry_at,
        });
        let retry = retry_at.map(|retry_at| RetryDue {
            job_id: job.id,
            failed_run_id: run_id,
            retry_at,
            next_attempt: if started.is_some() {
                row.attempt + 1
            } else {
                row.attempt
            },
            first_run_id: row.first_run_id.unwrap_or(run_id),
        });
        let finished = Finished {
            status,
            finished_at: finished,
            for_good: retry.is_none(),
        };
        Some((retry, finished))
    }

    /// A free slot of the pool, and whether the run had to wait for it long enough to
    /// be marked `queued`; `None` when the run was cancelled (or the pool closed)
    /// first. Most runs get a slot at once or within moments (a burst of fires), and
    /// those are never marked: their finish carries the true start. A run still waiting
    /// after [`QUEUED_AFTER`] is marked, so the console and other processes see it wait.
    async fn take_slot(
        &self,
        run_id: i64,
        cancel: &CancellationToken,
    ) -> Option<(tokio::sync::OwnedSemaphorePermit, bool)> {
        if cancel.is_cancelled() {
            return None;
        }
        if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
            return Some((permit, false));
        }
        let mut acquire = std::pin::pin!(Arc::clone(&self.permits).acquire_owned());
        let mark_at = self.now() + QUEUED_AFTER;
        // Cancellation first: at shutdown every run is cancelled at once, and a slot
        // freed by one of them must not start another.
        tokio::select! {
            biased;
            () = cancel.cancelled() => return None,
            permit = &mut acquire => return permit.ok().map(|permit| (permit, false)),
            () = self.clock.sleep_until(mark_at) => {}
        }
        let mark = RunMark {
            run_id,
            status: RunStatus::Queued,
            started_at: None,
        };
        if let Err(error) = self.writer.mark_run(mark).await {
            tracing::error!(run_id, %error, "could not record that a run is queued");
        }
        tokio::select! {
            biased;
            () = cancel.cancelled() => None,
            permit = &mut acquire => permit.ok().map(|permit| (permit, true)),
        }
    }

    /// Runs the handler in its own task (so a panic is caught and a handler that ignores
    /// cancellation can be dropped), with the job's timeout and the grace period.
    async fn supervise(
        &self,
        job: &JobSnapshot,
        run_id: i64,
        row: &NewRun,
        live: &LiveRun,
        secrets: &Arc<SecretMask>,
        span: tracing::Span,
    ) -> Ending {
        let name = job.name.parse::<JobName>();
        let Ok(name) = name else {
            return Ending::Returned(Err(JobError::fatal(format!(
                "invalid job name {:?}",
                job.name
            ))));
        };
        let ctx = JobContext::new(
            name,
            run_id,
            row.attempt,
            row.scheduled_for,
            live.cancel.clone(),
            Arc::clone(&live.counters),
            self.clock.clone(),
        )
        .with_secrets(Arc::clone(secrets));
        // Polled here rather than spawned: a panic is caught by `catch_unwind`, and a
        // handler that ignores cancellation is abandoned by dropping its future, which
        // is what aborting a task would do, without a task per run.
        let handler = job
            .handler
            .run(job.spec.params.clone(), ctx)
            .instrument(span);
        let mut handler = std::pin::pin!(AssertUnwindSafe(handler).catch_unwind());
        let deadline = self.now()
            + chrono::Duration::from_std(job.spec.timeout).unwrap_or(chrono::Duration::MAX);
        tokio::select! {
            ended = &mut handler => return ending_of(ended),
            () = self.clock.sleep_until(deadline) => { live.stop(StopReason::Timeout); }
            () = live.cancel.cancelled() => {}
        }
        let grace_over = self.now() + self.timeout_grace;
        tokio::select! {
            ended = &mut handler => ending_of(ended),
            () = self.clock.sleep_until(grace_over) => Ending::Abandoned,
        }
    }
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
