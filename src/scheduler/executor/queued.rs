//! The executor's side of shared execution: queuing a fire for any instance, and the
//! claim loop that takes queued runs while this instance has room for them.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::Exec;
use crate::scheduler::due_queue::{FireDue, LOOKAHEAD};
use crate::scheduler::handoff::{Ended, Refused};
use crate::scheduler::{Command, SchedulerEvent};
use crate::store::{ClaimResult, FireClaim, QueuedClaim, SharedStore};

/// The least time between the end of one claim and the start of the next. Runs are
/// announced once a write batch, so at a high fire rate every instance would otherwise
/// send a claim for nearly every batch and most would find the runs taken; wake-ups
/// within this time are served by one claim. Fires are queued 300 ms or more ahead of
/// their slot, so the wait costs them nothing.
const CLAIM_SPACING: std::time::Duration = std::time::Duration::from_millis(10);

/// The most queued runs of each kind (due, ahead) one claim takes.
const CLAIM_BATCH: usize = 1024;

/// How far ahead an instance counts the slots it will free when it claims runs whose
/// start has come: about one claim's round trip.
const CLAIM_DUE_HORIZON: chrono::Duration = chrono::Duration::milliseconds(50);

impl Exec {
    /// Queues a scheduled fire for whichever instance claims it first (the fire's
    /// compare-and-swap and the run's insert are one write, as for a local run).
    /// A fire claimed early that meets an exclusive run of its job going is given back
    /// and handed to the scheduler to decide at its slot (`fire`).
    pub(crate) async fn enqueue(self: Arc<Self>, job: String, claim: FireClaim, fire: FireDue) {
        let job_id = claim.job_id;
        let nominal = claim.expected;
        let mut decide_at_slot = None;
        let (lost, refused) = match self.claim_fire(claim).await {
            Ok(ClaimResult::Run(_)) => (false, None),
            Ok(ClaimResult::Skipped(_)) => {
                self.events.send(SchedulerEvent::FireSkipped {
                    job,
                    scheduled_for: nominal,
                });
                (false, None)
            }
            Ok(ClaimResult::Busy) => {
                decide_at_slot = Some(fire);
                (false, None)
            }
            Ok(ClaimResult::Lost | ClaimResult::Claimed) => (true, None),
            Err(error) => {
                tracing::error!(%job, %error, "could not queue a fire");
                (false, Some(Refused::Fire { nominal }))
            }
        };
        self.ended(Ended {
            job_id,
            dispatch: 0,
            retry: None,
            lost,
            refused,
            busy: None,
            decide_at_slot,
            finished: None,
        });
    }

    /// Claims runs queued for any instance while this instance has free slots, and hands
    /// them to the scheduler task; woken when runs are queued (here or, announced, on
    /// another instance) and when a slot frees up after it found none, and every
    /// poll period in any case (see [`Claiming::poll_every`]).
    ///
    /// [`Claiming::poll_every`]: crate::scheduler::claiming::Claiming::poll_every
    pub(crate) async fn claim_queued_runs(
        self: Arc<Self>,
        store: SharedStore,
        stop: CancellationToken,
    ) {
        let mut last_claim: Option<tokio::time::Instant> = None;
        loop {
            let poll = self.now() + self.claiming.poll_every();
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                () = self.claiming.woken() => {}
                () = self.clock.sleep_until(poll) => {}
            }
            // Real time, not the scheduler's clock: this paces statements to the database.
            if let Some(last) = last_claim {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep_until(last + CLAIM_SPACING) => {}
                }
            }
            self.claim_due(&store, &stop).await;
            last_claim = Some(tokio::time::Instant::now());
        }
    }

    async fn claim_due(&self, store: &SharedStore, stop: &CancellationToken) {
        while !stop.is_cancelled() {
            let now = self.now();
            let (waiting_due, waiting_ahead) = self.claiming.waiting();
            let free = self.permits.available_permits();
            // Runs whose start has come: as many as the slots can start within moments.
            // Runs that start within the look-ahead are taken now and wait here, as a
            // local fire claimed early does: as many as the slots can start by then.
            // Claimed runs on their way count against both, so an instance whose runs
            // hold their slots takes a handful and leaves the rest to others, and one
            // whose runs take a millisecond takes a burst in a few claims instead of a
            // claim per pool's worth (each a round trip, under a burst's load).
            let freeing = |horizon| self.claiming.frees_within(horizon, self.slots);
            let due = (free.saturating_add(freeing(CLAIM_DUE_HORIZON)))
                .saturating_sub(waiting_due)
                .min(CLAIM_BATCH);
            if due == 0 {
                self.claiming.starve();
                return;
            }
            let ahead = (free.saturating_add(freeing(LOOKAHEAD)))
                .saturating_sub(waiting_ahead + waiting_due)
                .min(CLAIM_BATCH);
            let claim = QueuedClaim {
                now,
                due,
                ahead,
                ahead_until: now + LOOKAHEAD,
            };
            let runs = match store.claim_queued(&self.instance_id, &claim).await {
                Ok(runs) => runs,
                Err(error) => {
                    tracing::warn!(%error, "could not claim queued runs");
                    return;
                }
            };
            let due_taken = runs
                .iter()
                .filter(|run| run.started_at.is_none_or(|start| start <= now))
                .count();
            let ahead_taken = runs.len() - due_taken;
            self.claiming.looked(due_taken, ahead_taken);
            let more = due_taken == due || (ahead > 0 && ahead_taken == ahead);
            if !runs.is_empty() && self.commands.send(Command::Claimed(runs, now)).is_err() {
                return;
            }
            if !more {
                if ahead == 0 {
                    // Runs starting soon may be waiting for room here: look again as
                    // soon as a slot frees, not at the next announcement.
                    self.claiming.starve();
                }
                return;
            }
        }
    }

    /// How many instances share the runs, as the last lease check saw.
    pub(crate) fn sharing(&self) -> usize {
        self.claiming.sharing()
    }

    /// A claimed run will not start here (its job cannot run on this instance).
    pub(crate) fn claimed_run_gone(&self, ahead: bool) {
        self.claiming.gone(ahead);
    }

    /// A run is dispatched here (not claimed from the queue): it will want a slot.
    pub(crate) fn dispatching(&self) {
        self.claiming.dispatched();
    }
}
