//! A job's state in one word, decided in one place for the console, the API and the CLI.

use std::collections::HashMap;

use super::{JobRecord, RunRecord, RunStatus};

/// What a job is doing, as people are shown it. The variants are in the order they are
/// decided: the first that holds wins, so a removed job never shows as running, and a
/// job whose last run died shows as needing attention even while paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Gone from the settings file; its history stays.
    Removed,
    /// A run of it is going; `queued` while that run waits for a free slot.
    Running {
        queued: bool,
    },
    /// Its latest run is dead (retries exhausted).
    NeedsAttention,
    Paused,
    /// Its settings say `enabled = false`.
    Disabled,
    Enabled,
}

impl JobState {
    /// The state of `job`, given the status of its latest run and of a run of it that is
    /// going (queued or running), if any.
    pub fn of(job: &JobRecord, latest: Option<RunStatus>, going: Option<RunStatus>) -> Self {
        // Unreadable overrides count as enabled rather than hiding the job among the
        // disabled ones; the job page names the unreadable settings.
        let enabled = job
            .effective_settings()
            .map(|settings| settings.enabled.unwrap_or(true))
            .unwrap_or(true);
        if job.removed_at.is_some() {
            Self::Removed
        } else if let Some(status) = going {
            Self::Running {
                queued: status == RunStatus::Queued,
            }
        } else if latest == Some(RunStatus::Dead) {
            Self::NeedsAttention
        } else if job.paused {
            Self::Paused
        } else if !enabled {
            Self::Disabled
        } else {
            Self::Enabled
        }
    }

    /// The state of `job` when only its latest run is known: that run is the going one
    /// while it has not ended.
    pub fn from_latest(job: &JobRecord, latest: Option<&RunRecord>) -> Self {
        Self::from_latest_status(job, latest.map(|run| run.status))
    }

    /// [`from_latest`](Self::from_latest) given only the latest run's status.
    pub fn from_latest_status(job: &JobRecord, latest: Option<RunStatus>) -> Self {
        Self::of(job, latest, latest.filter(|status| !status.is_final()))
    }

    /// The word the API answers, the CLI prints and the dashboard filters by. A queued
    /// job is filtered and listed with the running ones.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Removed => "removed",
            Self::Running { .. } => "running",
            Self::NeedsAttention => "attention",
            Self::Paused => "paused",
            Self::Disabled => "disabled",
            Self::Enabled => "enabled",
        }
    }
}

/// The runs that decide many jobs' states, gathered once: each job's latest run and the
/// runs that are going.
pub struct JobRuns<'a> {
    latest: &'a HashMap<i64, RunRecord>,
    going: HashMap<i64, &'a RunRecord>,
}

impl<'a> JobRuns<'a> {
    /// `latest` by job id; `going` as the store lists them (queued or running).
    pub fn new(latest: &'a HashMap<i64, RunRecord>, going: &'a [RunRecord]) -> Self {
        Self {
            latest,
            going: going.iter().map(|run| (run.job_id, run)).collect(),
        }
    }

