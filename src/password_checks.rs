//! A bound on how many password checks run at once.
//!
//! One argon2id check holds 19 MiB and a core for tens of milliseconds, on a blocking
//! thread (tokio allows 512 of them). Unbounded, a few hundred simultaneous sign-ins would
//! take gigabytes and every core without anyone signing in. So a check needs a
//! [`CheckSlot`]: there are about as many slots as cores, a request waits for one at most
//! a couple of seconds, and only so many requests may wait at all; the rest are told to
//! come back ([`Busy`]).
//!
//! The wait is measured on tokio's clock, not the application's [`crate::clock::Clock`]:
//! it bounds real CPU time and memory, not a business rule.
//!
//! The slot travels into the blocking task and is released when the hash is done, not
//! when the request ends: a client that disconnects mid-check cannot free its slot early
//! and start another.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a request waits for a free slot before it is told to come back.
pub const MAX_WAIT: Duration = Duration::from_secs(2);

/// The most slots, however many cores: each check holds 19 MiB, and sign-ins are not
/// worth more than this much memory.
pub const MAX_SLOTS: usize = 8;

/// Requests allowed to wait per slot; past this they are told to come back at once, so
/// waiting requests cannot pile up either.
const WAITING_PER_SLOT: usize = 16;

/// The right to run one password check now. Dropping it frees the slot.
#[derive(Debug)]
pub struct CheckSlot(#[allow(dead_code)] OwnedSemaphorePermit);

/// Every slot is taken and the wait would be too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many password checks at once")]
pub struct Busy {
    /// When it is worth trying again.
    pub retry_after: Duration,
}

/// The slots for password checks, shared by every request of one process.
#[derive(Debug)]
pub struct PasswordCheckLimit {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
    max_wait: Duration,
}

impl PasswordCheckLimit {
    /// `slots` checks at once (at least one), up to `max_waiting` requests waiting for at
    /// most `max_wait` each.
    pub fn new(slots: usize, max_waiting: usize, max_wait: Duration) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(slots.max(1))),
            waiting: AtomicUsize::new(0),
            max_waiting,
            max_wait,
        }
    }

    /// One slot per core of this machine, up to [`MAX_SLOTS`], waiting [`MAX_WAIT`] at
    /// most.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let slots = cores.min(MAX_SLOTS);
        Self::new(slots, slots * WAITING_PER_SLOT, MAX_WAIT)
    }

    /// Slots free right now.
    pub fn free_slots(&self) -> usize {
        self.slots.available_permits()
    }

    /// A slot, at once or after a bounded wait.
    ///
    /// # Errors
    /// [`Busy`] when too many requests already wait, or no slot came free in time.
    pub async fn acquire(&self) -> Result<CheckSlot, Busy> {
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(CheckSlot(permit));
        }
        let busy = Busy {
            retry_after: self.max_wait.max(Duration::from_secs(1)),
        };
        let _in_line = InLine::join(&self.waiting, self.max_waiting).ok_or(busy)?;
        match tokio::time::timeout(self.max_wait, Arc::clone(&self.slots).acquire_owned()).await {
            Ok(Ok(permit)) => Ok(CheckSlot(permit)),
            // The semaphore is never closed; a timeout is the only real failure.
            Ok(Err(_)) | Err(_) => Err(busy),
        }
    }
}

/// One waiting request, counted while it waits (also when its future is dropped).
struct InLine<'a>(&'a AtomicUsize);

impl<'a> InLine<'a> {
    fn join(waiting: &'a AtomicUsize, max_waiting: usize) -> Option<Self> {
        let joined = waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                (now < max_waiting).then_some(now + 1)
            })
            .is_ok();
        joined.then_some(Self(waiting))
    }
}

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Long enough never to run out while a test runs: the tests release slots rather
    /// than wait for time to pass.
    const PATIENT: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn no_more_checks_than_slots_run_at_once() {
        let limit = PasswordCheckLimit::new(2, 10, Duration::ZERO);
        let first = limit.acquire().await.expect("a free slot");
        let _second = limit.acquire().await.expect("a free slot");
        assert_eq!(limit.free_slots(), 0);
        let third = limit.acquire().await;
        assert_eq!(
            third.expect_err("no slot came free"),
            Busy {
                retry_after: Duration::from_secs(1)
            }
        );
        drop(first);
        limit
            .acquire()
            .await
            .expect("a slot freed by a finished check is taken");
    }

    #[tokio::test]
    async fn a_waiting_request_gets_the_slot_that_comes_free() {
        let limit = Arc::new(PasswordCheckLimit::new(1, 10, PATIENT));
        let held = limit.acquire().await.expect("a free slot");
        let waiter = tokio::spawn({
            let limit = Arc::clone(&limit);
            async move { limit.acquire().await.map(drop) }
        });
        wait_until_in_line(&limit, 1).await;
        drop(held);
        assert_eq!(waiter.await.expect("the waiter ends"), Ok(()));
        assert_eq!(limit.waiting.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn past_the_waiting_bound_requests_are_turned_away_at_once() {
        let limit = Arc::new(PasswordCheckLimit::new(1, 1, PATIENT));
        let held = limit.acquire().await.expect("a free slot");
        let waiter = tokio::spawn({
            let limit = Arc::clone(&limit);
            async move { limit.acquire().await.map(drop) }
        });
        wait_until_in_line(&limit, 1).await;
        // With a full line this returns at once, though a slot could take an hour.
        assert_eq!(
            limit.acquire().await.map(drop),
            Err(Busy {
                retry_after: PATIENT
            })
        );
        drop(held);
        assert_eq!(waiter.await.expect("the waiter ends"), Ok(()));
    }

    #[tokio::test]
    async fn a_slot_comes_back_when_its_check_ends_even_if_the_caller_has_gone() {
        let limit = PasswordCheckLimit::new(1, 1, Duration::ZERO);
        let slot = limit.acquire().await.expect("a free slot");
        let mut check = Box::pin(crate::users::verify_password("guess".into(), None, slot));
        // Started on a blocking thread, then abandoned, as by a client that disconnects.
        assert!(futures::poll!(check.as_mut()).is_pending());
        drop(check);
        while limit.free_slots() == 0 {
            tokio::task::yield_now().await;
        }
        assert!(limit.acquire().await.is_ok());
    }

    async fn wait_until_in_line(limit: &PasswordCheckLimit, waiting: usize) {
        while limit.waiting.load(Ordering::Acquire) < waiting {
            tokio::task::yield_now().await;
        }
    }
}
