//! Wall-clock time for the scheduler, injectable so tests can move it by hand.
//!
//! The scheduler and executor never call `Utc::now()` or `tokio::time::sleep` directly:
//! they ask a [`Clock`]. Production uses [`SystemClock`]; tests use [`ManualClock`] and
//! advance it explicitly. (`tokio::time::pause` alone does not fit: SQLite work happens
//! on sqlx's worker thread, and a paused runtime auto-advances time while it waits for it.)

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use tokio::sync::watch;

/// A source of wall-clock time that can also sleep until a given instant.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;

    /// Completes once `now() >= deadline`.
    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'static, ()>;
}

/// A cheaply cloneable, shared clock.
pub type SharedClock = Arc<dyn Clock>;

/// The longest a [`SystemClock`] sleeps before reading the wall clock again.
pub const WALL_CLOCK_RECHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            // The wall clock may be stepped while we sleep; re-check on wake-up so an
            // early wake never fires a job before its time.
            loop {
                let remaining = deadline - Utc::now();
                let Ok(remaining) = remaining.to_std() else {
                    return;
                };
                if remaining.is_zero() {
                    return;
                }
                // Tokio sleeps on the monotonic clock, which a wall-clock step or a
                // suspend does not move: waking every few seconds to read the wall
                // clock again bounds how late such a jump can make a fire.
                tokio::time::sleep(remaining.min(WALL_CLOCK_RECHECK)).await;
            }
        })
    }
}

/// A clock that only moves when told to. Sleepers wake as soon as an [`advance`]
/// or [`set`] passes their deadline.
///
/// [`advance`]: ManualClock::advance
/// [`set`]: ManualClock::set
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

#[derive(Debug)]
struct ManualInner {
    // A std Mutex: it is held only to read or replace one value, never across an await.
    now: Mutex<DateTime<Utc>>,
    ticks: watch::Sender<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock standing still at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        let (ticks, _) = watch::channel(start);
        Self {
            inner: Arc::new(ManualInner {
                now: Mutex::new(start),
                ticks,
            }),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self
            .inner
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *now += by;
        self.inner.ticks.send_replace(*now);
    }

    /// Sets the clock to `to` (which may be in the past: clocks get stepped).
    pub fn set(&self, to: DateTime<Utc>) {
        let mut now = self
            .inner
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *now = to;
        self.inner.ticks.send_replace(to);
    }

    /// This clock as a [`SharedClock`].
    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self
            .inner
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'static, ()> {
        let mut ticks = self.inner.ticks.subscribe();
        Box::pin(async move {
            // The sender lives as long as the clock; if every clone is gone, no one
            // can advance time any more and the sleeper waits forever, like a real one.
            if ticks.wait_for(|now| *now >= deadline).await.is_err() {
                futures::future::pending::<()>().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[tokio::test]
    async fn manual_clock_wakes_sleepers_only_when_their_deadline_passes() {
        let start = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("valid date");
        let clock = ManualClock::new(start);
        let sleeper = tokio::spawn(clock.sleep_until(start + chrono::Duration::seconds(10)));
        clock.advance(chrono::Duration::seconds(9));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(chrono::Duration::seconds(1));
        tokio::time::timeout(std::time::Duration::from_secs(5), sleeper)
            .await
            .expect("sleeper woke")
            .expect("sleeper did not panic");
        assert_eq!(clock.now(), start + chrono::Duration::seconds(10));
    }
}
