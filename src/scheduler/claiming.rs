//! What the claim loop of shared execution shares with the rest of its instance: how it
//! is woken, whether the database's announcements reach it, and what it claimed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::Notify;

/// The claim loop's shared state; one per scheduler.
#[derive(Default)]
pub(crate) struct Claiming {
    /// Wakes the loop: runs were queued, or a slot freed while it had none.
    wake: Notify,
    /// The database announces queued runs to this instance, its own included; then it
    /// does not wake its loop itself when it queues some, so that every instance hears of
    /// them at the same moment and they spread over all instances rather than going to
    /// the leader first.
    announced: AtomicBool,
    /// The loop found no free slot (or more runs than it took): the next run to end
    /// wakes it.
    starved: AtomicBool,
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

    /// Runs were queued here: wake the loop unless the announcement will.
    pub(crate) fn queued_here(&self) {
        if !self.announced.load(Ordering::Relaxed) {
            self.wake();
        }
    }

    pub(crate) fn set_announced(&self, announced: bool) {
        self.announced.store(announced, Ordering::Relaxed);
    }

    pub(crate) fn starve(&self) {
        self.starved.store(true, Ordering::Relaxed);
    }

    /// A slot freed: wake the loop if it is waiting for one.
    pub(crate) fn slot_freed(&self) {
        if self.starved.swap(false, Ordering::Relaxed) {
            self.wake();
        }
    }

    pub(crate) fn looked(&self, claimed: usize) {
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
