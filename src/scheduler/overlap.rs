//! What a new run does when the job's previous run is still going: the job's
//! concurrency policy applied to a scheduled fire, a retry, or a run-now alike. Pure and
//! on `Copy` data, since the scheduler asks it on every fire.

use crate::job::ConcurrencyPolicy;

/// What asks to start a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// A scheduled fire (or a catch-up fire) came due.
    Scheduled,
    /// A failed run's retry came due.
    Retry,
    /// An operator asked to run the job now.
    RunNow,
    /// The job's upstream jobs made it due (`after`, `after_failure`).
    Dependency,
}

/// What to do with the new run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Overlap {
    /// Start it; nothing stands in the way, or runs may overlap.
    Start,
    /// Stop the running run(s) and start it.
    ReplaceThenStart,
    /// Do not start it now; how depends on what asked.
    Hold(Hold),
}

/// How a new run waits out a run still going (`forbid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hold {
    /// A fire's slot passes: it is recorded as skipped and the schedule moves on.
    RecordSkipped,
    /// A retry is not lost: it waits and is queued again the moment the run ends.
    DeferUntilEnded,
    /// The operator is told the job is already running.
    Refuse,
    /// A run by dependency does not start; the job looks at its upstream jobs again
    /// when the run going ends.
    LookAgainWhenEnded,
}

/// Decides what a new run of a job with `policy` does, when `previous_running` says
/// whether a run of the job is still going.
pub(crate) fn decide(policy: ConcurrencyPolicy, start: Start, previous_running: bool) -> Overlap {
    if !previous_running {
        return Overlap::Start;
    }
    match policy {
        ConcurrencyPolicy::Allow => Overlap::Start,
        ConcurrencyPolicy::Replace => Overlap::ReplaceThenStart,
        ConcurrencyPolicy::Forbid => Overlap::Hold(match start {
            Start::Scheduled => Hold::RecordSkipped,
            Start::Retry => Hold::DeferUntilEnded,
            Start::RunNow => Hold::Refuse,
            Start::Dependency => Hold::LookAgainWhenEnded,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConcurrencyPolicy::{Allow, Forbid, Replace};

    const STARTS: [Start; 3] = [Start::Scheduled, Start::Retry, Start::RunNow];

    #[test]
    fn every_policy_decides_each_kind_of_start_while_a_run_is_going() {
        let table = [
            (Allow, Start::Scheduled, Overlap::Start),
            (Allow, Start::Retry, Overlap::Start),
            (Allow, Start::RunNow, Overlap::Start),
            (Replace, Start::Scheduled, Overlap::ReplaceThenStart),
            (Replace, Start::Retry, Overlap::ReplaceThenStart),
            (Replace, Start::RunNow, Overlap::ReplaceThenStart),
            (Forbid, Start::Scheduled, Overlap::Hold(Hold::RecordSkipped)),
            (Forbid, Start::Retry, Overlap::Hold(Hold::DeferUntilEnded)),
            (Forbid, Start::RunNow, Overlap::Hold(Hold::Refuse)),
        ];
        for (policy, start, expected) in table {
            assert_eq!(
                decide(policy, start, true),
                expected,
                "{policy:?} policy, {start:?} start, previous run going"
            );
        }
    }

    #[test]
    fn with_no_run_going_every_start_starts_under_every_policy() {
        for policy in [Allow, Replace, Forbid] {
            for start in STARTS {
                assert_eq!(
                    decide(policy, start, false),
                    Overlap::Start,
                    "{policy:?} policy, {start:?} start, nothing running"
                );
            }
        }
    }
}
