//! A job's settings: [`JobSettings`] is the raw form written in `batchboard.toml` and
//! stored as JSON; [`JobSpec`] is the validated form the scheduler runs.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::JobName;
use crate::schedule::{Schedule, format_duration, parse_duration};

/// A job as written in the settings file (and stored in the database): every value is
/// still text to be checked. Turn it into a [`JobSpec`] with [`JobSpec::from_settings`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSettings {
    pub name: String,
    pub handler: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Up to this much random delay is added to each fire, to spread load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backoff: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub misfire: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<serde_json::Value>,
    /// Jobs that must all have succeeded since this job last started for it to run
    /// again (fan-in).
    #[serde(default, skip_serializing_if = "no_names")]
    pub after: Option<Vec<String>>,
    /// Jobs whose runs, ending for good without success, make this job run (a failure
    /// branch: clean-ups, fallbacks).
    #[serde(default, skip_serializing_if = "no_names")]
    pub after_failure: Option<Vec<String>>,
    /// Alert targets that hear of this job besides those that list it (see
    /// [`crate::alerts`]).
    #[serde(default, skip_serializing_if = "no_names")]
    pub alerts: Option<Vec<String>>,
    /// A `late` alert goes out when no run succeeded for this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_success_within: Option<String>,
    /// A `slow` alert goes out when a run is still going after this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_duration_under: Option<String>,
}

/// An empty list of upstream jobs says the same as none, and is stored and compared so.
#[allow(clippy::ref_option)] // serde hands `skip_serializing_if` the field by reference
fn no_names(names: &Option<Vec<String>>) -> bool {
    names.as_ref().is_none_or(Vec::is_empty)
}

/// A job's validated settings.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    pub name: JobName,
    pub handler: String,
    pub description: String,
    pub schedule: Schedule,
    pub jitter: Duration,
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub concurrency: ConcurrencyPolicy,
    pub misfire: MisfirePolicy,
    pub enabled: bool,
    pub params: serde_json::Value,
    /// Upstream jobs that must all succeed before this one runs (see [`JobSettings::after`]).
    pub after: Vec<JobName>,
    /// Upstream jobs whose final failures run this one.
    pub after_failure: Vec<JobName>,
}

/// What happens when a fire finds the job's previous run still going.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConcurrencyPolicy {
    /// The fire is recorded as skipped, with the reason.
    #[default]
    Forbid,
    /// Runs may overlap.
    Allow,
    /// The running run is cancelled and the new one starts.
    Replace,
}

/// What a job does about fires it missed while the process was down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MisfirePolicy {
    /// Run once at start-up, then carry on with the schedule.
    #[default]
    RunOnce,
    /// Wait for the next slot.
    Skip,
}

/// How failed runs are retried: attempt `n` (counting the first run as 1) is followed,
/// if it failed retryably and `n < max_attempts`, by a retry after
/// `min(backoff × 2^(n−1), max_backoff)`, less up to a fifth of it at random when
/// `jitter` is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff: Duration::from_secs(30),
            max_backoff: Duration::from_secs(3600),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// The delay before the attempt after `attempt`, before jitter.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(32);
        self.backoff
            .checked_mul(1u32 << doublings.min(31))
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }

    /// The delay before the attempt after `attempt`, with jitter drawn from `unit`, a
    /// number in `[0, 1)` (so callers choose the randomness and tests can fix it).
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let base = self.base_delay(attempt);
        if self.jitter {
            // Jitter only shortens the delay, so `max_backoff` stays a true upper bound.
            base.mul_f64(1.0 - 0.2 * unit.clamp(0.0, 1.0))
        } else {
            base
        }
    }

    /// Whether another attempt may follow `attempt`.
    pub fn allows_retry_after(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }
}

/// The bad fields of a job's settings, each with a sentence saying what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SettingsError {
    /// Field name → message, in field order.
    pub fields: BTreeMap<&'static str, String>,
}

impl SettingsError {
    fn add(&mut self, field: &'static str, message: impl Into<String>) {
        self.fields.entry(field).or_insert_with(|| message.into());
    }
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (field, message)) in self.fields.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{field}: {message}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SettingsError {}

