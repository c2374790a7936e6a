//! Claims the database refused (a write error, not a claim lost to someone else): each
//! is tried again after a growing wait instead of at once, where it would most likely be
//! refused again, in a loop.

use super::{Core, now_of};
use crate::scheduler::SchedulerEvent;
use crate::scheduler::handoff::Refused;

/// The wait before a refused claim is tried again: a second, doubled at each further
/// refusal of the same job, up to a minute.
fn refusal_backoff(refusals: u32) -> chrono::Duration {
    let doublings = refusals.saturating_sub(1).min(6);
    chrono::Duration::seconds(1_i64 << doublings).min(chrono::Duration::minutes(1))
}

impl Core {
    /// Tries a claim the database refused again after a backoff, instead of at once: the
    /// refused write would most likely be refused again, in a loop.
    pub(super) fn back_off(&mut self, job_id: i64, refused: Refused) {
        let refusals = self.refusals.entry(job_id).or_insert(0);
        *refusals += 1;
        let refusals = *refusals;
        let at = now_of(&self.clock) + refusal_backoff(refusals);
        let Some(job) = self.jobs.get_mut(&job_id) else {
            return;
        };
        match refused {
            Refused::Fire { nominal } => {
                // The store still has this slot as the next fire; the later slot queued
                // when it was dispatched would lose its claim, so it is dropped as stale.
                job.next_run_at = Some(nominal);
                self.queue.push_refire(job_id, nominal, at);
            }
            Refused::Retry(due) => self.queue.push_retry_at(at, due),
        }
        self.events.send(SchedulerEvent::ClaimRefused {
            job: job.name.clone(),
            refusals,
            retry_at: at,
        });
    }
}
