//! What the claim loop of shared execution shares with the rest of its instance: how it
//! is woken, whether the database's announcements reach it, and what it claimed.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use tokio::sync::Notify;

/// The weight of the latest run in the mean time a run holds its slot: one in 16.
const HOLD_WEIGHT: u64 = 16;

/// How often an instance looks for queued runs when nobody told it of any, while the
/// database's announcements reach it: the baseline that a missed announcement or runs
/// left by a leader that died fall back on.
const CLAIM_POLL_ANNOUNCED: chrono::Duration = chrono::Duration::seconds(1);

/// How often it looks without announcements (`listen = false`): within the 300 ms (or
/// more) that fires are queued ahead of their slot, so that they start on time on any
/// instance.
const CLAIM_POLL_UNANNOUNCED: chrono::Duration = chrono::Duration::milliseconds(250);

/// The claim loop's shared state; one per scheduler.
#[derive(Default)]
pub(crate) struct Claiming {
    /// Wakes the loop: runs were queued, or a slot freed while it had none.
    wake: Notify,
    /// The database announces queued runs to this instance, its own included. Either way
    /// an instance does not wake its loop itself when it queues runs: every instance hears
    /// of them at the same moment (the announcement, or the next look), so that they
    /// spread over all instances rather than going to the leader first.
    announced: AtomicBool,
    /// The loop found no free slot (or more runs than it took): the next run to end
    /// wakes it.
    starved: AtomicBool,
    /// Runs whose start has come, on their way to a slot (claimed, or dispatched here):
    /// until they take one, the free slots do not show them.
    waiting_due: AtomicUsize,
    /// Claimed runs waiting for a start within the look-ahead: they hold no slot, but
    /// will want one, so they limit how far ahead the loop claims.
    waiting_ahead: AtomicUsize,
    /// How long a run holds its slot, on average over the last runs, in microseconds
    /// (0 until a run has ended): what the claim loop reckons the slots will do.
    mean_hold_micros: AtomicU64,
    /// The live instances the last lease check saw (0 before the first): the leader
    /// runs one fire in this many itself, and queues the rest for all.
    sharing: AtomicUsize,
    looks: AtomicU64,
    empty: AtomicU64,
    claimed: AtomicU64,
}

/// What the claim loop did since the scheduler started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClaimStats {
    /// Claim statements sent.
    pub looks: u64,
    /// Of those, the ones that found nothing (another instance was first, or nothing was
    /// due): the price of sharing.
    pub empty: u64,
    /// Runs claimed.
    pub claimed: u64,
}

