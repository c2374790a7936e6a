//! The pure decisions of scheduling: when the next fire is, and what a run's ending
//! means for retries. Kept free of I/O so they are tested directly.

use super::due_queue::LOOKAHEAD;
use super::lead::MAX_EXTRA_LEAD;
use chrono::{DateTime, SubsecRound, Utc};

use crate::job::{ErrorKind, RetryPolicy};
use crate::schedule::Schedule;
use crate::store::RunStatus;

/// The slot after the fire due at `nominal`, on a fixed rate (counted from the slot, not
/// from `now`). If that slot has already passed too — the process was busy or down —
/// the missed slots are not replayed: the next slot after `now` is returned instead.
pub fn next_fire(
    schedule: &Schedule,
    nominal: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let next = schedule.next_after(nominal)?;
    if next > now {
        return Some(next);
    }
    match schedule {
        // Stay on the interval's grid: the first slot `nominal + k × interval` after now.
        Schedule::Every(interval) => {
            let step = interval.as_chrono().num_microseconds()?.max(1);
            let behind = (now - nominal).num_microseconds()?;
            let slots = behind / step + 1;
            nominal.checked_add_signed(chrono::Duration::microseconds(step.checked_mul(slots)?))
        }
        Schedule::Cron(_) | Schedule::Upstream => schedule.next_after(now),
    }
}

/// Whether `stored` is still a sensible next fire for `schedule` at `now`: a real slot of
/// the schedule and no further away than one period. When the schedule was edited in the
/// settings file while the process was down, the stored time may be neither.
///
/// A fire is claimed up to `LOOKAHEAD` (300 ms), or a burst's longer lead (up to 600 ms in
/// all), before its slot, and its claim stores the slot after it, so the period is
/// counted from that far ahead: a leader taking over just after such a claim must keep
/// the grid, not start a new one.
pub fn stored_next_is_valid(
    schedule: &Schedule,
    stored: DateTime<Utc>,
    now: DateTime<Utc>,
) -> bool {
    let claimed_by = now + LOOKAHEAD + MAX_EXTRA_LEAD;
    match schedule {
        Schedule::Every(interval) => stored <= claimed_by + interval.as_chrono(),
        Schedule::Cron(_) => {
            let just_before = stored - chrono::Duration::microseconds(1);
            schedule.next_after(just_before) == Some(stored)
                && schedule
                    .next_after(claimed_by)
                    .is_some_and(|upcoming| stored <= upcoming)
        }
        // It has no slots: any stored time is stale.
        Schedule::Upstream => false,
    }
}

/// What became of a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureVerdict {
    pub status: RunStatus,
    pub retry_at: Option<DateTime<Utc>>,
}