    /// The job's run that is going (queued or running), if any.
    pub fn going(&self, job_id: i64) -> Option<&'a RunRecord> {
        self.going.get(&job_id).copied()
    }

    /// The job's latest run.
    pub fn latest(&self, job_id: i64) -> Option<&'a RunRecord> {
        self.latest.get(&job_id)
    }

    /// Whether the job's latest run is dead (retries exhausted).
    pub fn needs_attention(&self, job_id: i64) -> bool {
        self.latest(job_id)
            .is_some_and(|run| run.status == RunStatus::Dead)
    }

    /// The job's state.
    pub fn state(&self, job: &JobRecord) -> JobState {
        JobState::of(
            job,
            self.latest(job.id).map(|run| run.status),
            self.going(job.id).map(|run| run.status),
        )
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::job::JobSettings;

    fn job(removed: bool, paused: bool, enabled: Option<bool>) -> JobRecord {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        JobRecord {
            id: 1,
            name: "sync".into(),
            defaults: JobSettings {
                name: "sync".into(),
                handler: "command".into(),
                every: Some("1h".into()),
                enabled,
                ..JobSettings::default()
            },
            overrides: serde_json::Map::new(),
            paused,
            removed_at: removed.then_some(now),
            next_run_at: None,
            version: 1,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn the_first_state_that_holds_wins_in_the_ladders_order() {
        use RunStatus::{Dead, Queued, Running, Succeeded};
        let running = JobState::Running { queued: false };
        let queued = JobState::Running { queued: true };
        // (removed, paused, enabled, latest, going) → state
        let cases = [
            (
                (true, false, None, Some(Running), Some(Running)),
                JobState::Removed,
            ),
            (
                (true, true, Some(false), Some(Dead), None),
                JobState::Removed,
            ),
            ((false, true, None, Some(Dead), Some(Running)), running),
            ((false, false, None, Some(Queued), Some(Queued)), queued),
            (
                (false, true, Some(false), Some(Dead), None),
                JobState::NeedsAttention,
            ),
            (
                (false, true, Some(false), Some(Succeeded), None),
                JobState::Paused,
            ),
            ((false, false, Some(false), None, None), JobState::Disabled),
            (
                (false, false, Some(false), Some(Succeeded), None),
                JobState::Disabled,
            ),
            (
                (false, false, Some(true), Some(Succeeded), None),
                JobState::Enabled,
            ),
            ((false, false, None, None, None), JobState::Enabled),
        ];
        for ((removed, paused, enabled, latest, going), expected) in cases {
            let record = job(removed, paused, enabled);
            assert_eq!(
                JobState::of(&record, latest, going),
                expected,
                "removed {removed}, paused {paused}, enabled {enabled:?}, latest {latest:?}, going {going:?}"
            );
        }
    }

    #[test]
    fn a_queued_job_is_filtered_and_answered_as_running() {
        assert_eq!(JobState::Running { queued: true }.as_str(), "running");
        assert_eq!(JobState::Running { queued: false }.as_str(), "running");
        assert_eq!(JobState::NeedsAttention.as_str(), "attention");
    }

    #[test]
    fn an_overridden_enabled_flag_decides_between_enabled_and_disabled() {
        let mut record = job(false, false, Some(true));
        record
            .overrides
            .insert("enabled".into(), serde_json::Value::Bool(false));
        assert_eq!(JobState::of(&record, None, None), JobState::Disabled);
    }

    #[test]
    fn unreadable_overrides_leave_the_job_shown_as_enabled() {
        let mut record = job(false, false, Some(false));
        record
            .overrides
            .insert("max_attempts".into(), serde_json::json!("many"));
        assert_eq!(JobState::of(&record, None, None), JobState::Enabled);
    }

    #[test]
    fn with_only_the_latest_run_known_an_unfinished_one_is_the_going_one() {
        let record = job(false, false, None);
        let now = DateTime::<Utc>::UNIX_EPOCH;
        let run = |status| RunRecord {
            id: 7,
            job_id: 1,
            job_name: "sync".into(),
            trigger: crate::store::Trigger::Schedule,
            attempt: 1,
            first_run_id: None,
            status,
            scheduled_for: now,
            started_at: None,
            finished_at: None,
            duration_ms: None,
            items_checked: 0,
            items_updated: 0,
            items_total: None,
            error_kind: None,
            error_message: None,
            summary: None,
            instance_id: "test".into(),
            retry_at: None,
        };
        let state = |status| JobState::from_latest(&record, Some(&run(status)));
        assert_eq!(state(RunStatus::Queued), JobState::Running { queued: true });
        assert_eq!(
            state(RunStatus::Running),
            JobState::Running { queued: false }
        );
        assert_eq!(state(RunStatus::Dead), JobState::NeedsAttention);
        assert_eq!(state(RunStatus::Succeeded), JobState::Enabled);
        assert_eq!(JobState::from_latest(&record, None), JobState::Enabled);
    }
}