const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
const MAX_JITTER: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);

impl JobSpec {
    /// Validates `settings`; every bad field is reported, not only the first.
    ///
    /// # Errors
    /// A [`SettingsError`] naming each bad field.
    pub fn from_settings(settings: &JobSettings) -> Result<Self, SettingsError> {
        let mut errors = SettingsError::default();
        let name = settings
            .name
            .parse::<JobName>()
            .map_err(|e| errors.add("name", e.to_string()))
            .ok();
        if settings.handler.trim().is_empty() {
            errors.add("handler", "a job needs a handler");
        }
        let after = upstream_names(
            &mut errors,
            "after",
            settings.after.as_deref(),
            name.as_ref(),
        );
        let after_failure = upstream_names(
            &mut errors,
            "after_failure",
            settings.after_failure.as_deref(),
            name.as_ref(),
        );
        let has_upstream = !after.is_empty() || !after_failure.is_empty();
        let schedule = match (&settings.every, &settings.cron, &settings.timezone) {
            // Upstream jobs alone are then its schedule.
            (None, None, None) if has_upstream => Some(Schedule::Upstream),
            _ => Schedule::parse(
                settings.every.as_deref(),
                settings.cron.as_deref(),
                settings.timezone.as_deref(),
            )
            .map_err(|e| errors.add(e.field, e.message))
            .ok(),
        };
        let mut duration =
            |field: &'static str, value: &Option<String>, default: Duration, max: Duration| {
                let Some(text) = value else { return default };
                match parse_duration(text) {
                    Ok(d) if d > max => {
                        errors.add(
                            field,
                            format!("{field} can be at most {}", format_duration(max)),
                        );
                        default
                    }
                    Ok(d) => d,
                    Err(e) => {
                        errors.add(field, e.to_string());
                        default
                    }
                }
            };
        let jitter = duration("jitter", &settings.jitter, Duration::ZERO, MAX_JITTER);
        let timeout = duration("timeout", &settings.timeout, DEFAULT_TIMEOUT, MAX_TIMEOUT);
        let defaults = RetryPolicy::default();
        let backoff = duration("backoff", &settings.backoff, defaults.backoff, MAX_TIMEOUT);
        let max_backoff = duration(
            "max_backoff",
            &settings.max_backoff,
            defaults.max_backoff.max(backoff),
            MAX_TIMEOUT,
        );
        if max_backoff < backoff {
            errors.add("max_backoff", "max_backoff cannot be shorter than backoff");
        }
        if let Some(Schedule::Every(interval)) = &schedule
            && !jitter.is_zero()
            && jitter >= interval.as_std()
        {
            errors.add(
                "jitter",
                format!("jitter must be shorter than the interval ({interval})"),
            );
        }
        let max_attempts = settings.max_attempts.unwrap_or(defaults.max_attempts);
        if !(1..=100).contains(&max_attempts) {
            errors.add("max_attempts", "max_attempts must be between 1 and 100");
        }
        let concurrency = match settings.concurrency.as_deref() {
            None | Some("forbid") => ConcurrencyPolicy::Forbid,
            Some("allow") => ConcurrencyPolicy::Allow,
            Some("replace") => ConcurrencyPolicy::Replace,
            Some(other) => {
                errors.add(
                    "concurrency",
                    format!("unknown concurrency policy {other:?}: use forbid, allow or replace"),
                );
                ConcurrencyPolicy::Forbid
            }
        };
        let misfire = match settings.misfire.as_deref() {
            None | Some("run_once") => MisfirePolicy::RunOnce,
            Some("skip") => MisfirePolicy::Skip,
            Some(other) => {
                errors.add(
                    "misfire",
                    format!("unknown misfire policy {other:?}: use run_once or skip"),
                );
                MisfirePolicy::RunOnce
            }
        };
        let description = settings.description.clone().unwrap_or_default();
        if description.len() > 1000 {
            errors.add(
                "description",
                "a description can be at most 1000 characters",
            );
        }
        match (name, schedule) {
            (Some(name), Some(schedule)) if errors.fields.is_empty() => Ok(JobSpec {
                name,
                handler: settings.handler.trim().to_owned(),
                description,
                schedule,
                jitter,
                timeout,
                retry: RetryPolicy {
                    max_attempts,
                    backoff,
                    max_backoff,
                    jitter: true,
                },
                concurrency,
                misfire,
                enabled: settings.enabled.unwrap_or(true),
                params: settings
                    .params
                    .clone()
                    .unwrap_or_else(|| serde_json::Value::Object(Default::default())),
                after,
                after_failure,
            }),
            _ => Err(errors),
        }
    }
}

