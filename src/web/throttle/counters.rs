//! Failure counters for one kind of key (a name, an address, …), with the pause their
//! [`Policy`] imposes, bounded in size.

use std::collections::HashMap;
use std::hash::Hash;

use chrono::{DateTime, Duration, Utc};

/// How failures against one kind of key slow further attempts down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Failures in a row that cost nothing; once this many are counted, every further
    /// attempt waits for a pause.
    pub free_failures: u32,
    /// Failures are forgotten once this long has passed since the last one.
    pub window: Duration,
    /// The first pause; it doubles with each further failure.
    pub first_pause: Duration,
    /// The longest pause (not longer than `window`, so a pause never outlives its count).
    pub max_pause: Duration,
}

impl Policy {
    /// The pause after `failures` failures in a row, if any.
    fn pause_after(&self, failures: u32) -> Option<Duration> {
        let past_free = failures.checked_sub(self.free_failures)?;
        let doublings = past_free.min(20);
        Some(
            self.first_pause
                .checked_mul(1 << doublings)
                .unwrap_or(self.max_pause)
                .min(self.max_pause),
        )
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: DateTime<Utc>,
    paused_until: Option<DateTime<Utc>>,
}

/// Counters for keys of type `K`, at most `capacity` of them.
#[derive(Debug)]
pub struct Counters<K> {
    policy: Policy,
    capacity: usize,
    entries: HashMap<K, Entry>,
}

impl<K: Hash + Eq + Clone> Counters<K> {
    pub fn new(policy: Policy, capacity: usize) -> Self {
        Self {
            policy,
            capacity: capacity.max(1),
            entries: HashMap::new(),
        }
    }

    /// When `key`'s pause ends, if one runs at `now`.
    pub fn paused_until(&self, key: &K, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.entries
            .get(key)?
            .paused_until
            .filter(|until| *until > now)
    }

    /// Counts one failure against `key` at `now` (an attempt counts as failed until it
    /// is known to have succeeded), starting or lengthening its pause.
    pub fn count(&mut self, key: K, now: DateTime<Utc>) {
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            self.make_room(now);
        }
        let policy = self.policy;
        let entry = self.entries.entry(key).or_insert(Entry {
            failures: 0,
            last_failure: now,
            paused_until: None,
        });
        if now - entry.last_failure > policy.window {
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure = now;
        entry.paused_until = policy.pause_after(entry.failures).map(|pause| now + pause);
    }

    /// Takes back one counted failure: the attempt succeeded or was never checked. A
    /// pause that only this failure caused ends; a longer one that failures before it
    /// caused stays.
    pub fn take_back(&mut self, key: &K) {
        let policy = self.policy;
        if let Some(entry) = self.entries.get_mut(key) {
            entry.failures = entry.failures.saturating_sub(1);
            if policy.pause_after(entry.failures).is_none() {
                entry.paused_until = None;
            }
        }
    }

    /// Forgets `key` altogether.
    pub fn forget(&mut self, key: &K) {
        self.entries.remove(key);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Drops what has been forgotten anyway; if that is not enough, the eighth of the
    /// entries idle longest, so a flood of new keys costs one sort per many inserts.
    fn make_room(&mut self, now: DateTime<Utc>) {
        let window = self.policy.window;
        self.entries
            .retain(|_, entry| now - entry.last_failure <= window);
        if self.entries.len() < self.capacity {
            return;
        }
        let mut by_age: Vec<(DateTime<Utc>, K)> = self
            .entries
            .iter()
            .map(|(key, entry)| (entry.last_failure, key.clone()))
            .collect();
        let evict = (self.capacity / 8).max(1).min(by_age.len());
        by_age.select_nth_unstable_by_key(evict - 1, |(last_failure, _)| *last_failure);
        for (_, key) in by_age.into_iter().take(evict) {
            self.entries.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy {
        free_failures: 3,
        window: Duration::minutes(15),
        first_pause: Duration::seconds(30),
        max_pause: Duration::minutes(15),
    };

    fn start() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).expect("a time")
    }

    #[test]
    fn pauses_start_at_the_free_failures_and_double_up_to_the_longest() {
        assert_eq!(POLICY.pause_after(2), None);
        assert_eq!(POLICY.pause_after(3), Some(Duration::seconds(30)));
        assert_eq!(POLICY.pause_after(4), Some(Duration::seconds(60)));
        assert_eq!(POLICY.pause_after(8), Some(Duration::minutes(15)));
        assert_eq!(POLICY.pause_after(u32::MAX), Some(Duration::minutes(15)));
    }

    #[test]
    fn taking_back_the_failure_that_started_a_pause_ends_it() {
        let mut counters = Counters::new(POLICY, 10);
        for _ in 0..3 {
            counters.count("ann", start());
        }
        assert!(counters.paused_until(&"ann", start()).is_some());
        counters.take_back(&"ann");
        assert_eq!(counters.paused_until(&"ann", start()), None);
    }

    #[test]
    fn when_full_the_entries_idle_longest_go_first() {
        let mut counters = Counters::new(POLICY, 16);
        for n in 0..16 {
            counters.count(n, start() + Duration::seconds(n));
        }
        counters.count(100, start() + Duration::seconds(100));
        assert!(counters.len() <= 16);
        assert!(!counters.entries.contains_key(&0), "the oldest went");
        assert!(counters.entries.contains_key(&15));
        assert!(counters.entries.contains_key(&100));
        for n in 200..1_000 {
            counters.count(n, start() + Duration::seconds(n));
        }
        assert!(counters.len() <= 16);
    }
}