impl Claiming {
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }

    /// How often the loop looks for queued runs unwoken: a fallback while announcements
    /// reach it; without them (a transaction-mode pooler) the way runs are found, often
    /// enough that a fire queued ahead of its slot is seen before the slot.
    pub(crate) fn poll_every(&self) -> chrono::Duration {
        if self.announced.load(Ordering::Relaxed) {
            CLAIM_POLL_ANNOUNCED
        } else {
            CLAIM_POLL_UNANNOUNCED
        }
    }

    pub(crate) fn set_announced(&self, announced: bool) {
        self.announced.store(announced, Ordering::Relaxed);
    }

    pub(crate) fn set_sharing(&self, instances: usize) {
        self.sharing.store(instances, Ordering::Relaxed);
    }

    /// How many instances share the runs, as last seen; at least one.
    pub(crate) fn sharing(&self) -> usize {
        self.sharing.load(Ordering::Relaxed).max(1)
    }

    pub(crate) fn starve(&self) {
        self.starved.store(true, Ordering::Relaxed);
    }

    /// A slot freed after being held for `held`: wake the loop if it is waiting for one.
    pub(crate) fn slot_freed(&self, held: chrono::Duration) {
        let held = u64::try_from(held.num_microseconds().unwrap_or(i64::MAX))
            .unwrap_or(0)
            .max(1);
        // A moving average over about the last 16 runs: it follows a change of workload
        // within moments, and one long run among short ones keeps the estimate cautious
        // for a while rather than for good.
        let _ = self
            .mean_hold_micros
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |mean| {
                Some(if mean == 0 {
                    held
                } else {
                    mean - mean / HOLD_WEIGHT + held / HOLD_WEIGHT
                })
            });
        if self.starved.swap(false, Ordering::Relaxed) {
            self.wake();
        }
    }

    /// How many runs `slots` slots can start within `horizon` besides the free ones,
    /// reckoned from how long runs have held a slot lately: a handful when runs take
    /// longer than the horizon, thousands when they take a millisecond. It measures what
    /// the slots can do, not what they were given, so an instance that ran little in
    /// the last burst claims as boldly as the one that ran the most. Nothing until a
    /// run has ended.
    pub(crate) fn frees_within(&self, horizon: chrono::Duration, slots: usize) -> usize {
        let mean = self.mean_hold_micros.load(Ordering::Relaxed);
        if mean == 0 {
            return 0;
        }
        let horizon = u64::try_from(horizon.num_microseconds().unwrap_or(0)).unwrap_or(0);
        let starts = u64::try_from(slots)
            .unwrap_or(u64::MAX)
            .saturating_mul(horizon)
            / mean;
        usize::try_from(starts).unwrap_or(usize::MAX)
    }

    /// Claimed runs on their way to a slot: `(due, ahead)`.
    pub(crate) fn waiting(&self) -> (usize, usize) {
        (
            self.waiting_due.load(Ordering::Relaxed),
            self.waiting_ahead.load(Ordering::Relaxed),
        )
    }

    /// A run was dispatched here: it will want a slot at once.
    pub(crate) fn dispatched(&self) {
        self.waiting_due.fetch_add(1, Ordering::Relaxed);
    }

    /// A run claimed ahead of its start reached it: it wants a slot now.
    pub(crate) fn reached_start(&self) {
        decrement(&self.waiting_ahead);
        self.waiting_due.fetch_add(1, Ordering::Relaxed);
    }

    /// A run whose start had come took its slot, or will never take one.
    pub(crate) fn took_slot(&self) {
        decrement(&self.waiting_due);
    }

    /// A claimed run will never start here (claimed `ahead` of its start or not).
    pub(crate) fn gone(&self, ahead: bool) {
        decrement(if ahead {
            &self.waiting_ahead
        } else {
            &self.waiting_due
        });
    }

    /// A claim statement took `due` runs whose start had come and `ahead` others.
    pub(crate) fn looked(&self, due: usize, ahead: usize) {
        self.waiting_due.fetch_add(due, Ordering::Relaxed);
        self.waiting_ahead.fetch_add(ahead, Ordering::Relaxed);
        let claimed = due + ahead;
        self.looks.fetch_add(1, Ordering::Relaxed);
        if claimed == 0 {
            self.empty.fetch_add(1, Ordering::Relaxed);
        }
        self.claimed.fetch_add(
            u64::try_from(claimed).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    pub(crate) fn stats(&self) -> ClaimStats {
        ClaimStats {
            looks: self.looks.load(Ordering::Relaxed),
            empty: self.empty.load(Ordering::Relaxed),
            claimed: self.claimed.load(Ordering::Relaxed),
        }
    }
}

fn decrement(count: &AtomicUsize) {
    let _ = count.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: i64) -> chrono::Duration {
        chrono::Duration::milliseconds(n)
    }

    #[test]
    fn claims_only_free_slots_until_a_run_has_ended() {
        let claiming = Claiming::default();
        assert_eq!(claiming.frees_within(ms(300), 256), 0);
    }

    #[test]
    fn short_runs_let_an_instance_take_a_burst_and_long_ones_a_handful() {
        let quick = Claiming::default();
        quick.slot_freed(ms(2));
        // 256 slots, each starting a run every 2 ms, for 300 ms.
        assert_eq!(quick.frees_within(ms(300), 256), 38_400);

        let slow = Claiming::default();
        slow.slot_freed(ms(10_000));
        // Of 256 runs of 10 s, about 7 end within 300 ms.
        assert_eq!(slow.frees_within(ms(300), 256), 7);
    }

    #[test]
    fn the_estimate_follows_the_latest_runs() {
        let claiming = Claiming::default();
        claiming.slot_freed(ms(10_000));
        let after_long = claiming.frees_within(ms(300), 256);
        for _ in 0..200 {
            claiming.slot_freed(ms(1));
        }
        let after_short = claiming.frees_within(ms(300), 256);
        assert_eq!(after_long, 7);
        // A run of 10 s weighs a sixteenth, then fades as short runs end.
        assert!(after_short > 10_000, "{after_short}");
    }

    #[test]
    fn a_run_shorter_than_a_microsecond_counts_as_one() {
        let claiming = Claiming::default();
        claiming.slot_freed(chrono::Duration::zero());
        assert_eq!(claiming.frees_within(ms(1), 4), 4_000);
    }
}