/// Decides the status of attempt `attempt` that ended with `kind` at `now`, and when its
/// retry is due, if any. A rate limit's `retry_after` wins over the backoff when longer.
/// `own_status` is the status the attempt shows when it will be retried (e.g.
/// `TimedOut`, `Interrupted`, or `Retrying` for a plain failure). `unit` is a random
/// number in `[0, 1)` for jitter.
pub fn failure_verdict(
    policy: &RetryPolicy,
    attempt: u32,
    kind: ErrorKind,
    own_status: RunStatus,
    retry_after: Option<std::time::Duration>,
    now: DateTime<Utc>,
    unit: f64,
) -> FailureVerdict {
    if !kind.is_retryable() {
        let status = if own_status == RunStatus::Retrying {
            RunStatus::Failed
        } else {
            own_status
        };
        return FailureVerdict {
            status,
            retry_at: None,
        };
    }
    if !policy.allows_retry_after(attempt) {
        return FailureVerdict {
            status: RunStatus::Dead,
            retry_at: None,
        };
    }
    let mut delay = policy.delay(attempt, unit);
    if let Some(asked) = retry_after {
        delay = delay.max(asked);
    }
    let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
    // Cut to microseconds like every stored time: the retry's compare-and-swap matches
    // the in-memory value against the stored one.
    let retry_at = now.checked_add_signed(delay).map(|at| at.trunc_subsecs(6));
    FailureVerdict {
        status: own_status,
        retry_at,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::TimeZone;

    use super::*;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, h, m, s)
            .single()
            .expect("valid time")
    }

    fn every(text: &str) -> Schedule {
        Schedule::parse(Some(text), None, None).expect("valid interval")
    }

    #[test]
    fn the_next_fire_is_counted_from_the_slot_not_from_now() {
        // Fired 400 ms late: the next slot is still a whole minute after the last slot.
        let now = at(10, 0, 0) + chrono::Duration::milliseconds(400);
        assert_eq!(
            next_fire(&every("1m"), at(10, 0, 0), now),
            Some(at(10, 1, 0))
        );
    }

    #[test]
    fn missed_slots_are_not_replayed_and_the_grid_is_kept() {
        let one_minute = every("1m");
        assert_eq!(
            next_fire(&one_minute, at(10, 0, 0), at(10, 7, 30)),
            Some(at(10, 8, 0))
        );
        // Exactly on a slot: that slot is now, so the next one is a minute later.
        assert_eq!(
            next_fire(&one_minute, at(10, 0, 0), at(10, 7, 0)),
            Some(at(10, 8, 0))
        );
    }

    #[test]
    fn a_stored_fire_further_away_than_one_period_is_invalid() {
        assert!(stored_next_is_valid(
            &every("1m"),
            at(10, 0, 30),
            at(10, 0, 0)
        ));
        assert!(!stored_next_is_valid(
            &every("1m"),
            at(11, 0, 0),
            at(10, 0, 0)
        ));
        let daily = Schedule::parse(None, Some("0 3 * * *"), None).expect("valid cron");
        assert!(stored_next_is_valid(&daily, at(3, 0, 0), at(2, 0, 0)));
        assert!(!stored_next_is_valid(&daily, at(4, 0, 0), at(2, 0, 0)));
    }

    #[test]
    fn the_slot_stored_by_a_claim_made_ahead_of_its_fire_is_still_valid() {
        // The 10:01 fire was claimed at 10:00:59.8 and stored 10:02 as the next one.
        let claimed = at(10, 1, 0) - chrono::Duration::milliseconds(200);
        assert!(stored_next_is_valid(&every("1m"), at(10, 2, 0), claimed));
        let hourly = Schedule::parse(None, Some("0 * * * *"), None).expect("valid cron");
        let claimed = at(3, 0, 0) - chrono::Duration::milliseconds(200);
        assert!(stored_next_is_valid(&hourly, at(4, 0, 0), claimed));
        assert!(!stored_next_is_valid(&hourly, at(5, 0, 0), claimed));
    }

    #[test]
    fn retries_back_off_then_die() {
        let policy = RetryPolicy {
            max_attempts: 3,
            backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(60),
            jitter: false,
        };
        let now = at(10, 0, 0);
        let first = failure_verdict(
            &policy,
            1,
            ErrorKind::Retryable,
            RunStatus::Retrying,
            None,
            now,
            0.0,
        );
        assert_eq!(
            first,
            FailureVerdict {
                status: RunStatus::Retrying,
                retry_at: Some(at(10, 0, 10))
            }
        );
        let second = failure_verdict(
            &policy,
            2,
            ErrorKind::Timeout,
            RunStatus::TimedOut,
            None,
            now,
            0.0,
        );
        assert_eq!(
            second,
            FailureVerdict {
                status: RunStatus::TimedOut,
                retry_at: Some(at(10, 0, 20))
            }
        );
        let last = failure_verdict(
            &policy,
            3,
            ErrorKind::Retryable,
            RunStatus::Retrying,
            None,
            now,
            0.0,
        );
        assert_eq!(
            last,
            FailureVerdict {
                status: RunStatus::Dead,
                retry_at: None
            }
        );
    }

    #[test]
    fn a_rate_limit_waits_at_least_as_long_as_asked() {
        let policy = RetryPolicy {
            jitter: false,
            ..RetryPolicy::default()
        };
        let now = at(10, 0, 0);
        let asked = Some(Duration::from_secs(120));
        let verdict = failure_verdict(
            &policy,
            1,
            ErrorKind::RateLimited,
            RunStatus::Retrying,
            asked,
            now,
            0.0,
        );
        assert_eq!(verdict.retry_at, Some(at(10, 2, 0)));
    }

    #[test]
    fn fatal_failures_are_not_retried() {
        let policy = RetryPolicy::default();
        let verdict = failure_verdict(
            &policy,
            1,
            ErrorKind::Fatal,
            RunStatus::Retrying,
            None,
            at(10, 0, 0),
            0.0,
        );
        assert_eq!(
            verdict,
            FailureVerdict {
                status: RunStatus::Failed,
                retry_at: None
            }
        );
    }
}
