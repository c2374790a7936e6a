//! The scheduler's due queue: a min-heap of what is due when, fires and retries alike.
//!
//! Entries are never removed early: one that no longer matches its job (rescheduled,
//! paused) is left in place and dropped by the scheduler when it comes up, which keeps
//! every change O(log n). Ties on the due time come out in the order they were queued.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::handoff::RetryDue;

/// How long before its time a fire is claimed. The claim (a compare-and-swap and the
/// run's `running` row) is committed during this window and the handler starts at the
/// due time itself, so database latency does not make runs late: with 10,000 jobs due
/// at the same instant, the claims take about 150 ms on a two-core machine. A job whose
/// previous run is still going when its window opens is decided at the due time instead,
/// so `forbid` and `replace` see the state at the slot, not before it.
pub(crate) const LOOKAHEAD: chrono::Duration = chrono::Duration::milliseconds(300);

/// A scheduled fire as queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct FireDue {
    pub job_id: i64,
    /// The slot on the schedule; the job's `next_run_at` while this entry is current.
    pub nominal: DateTime<Utc>,
    /// The slot plus jitter: when the handler starts.
    pub start_at: DateTime<Utc>,
    /// A missed fire run once at start-up: no jitter, no lookahead.
    pub catch_up: bool,
    /// Queued [`LOOKAHEAD`] before `start_at`, so that it is claimed by then.
    pub early: bool,
}

/// What came up in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DueEntry {
    Fire(FireDue),
    Retry(RetryDue),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum DueKind {
    Fire(FireDue),
    Retry(RetryKey),
}

/// A [`RetryDue`] in a form the heap can order; led by its time.
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

impl From<RetryKey> for RetryDue {
    fn from(key: RetryKey) -> Self {
        Self {
            job_id: key.job_id,
            failed_run_id: key.failed_run_id,
            retry_at: key.retry_at,
            next_attempt: key.next_attempt,
            first_run_id: key.first_run_id,
        }
    }
}

/// An entry of the heap. `seq` is unique, so entries due at the same moment come out in
/// the order they were queued and `kind` never decides the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Due {
    at: DateTime<Utc>,
    seq: u64,
    kind: DueKind,
}

#[derive(Debug, Default)]
pub(crate) struct DueQueue {
    /// Fires to claim ahead of their start.
    early: BinaryHeap<Reverse<Due>>,
    /// Everything else: retries, catch-ups, fires decided at their start.
    at_time: BinaryHeap<Reverse<Due>>,
    /// How much earlier than [`LOOKAHEAD`] before their start early fires come out.
    extra_lead: chrono::Duration,
    seq: u64,
}

impl DueQueue {
    /// Early fires come out `extra` sooner from now on (zero: [`LOOKAHEAD`] before their
    /// start).
    pub(crate) fn set_extra_lead(&mut self, extra: chrono::Duration) {
        self.extra_lead = extra.max(chrono::Duration::zero());
    }

    /// The earliest entry: when it is due, and which heap holds it.
    fn earliest(&self) -> Option<(DateTime<Utc>, u64, bool)> {
        let early = self
            .early
            .peek()
            .map(|Reverse(due)| (due.at - self.extra_lead, due.seq, true));
        let at_time = self
            .at_time
            .peek()
            .map(|Reverse(due)| (due.at, due.seq, false));
        match (early, at_time) {
            (Some(early), Some(at_time)) => Some(early.min(at_time)),
            (early, at_time) => early.or(at_time),
        }
    }

    /// When the earliest entry is due.
    pub(crate) fn next_at(&self) -> Option<DateTime<Utc>> {
        self.earliest().map(|(at, _, _)| at)
    }

    /// Takes the earliest entry if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: DateTime<Utc>) -> Option<DueEntry> {
        let (at, _, early) = self.earliest()?;
        if at > now {
            return None;
        }
        let heap = if early {
            &mut self.early
        } else {
            &mut self.at_time
        };
        let Reverse(due) = heap.pop()?;
        Some(match due.kind {
            DueKind::Fire(fire) => DueEntry::Fire(fire),
            DueKind::Retry(key) => DueEntry::Retry(key.into()),
        })
    }

    /// Queues the fire of `job_id`'s slot `nominal`: started at a random point within
    /// `jitter` after the slot (`unit` gives a random number in `[0, 1)`, drawn only when
    /// there is jitter to apply), and claimed
    /// [`LOOKAHEAD`] before that. A catch-up fire is due at once, unjittered.
    pub(crate) fn push_fire(
        &mut self,
        job_id: i64,
        nominal: DateTime<Utc>,
        catch_up: bool,
        jitter: Duration,
        unit: impl FnOnce() -> f64,
    ) {
        let start_at = if jitter.is_zero() || catch_up {
            nominal
        } else {
            let offset = jitter.mul_f64(unit());
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
        self.push(
            at,
            DueKind::Fire(FireDue {
                job_id,
                nominal,
                start_at,
                catch_up,
                early,
            }),
        );
    }

    /// Queues an early fire again for its start time, to be decided there.
    pub(crate) fn push_at_start(&mut self, fire: FireDue) {
        self.push(
            fire.start_at,
            DueKind::Fire(FireDue {
                early: false,
                ..fire
            }),
        );
    }

    /// Queues an early fire again for [`LOOKAHEAD`] before its start, with no extra
    /// lead: brought forward by a burst's lead, it met its job's previous run still going,
    /// which has likely ended by then.
    pub(crate) fn push_without_extra_lead(&mut self, fire: FireDue) {
        self.push_into(false, fire.start_at - LOOKAHEAD, DueKind::Fire(fire));
    }

    pub(crate) fn push_retry(&mut self, due: RetryDue) {
        self.push(due.retry_at, DueKind::Retry(due.into()));
    }

    /// Queues the retry `due` for `at` rather than its own time: its claim still expects
    /// the stored `retry_at`.
    pub(crate) fn push_retry_at(&mut self, at: DateTime<Utc>, due: RetryDue) {
        self.push(at, DueKind::Retry(due.into()));
    }

    /// Queues the fire of slot `nominal` again for `at`, after its claim was refused: it
    /// starts late, as a catch-up.
    pub(crate) fn push_refire(&mut self, job_id: i64, nominal: DateTime<Utc>, at: DateTime<Utc>) {
        self.push(
            at,
            DueKind::Fire(FireDue {
                job_id,
                nominal,
                start_at: at,
                catch_up: true,
                early: false,
            }),
        );
    }

    fn push(&mut self, at: DateTime<Utc>, kind: DueKind) {
        let early = matches!(kind, DueKind::Fire(FireDue { early: true, .. }));
        self.push_into(early, at, kind);
    }

    /// Queues `kind` for `at` in the heap of early fires (which the extra lead brings
    /// forward) or in the other.
    fn push_into(&mut self, early: bool, at: DateTime<Utc>, kind: DueKind) {
        self.seq += 1;
        let heap = if early {
            &mut self.early
        } else {
            &mut self.at_time
        };
        heap.push(Reverse(Due {
            at,
            seq: self.seq,
            kind,
        }));
    }
}

#[cfg(test)]
mod tests;
