//! Execution shared by every instance of a database (PostgreSQL): the leader runs its
//! share of the scheduled fires itself (one in as many as there are live instances: all of
//! them when it is alone) and queues each other fire as a run for any instance, in the
//! same fenced write that claims the fire; every instance (the leader too) claims queued
//! runs while it has room for them.
//!
//! Concurrency policies hold across instances because the database decides them: a
//! `forbid` job's runs are exclusive (at most one going, by a unique index), so a fire
//! that finds one going anywhere is recorded as skipped; `replace` cancels the older runs
//! wherever they go, through the database's announcements.

use chrono::{DateTime, Utc};

use super::{Core, now_of};
use crate::job::ErrorKind;
use crate::scheduler::Command;
use crate::scheduler::due_queue::FireDue;
use crate::scheduler::handoff::{Claim, RetryDue};
use crate::scheduler::live::StopReason;
use crate::store::{FireClaim, NewRun, RunFinish, RunRecord, RunStatus, UNCLAIMED};

/// How long a retry waits before it looks again whether the exclusive run of its job,
/// going on another instance, has ended.
const BUSY_RETRY_RECHECK: chrono::Duration = chrono::Duration::seconds(1);

impl Core {
    /// Whether the leader runs this fire itself, as on one instance: one in as many as
    /// there are live instances. Its share costs no claim (one write less per run), and
    /// the rest spreads over every instance, the leader included.
    pub(super) fn runs_own_share(&mut self) -> bool {
        self.fires_decided = self.fires_decided.wrapping_add(1);
        let sharing = u64::try_from(self.exec.sharing()).unwrap_or(1);
        self.fires_decided.is_multiple_of(sharing)
    }

    /// A fire queued ahead of its slot met a run of its job going (on any instance): the
    /// store gave the slot back, and it is decided again at the slot itself.
    pub(super) fn decide_at_slot(&mut self, fire: FireDue) {
        let Some(job) = self.jobs.get_mut(&fire.job_id) else {
            return;
        };
        // The later slot queued when it was claimed is stale now, and is dropped.
        job.next_run_at = Some(fire.nominal);
        self.queue.push_at_start(fire);
    }

    /// Queues the fire `claim` (its run built for this instance) for any instance.
    pub(super) fn enqueue_fire(&mut self, mut claim: FireClaim, fire: FireDue) {
        let Some(job) = self.jobs.get(&claim.job_id) else {
            return;
        };
        let name = job.name.clone();
        if let Some(run) = claim.run.as_mut() {
            run.status = RunStatus::Queued;
            run.instance_id = UNCLAIMED.to_owned();
        }
        let exec = std::sync::Arc::clone(&self.exec);
        self.tracker.spawn(exec.enqueue(name, claim, fire));
    }

    /// Cancels the runs of `job_id` scheduled before `slot`, here and on every other
    /// instance: a `replace` job's new run takes over.
    pub(super) fn replace_older_runs(&self, job_id: i64, slot: DateTime<Utc>) {
        self.stop_active(job_id, StopReason::Replaced);
        let store = self.store.clone();
        let me = self.exec.instance_id().to_owned();
        let now = now_of(&self.clock);
        self.tracker.spawn(async move {
            let going = match store.running_runs().await {
                Ok(runs) => runs,
                Err(error) => {
                    tracing::warn!(job_id, %error, "could not find the runs to replace");
                    return;
                }
            };
            let older = going
                .into_iter()
                .filter(|run| run.job_id == job_id && run.scheduled_for < slot)
                .filter(|run| run.instance_id != me);
            for run in older {
                let asked = if run.instance_id == UNCLAIMED {
                    store
                        .cancel_unclaimed(run.id, "cancelled: replaced by a newer run", now)
                        .await
                } else {
                    store.announce_cancel(run.id, Some("a newer run")).await
                };
                if let Err(error) = asked {
                    tracing::warn!(run_id = run.id, %error, "could not replace a run");
                }
            }
        });
    }

