//! How far ahead of its start a fire is claimed. [`LOOKAHEAD`] covers a claim on a
//! quiet database; a burst of thousands of fires at one instant takes longer (each
//! transaction commits a thousand claims, one after the other, and on PostgreSQL every
//! instance claims its share of them after that). The lead grows to what claims were
//! seen to take, plus a margin, so that the next burst is claimed before its start,
//! and shrinks back slowly once they are quick again.

use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::due_queue::LOOKAHEAD;

/// The most a fire is claimed before its start beyond [`LOOKAHEAD`]. A longer lead
/// feeds on itself: a burst claimed while the previous one's runs still end (jobs due
/// every second) finds their jobs busy and contends with their writes, so its claims take
/// longer still and ask for more lead.
pub(crate) const MAX_EXTRA_LEAD: chrono::Duration = chrono::Duration::milliseconds(300);

/// Time left between a fire's claim and its start, for the instances that claim the
/// runs queued by the leader and for the next burst being a little larger.
const MARGIN: chrono::Duration = chrono::Duration::milliseconds(100);

/// How fast the extra lead shrinks once claims are quick: per second, in microseconds.
const SHRINK_MICROS_PER_SECOND: i64 = 20_000;

#[derive(Debug, Default)]
pub(crate) struct Lead {
    /// The extra lead last raised to, and when.
    raised: Mutex<Option<(chrono::Duration, DateTime<Utc>)>>,
}

impl Lead {
    /// A fire's claim, sent ahead of its start, took `took` to commit, ending at `now`.
    pub(crate) fn claim_took(&self, took: chrono::Duration, now: DateTime<Utc>) {
        let needed = (took + MARGIN - LOOKAHEAD).min(MAX_EXTRA_LEAD);
        if needed <= chrono::Duration::zero() {
            return; // the usual case, without a lock
        }
        let Ok(mut raised) = self.raised.lock() else {
            return;
        };
        if needed > extra_at(*raised, now) {
            *raised = Some((needed, now));
        }
    }

    /// How much earlier than [`LOOKAHEAD`] before its start a fire is claimed at `now`.
    pub(crate) fn extra(&self, now: DateTime<Utc>) -> chrono::Duration {
        self.raised
            .lock()
            .map_or(chrono::Duration::zero(), |raised| extra_at(*raised, now))
    }
}

fn extra_at(
    raised: Option<(chrono::Duration, DateTime<Utc>)>,
    now: DateTime<Utc>,
) -> chrono::Duration {
    let Some((extra, at)) = raised else {
        return chrono::Duration::zero();
    };
    let since = (now - at).max(chrono::Duration::zero());
    let shrunk = chrono::Duration::microseconds(
        since
            .num_milliseconds()
            .saturating_mul(SHRINK_MICROS_PER_SECOND)
            / 1000,
    );
    (extra - shrunk).max(chrono::Duration::zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: i64) -> chrono::Duration {
        chrono::Duration::milliseconds(n)
    }

    fn at(millis: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + ms(1_000_000 + millis)
    }

    #[test]
    fn quick_claims_keep_the_plain_look_ahead() {
        let lead = Lead::default();
        lead.claim_took(ms(40), at(0));
        lead.claim_took(ms(200), at(1));
        assert_eq!(lead.extra(at(2)), chrono::Duration::zero());
    }

    #[test]
    fn a_slow_burst_raises_the_lead_to_what_its_slowest_claim_needed() {
        let lead = Lead::default();
        // A burst whose claims commit over 450 ms: the last needed 450 + 100 ms.
        for took in [30, 150, 450, 300] {
            lead.claim_took(ms(took), at(took));
        }
        assert_eq!(lead.extra(at(450)), ms(250));
        // The same burst a second later keeps it there, rather than adding to it.
        lead.claim_took(ms(450), at(1_450));
        assert_eq!(lead.extra(at(1_450)), ms(250));
    }

    #[test]
    fn the_lead_shrinks_slowly_once_claims_are_quick_and_is_bounded() {
        let lead = Lead::default();
        lead.claim_took(ms(5_000), at(0));
        assert_eq!(lead.extra(at(0)), MAX_EXTRA_LEAD);
        assert_eq!(lead.extra(at(10_000)), MAX_EXTRA_LEAD - ms(200));
        assert_eq!(lead.extra(at(20_000)), chrono::Duration::zero());
        // A clock stepped back does not make it grow.
        assert_eq!(lead.extra(at(-5_000)), MAX_EXTRA_LEAD);
    }
}
