//! Start-up recovery: building the scheduler's state from the store and settling what
//! the previous process left behind.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use super::{Core, now_of};
use crate::job::{ErrorKind, MisfirePolicy};
use crate::scheduler::due_queue::DueQueue;
use crate::scheduler::events::EventBus;
use crate::scheduler::executor::Exec;
use crate::scheduler::handoff::{Finished, RetryDue};
use crate::scheduler::live::LiveRuns;
use crate::scheduler::{Command, SchedulerParts, policy};
use crate::store::writer::Writer;
use crate::store::{JobRecord, RunFinish, RunRecord, RunStatus};

impl Core {
    /// Builds the scheduler's state from the store, and settles what the previous process
    /// left behind: runs cut off while `running` become `interrupted` (and are retried
    /// by policy), missed fires follow each job's misfire policy, and pending retries
    /// are queued again.
    pub(in crate::scheduler) async fn recover(
        parts: SchedulerParts,
        commands: mpsc::UnboundedSender<Command>,
        events: EventBus,
        live: LiveRuns,
        claiming: Arc<crate::scheduler::claiming::Claiming>,
    ) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let SchedulerParts {
            store,
            writer,
            registry,
            clock,
            config,
            mut leading,
        } = parts;
        // Seen here, so the loop hears only later changes.
        let leads = leading
            .as_mut()
            .is_none_or(|leading| leading.borrow_and_update().is_some());
        let exec = Arc::new(Exec::new(
            writer.clone(),
            clock.clone(),
            &config,
            live.clone(),
            events.clone(),
            commands,
            claiming,
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
            queue: DueQueue::default(),
            dispatches: 0,
            active: HashMap::new(),
            deferred: HashMap::new(),
            refusals: HashMap::new(),
            leads,
            leadership: leading,
            lead_pending: false,
            adopted: std::collections::HashSet::new(),
            shared: config.shared_execution,
            claiming: tokio_util::sync::CancellationToken::new(),
            fires_decided: 0,
            followers: None,
            published_followers: Default::default(),
        };
        let records = store.jobs().await.context("loading jobs")?;
        for record in &records {
            core.ids.insert(record.name.clone(), record.id);
            if let Some(state) = core.job_state(record) {
                core.jobs.insert(record.id, state);
            }
        }
        core.interrupt_orphans(&writer).await?;
        if core.leads {
            for record in &records {
                core.schedule_at_start(record).await?;
            }
        }
        let waiting = store
            .pending_retries()
            .await
            .context("loading pending retries")?;
        core.adopt_retries(&waiting);
        Ok(core)
    }

    /// Queues the retries of `runs` (failed runs waiting for one) that this instance
    /// does not hold yet. Two instances holding one retry would both try it; its claim
    /// lets one start it, and the other loses it.
    pub(super) fn adopt_retries(&mut self, runs: &[RunRecord]) {
        let now = now_of(&self.clock);
        for run in runs {
            if self.adopted.insert(run.id) {
                self.queue_retry(RetryDue::of_stored(run, now));
            }
        }
    }

    /// Interrupts the runs left `queued` or `running` by instances that are gone. Runs
    /// of a live instance (a `batchboard run` going beside this server) are theirs. The
    /// jobs that follow theirs hear of each once the loop starts, as of any run's end:
    /// one with no retry left is a failure for good, for `after_failure`.
    async fn interrupt_orphans(&mut self, writer: &Writer) -> anyhow::Result<()> {
        use anyhow::Context as _;
        let live = crate::instance::live_instance_ids(&self.store, &self.clock)
            .await
            .context("loading the live instances")?;
        for run in self
            .store
            .running_runs()
            .await
            .context("loading runs left running")?
        {
            // A run queued for any instance has no instance to be cut off with.
            if live.contains(&run.instance_id) || run.instance_id == crate::store::UNCLAIMED {
                continue;
            }
            let (finish, retry) = self.interruption(&run);
            let finished = Finished {
                status: finish.status,
                finished_at: finish.finished_at,
                for_good: retry.is_none(),
            };
            writer
                .finish_run(finish)
                .await
                .context("marking a cut-off run as interrupted")?;
            let ended = Command::RunEnded {
                job_id: run.job_id,
                finished,
            };
            // Only fails once the scheduler has stopped, when nothing follows anyway.
            let _ = self.exec.commands().send(ended);
        }
        Ok(())
    }

    /// How `run`, cut off with its instance, ends: `interrupted`, with a retry by the
    /// job's policy; one that never started was no attempt and runs again at once.
    pub(super) fn interruption(&self, run: &RunRecord) -> (RunFinish, Option<RetryDue>) {
        let now = now_of(&self.clock);
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
        tracing::warn!(run_id = run.id, job = %run.job_name, instance = %run.instance_id, status = %verdict.status, "a run was cut off by the end of its process");
        let finish = RunFinish {
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
        };
        let retry = verdict.retry_at.map(|retry_at| RetryDue {
            job_id: run.job_id,
            failed_run_id: run.id,
            retry_at,
            next_attempt: run.attempt + u32::from(run.started_at.is_some()),
            first_run_id: run.first_run_id.unwrap_or(run.id),
        });
        (finish, retry)
    }

    /// Takes over deciding the scheduled fires: every job's next fire is read from the
    /// store (the previous leader may have moved it) and queued, with missed ones
    /// following their misfire policy, as at start-up.
    pub(in crate::scheduler) async fn take_the_lead(&mut self) -> anyhow::Result<()> {
        use anyhow::Context as _;
        self.leads = true;
        let records = self.store.jobs().await.context("loading jobs")?;
        for record in &records {
            self.ids.insert(record.name.clone(), record.id);
            match self.job_state(record) {
                Some(state) => {
                    self.jobs.insert(record.id, state);
                    self.followers = None;
                }
                None => {
                    self.jobs.remove(&record.id);
                    self.followers = None;
                }
            }
        }
        for record in &records {
            self.schedule_at_start(record).await?;
        }
        Ok(())
    }

    pub(in crate::scheduler) async fn schedule_at_start(
        &mut self,
        record: &JobRecord,
    ) -> anyhow::Result<()> {
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
}