    /// Stops the claim loop at shutdown, and gives the runs of its last claim, which
    /// the scheduler will no longer start, back to the queue for another instance:
    /// claimed, they would be left `running` here with nothing running them.
    pub(super) async fn stop_claiming(
        &mut self,
        claim_loop: Option<tokio::task::JoinHandle<()>>,
        commands: &mut tokio::sync::mpsc::UnboundedReceiver<Command>,
    ) {
        self.claiming.cancel();
        let Some(claim_loop) = claim_loop else {
            return;
        };
        // A claim sent before the cancel finishes and hands over what it took.
        if let Err(error) = claim_loop.await {
            tracing::error!(%error, "the claim loop failed");
        }
        let mut unstarted = Vec::new();
        while let Ok(command) = commands.try_recv() {
            if let Command::Claimed(runs, _) = command {
                unstarted.extend(runs.iter().map(|run| run.id));
            }
        }
        if unstarted.is_empty() {
            return;
        }
        match self
            .store
            .release_claimed(self.exec.instance_id(), &unstarted)
            .await
        {
            Ok(released) => tracing::info!(released, "gave claimed runs back to the queue"),
            // Left `running` here: once this instance's lease runs out, a survivor
            // interrupts them and retries them by policy.
            Err(error) => {
                tracing::warn!(%error, runs = unstarted.len(), "could not give claimed runs back")
            }
        }
    }

    /// Dispatches runs this instance claimed from the queue at `at`.
    pub(super) fn take_claimed(&mut self, claimed: Vec<RunRecord>, at: DateTime<Utc>) {
        let now = now_of(&self.clock);
        for run in claimed {
            let ahead = run.started_at.is_some_and(|start| start > at);
            if !self.jobs.contains_key(&run.job_id) {
                self.exec.claimed_run_gone(ahead);
                self.refuse_claimed(&run, now);
                continue;
            }
            let row = NewRun {
                job_id: run.job_id,
                trigger: run.trigger,
                attempt: run.attempt,
                first_run_id: run.first_run_id,
                status: RunStatus::Running,
                scheduled_for: run.scheduled_for,
                started_at: run.started_at.unwrap_or(now),
                finished_at: None,
                error_kind: None,
                error_message: None,
                instance_id: self.exec.instance_id().to_owned(),
                exclusive: false,
            };
            self.dispatch(
                run.job_id,
                Claim::Queued {
                    run_id: run.id,
                    row,
                    ahead,
                },
            );
        }
    }

    /// Ends a claimed run of a job this instance cannot run (removed since it was
    /// queued, or its settings or handler are not valid here) as failed, saying why.
    fn refuse_claimed(&self, run: &RunRecord, now: DateTime<Utc>) {
        tracing::error!(run_id = run.id, job = %run.job_name, "claimed a run of a job this instance cannot run");
        let finish = RunFinish {
            run_id: run.id,
            status: RunStatus::Failed,
            started_at: None,
            finished_at: now,
            duration_ms: None,
            items_checked: 0,
            items_updated: 0,
            items_total: None,
            error_kind: Some(ErrorKind::Invalid.as_str().into()),
            error_message: Some(format!(
                "instance {} cannot run job {:?}: it is removed or invalid there (see its log)",
                self.exec.instance_id(),
                run.job_name
            )),
            summary: None,
            retry_at: None,
        };
        let exec = std::sync::Arc::clone(&self.exec);
        self.tracker.spawn(exec.interrupt(run.job_id, finish, None));
    }

    /// A retry found an exclusive run of its job going: it waits for this instance's
    /// run to end, or looks again shortly when the run goes elsewhere.
    pub(super) fn wait_for_exclusive(&mut self, due: RetryDue) {
        if self.is_active(due.job_id) {
            self.deferred.entry(due.job_id).or_default().push(due);
        } else {
            let at = now_of(&self.clock) + BUSY_RETRY_RECHECK;
            self.queue.push_retry_at(at, due);
        }
    }
}
