//! What the claim loop of shared execution shares with the rest of its instance: how it
//! is woken, whether the database's announcements reach it, and what it claimed.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

/// How often an instance looks for queued runs when nobody told it of any, while the
/// database's announcements reach it: the baseline that a missed announcement or runs
/// left by a leader that died fall back on.
const CLAIM_POLL_ANNOUNCED: chrono::Duration = chrono::Duration::seconds(1);

/// How often it looks without announcements (`listen = false`): within the 300 ms that
/// fires are queued ahead of their slot, so that they start on time on any instance.
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
    /// Slots freed so far, for [`Turnover`].
    freed: AtomicU64,
    /// The live instances the last lease check saw (0 before the first): the leader
    /// runs one fire in this many itself, and queues the rest for all.
    sharing: AtomicUsize,
    looks: AtomicU64,
    empty: AtomicU64,
    claimed: AtomicU64,
}

/// How fast an instance frees slots, measured over about a second: short runs free theirs
/// within moments, so an instance can take on more than its free slots now, and a busy
/// one with long runs only about as many as it has free.
pub(crate) struct Turnover {
    since: Option<(DateTime<Utc>, u64)>,
    per_second: f64,
}

impl Turnover {
    pub(crate) fn new() -> Self {
        Self {
            since: None,
            per_second: 0.0,
        }
    }

    /// Takes a new measure when a second has passed since the last.
    pub(crate) fn update(&mut self, claiming: &Claiming, now: DateTime<Utc>) {
        let freed = claiming.freed.load(Ordering::Relaxed);
        match self.since {
            None => self.since = Some((now, freed)),
            Some((then, freed_then)) => {
                let span = (now - then).num_milliseconds();
                if span >= 1000 {
                    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
                    let rate = freed.saturating_sub(freed_then) as f64 * 1000.0 / span as f64;
                    self.per_second = rate;
                    self.since = Some((now, freed));
                }
            }
        }
    }

    /// Slots it is expected to free within `horizon`.
    pub(crate) fn within(&self, horizon: chrono::Duration) -> usize {
        #[allow(clippy::cast_precision_loss)] // milliseconds of a look-ahead
        let expected = self.per_second * horizon.num_milliseconds() as f64 / 1000.0;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // small, positive
        let expected = expected as usize;
        expected
    }
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

    /// A slot freed: wake the loop if it is waiting for one.
    pub(crate) fn slot_freed(&self) {
        self.freed.fetch_add(1, Ordering::Relaxed);
        if self.starved.swap(false, Ordering::Relaxed) {
            self.wake();
        }
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
