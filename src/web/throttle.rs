//! Slows down password guessing: failed sign-ins are counted per user name and per client
//! address; past a few failures in a window, further attempts are refused for a delay
//! that doubles with each failure. In memory (a restart forgets it), bounded in size, and
//! on the injected clock so tests control time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

use crate::clock::SharedClock;

/// Failures allowed within [`WINDOW`] before attempts are refused.
pub const FREE_FAILURES: u32 = 5;

/// How long failures are remembered after the last one.
pub const WINDOW: Duration = Duration::minutes(15);

/// The refusal after the first failure past the free ones; it doubles with each further
/// failure, up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::seconds(30);

/// The longest refusal.
const MAX_DELAY: Duration = Duration::minutes(15);

/// Entries kept at most; when full, expired ones go first, then the oldest.
const MAX_ENTRIES: usize = 10_000;

/// What failures are counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Name(String),
    Address(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: DateTime<Utc>,
    blocked_until: Option<DateTime<Utc>>,
}

/// The sign-in throttle.
pub struct LoginThrottle {
    clock: SharedClock,
    // A std Mutex: held for a map lookup, never across an await.
    entries: Mutex<HashMap<Key, Entry>>,
}

impl std::fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginThrottle").finish_non_exhaustive()
    }
}

impl LoginThrottle {
    /// An empty throttle on `clock`.
    pub fn new(clock: SharedClock) -> Self {
        Self {
            clock,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(wait)` when a sign-in for `name` from `address` must be refused for `wait`
    /// (whole seconds, at least one).
    ///
    /// # Errors
    /// The remaining wait.
    pub fn check(&self, name: &str, address: Option<IpAddr>) -> Result<(), std::time::Duration> {
        let now = self.clock.now();
        let entries = self.lock();
        let wait = keys(name, address)
            .filter_map(|key| entries.get(&key)?.blocked_until)
            .filter(|until| *until > now)
            .max()
            .map(|until| until - now);
        match wait {
            None => Ok(()),
            Some(wait) => {
                let seconds = (wait.num_milliseconds() + 999) / 1000;
                Err(std::time::Duration::from_secs(
                    u64::try_from(seconds).unwrap_or(1).max(1),
                ))
            }
        }
    }

    /// Counts a failed sign-in against `name` and `address`.
    pub fn record_failure(&self, name: &str, address: Option<IpAddr>) {
        let now = self.clock.now();
        let mut entries = self.lock();
        for key in keys(name, address) {
            if !entries.contains_key(&key) && entries.len() >= MAX_ENTRIES {
                make_room(&mut entries, now);
            }
            let entry = entries.entry(key).or_insert(Entry {
                failures: 0,
                last_failure: now,
                blocked_until: None,
            });
            if now - entry.last_failure > WINDOW {
                entry.failures = 0;
            }
            entry.failures = entry.failures.saturating_add(1);
            entry.last_failure = now;
            entry.blocked_until = delay_after(entry.failures).map(|delay| now + delay);
        }
    }

    /// Forgets the failures of `name` after a successful sign-in. The address keeps its
    /// count: one known password must not reset guessing from that address.
    pub fn record_success(&self, name: &str) {
        self.lock().remove(&Key::Name(name.to_owned()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        // The map holds counters only; a panic elsewhere cannot leave it inconsistent.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn keys(name: &str, address: Option<IpAddr>) -> impl Iterator<Item = Key> {
    std::iter::once(Key::Name(name.to_owned())).chain(address.map(Key::Address))
}

/// The refusal after `failures` failures in a row, if any.
fn delay_after(failures: u32) -> Option<Duration> {
    let past_free = failures.checked_sub(FREE_FAILURES)?;
    if past_free == 0 {
        // The last free failure itself costs nothing; the next attempt is free too.
        return None;
    }
    let doublings = (past_free - 1).min(10);
    Some((FIRST_DELAY * (1 << doublings)).min(MAX_DELAY))
}

fn make_room(entries: &mut HashMap<Key, Entry>, now: DateTime<Utc>) {
    entries.retain(|_, entry| {
        now - entry.last_failure <= WINDOW || entry.blocked_until.is_some_and(|u| u > now)
    });
    if entries.len() >= MAX_ENTRIES {
        let oldest = entries
            .iter()
            .min_by_key(|(_, entry)| entry.last_failure)
            .map(|(key, _)| key.clone());
        if let Some(oldest) = oldest {
            entries.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;

    fn throttle() -> (LoginThrottle, ManualClock) {
        let clock = ManualClock::new(DateTime::from_timestamp(1_800_000_000, 0).expect("a time"));
        (LoginThrottle::new(Arc::new(clock.clone())), clock)
    }

    #[test]
    fn five_failures_are_free_and_the_sixth_blocks_for_a_doubling_delay() {
        let (throttle, clock) = throttle();
        for _ in 0..FREE_FAILURES {
            assert!(throttle.check("ann", None).is_ok());
            throttle.record_failure("ann", None);
        }
        assert!(throttle.check("ann", None).is_ok());
        throttle.record_failure("ann", None);
        assert_eq!(
            throttle.check("ann", None),
            Err(std::time::Duration::from_secs(30))
        );
        clock.advance(Duration::seconds(30));
        assert!(throttle.check("ann", None).is_ok());
        throttle.record_failure("ann", None);
        assert_eq!(
            throttle.check("ann", None),
            Err(std::time::Duration::from_secs(60))
        );
    }

    #[test]
    fn failures_count_per_address_across_names() {
        let (throttle, _clock) = throttle();
        let address: IpAddr = [10, 0, 0, 1].into();
        for n in 0..=FREE_FAILURES {
            throttle.record_failure(&format!("user{n}"), Some(address));
        }
        assert!(throttle.check("someone-else", Some(address)).is_err());
        assert!(throttle.check("someone-else", None).is_ok());
    }

    #[test]
    fn failures_older_than_the_window_are_forgotten() {
        let (throttle, clock) = throttle();
        for _ in 0..FREE_FAILURES {
            throttle.record_failure("ann", None);
        }
        clock.advance(WINDOW + Duration::seconds(1));
        throttle.record_failure("ann", None);
        assert!(throttle.check("ann", None).is_ok());
    }

    #[test]
    fn a_success_clears_the_name_but_not_the_address() {
        let (throttle, _clock) = throttle();
        let address: IpAddr = [10, 0, 0, 2].into();
        for _ in 0..=FREE_FAILURES {
            throttle.record_failure("ann", Some(address));
        }
        throttle.record_success("ann");
        assert!(throttle.check("ann", None).is_ok());
        assert!(throttle.check("ann", Some(address)).is_err());
    }
}