/// The most upstream jobs one list may name.
const MAX_UPSTREAM: usize = 50;

/// Parses one list of upstream job names (`after` or `after_failure`): valid names, no
/// repeats, not the job itself. Whether they exist is checked across jobs
/// ([`crate::job::chain`]).
fn upstream_names(
    errors: &mut SettingsError,
    field: &'static str,
    names: Option<&[String]>,
    own: Option<&JobName>,
) -> Vec<JobName> {
    let names = names.unwrap_or_default();
    if names.len() > MAX_UPSTREAM {
        errors.add(
            field,
            format!("{field} can name at most {MAX_UPSTREAM} jobs"),
        );
        return Vec::new();
    }
    let mut parsed: Vec<JobName> = Vec::with_capacity(names.len());
    for text in names {
        match text.parse::<JobName>() {
            Err(error) => errors.add(field, format!("{text:?} is not a job name: {error}")),
            Ok(name) if Some(&name) == own => {
                errors.add(field, format!("a job cannot run after itself ({text:?})"));
            }
            Ok(name) if parsed.contains(&name) => {
                errors.add(field, format!("{text:?} is named twice"));
            }
            Ok(name) => parsed.push(name),
        }
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> JobSettings {
        JobSettings {
            name: "inventory-sync".into(),
            handler: "demo_inventory".into(),
            every: Some("5m".into()),
            ..JobSettings::default()
        }
    }

    #[test]
    fn defaults_fill_what_the_file_leaves_out() {
        let spec = JobSpec::from_settings(&settings()).expect("valid");
        assert_eq!(spec.concurrency, ConcurrencyPolicy::Forbid);
        assert_eq!(spec.misfire, MisfirePolicy::RunOnce);
        assert_eq!(spec.retry.max_attempts, 3);
        assert_eq!(spec.timeout, DEFAULT_TIMEOUT);
        assert!(spec.enabled);
    }

    #[test]
    fn every_bad_field_is_named() {
        let bad = JobSettings {
            name: "Bad Name".into(),
            concurrency: Some("sometimes".into()),
            max_attempts: Some(0),
            ..settings()
        };
        let error = JobSpec::from_settings(&bad).expect_err("invalid");
        assert!(error.fields.contains_key("name"));
        assert!(error.fields["concurrency"].contains("forbid, allow or replace"));
        assert!(error.fields.contains_key("max_attempts"));
    }

    #[test]
    fn jitter_must_be_shorter_than_the_interval() {
        let jittery = JobSettings {
            jitter: Some("5m".into()),
            ..settings()
        };
        let error = JobSpec::from_settings(&jittery).expect_err("invalid");
        assert_eq!(
            error.fields["jitter"],
            "jitter must be shorter than the interval (5m)"
        );
        let fine = JobSettings {
            jitter: Some("4m".into()),
            ..settings()
        };
        assert!(JobSpec::from_settings(&fine).is_ok());
    }

    #[test]
    fn retry_delay_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 10,
            backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(60),
            jitter: false,
        };
        let delays: Vec<u64> = (1..=5).map(|n| policy.delay(n, 0.5).as_secs()).collect();
        assert_eq!(delays, [10, 20, 40, 60, 60]);
        assert!(policy.allows_retry_after(9));
        assert!(!policy.allows_retry_after(10));
    }

    #[test]
    fn jitter_only_shortens_the_delay_by_at_most_a_fifth() {
        let policy = RetryPolicy {
            jitter: true,
            ..RetryPolicy::default()
        };
        assert_eq!(policy.delay(1, 0.0), Duration::from_secs(30));
        assert_eq!(policy.delay(1, 1.0), Duration::from_secs(24));
    }
}
