//! `[[alerts]]` and the alert settings of each job, checked against each other.
//!
//! ```toml
//! [[alerts]]
//! name = "ops"
//! url = "https://hooks.example.com/services/T000/B000"   # or kind = "log"
//! headers = { Authorization = "Bearer …" }
//! events = ["dead", "recovered", "late"]                  # the default
//! jobs = ["nightly-export"]                               # default: every job
//!
//! [[jobs]]
//! name = "nightly-export"
//! alerts = ["ops"]                 # also heard by these targets
//! expect_success_within = "26h"    # `late` when no run succeeded for that long
//! expect_duration_under = "30m"    # `slow` when a run goes on longer
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

use crate::alerts::{AlertEvent, AlertSettings, AlertTarget, Destination, JobExpectations};
use crate::job::JobSettings;
use crate::schedule::{format_duration, parse_duration};

/// One `[[alerts]]` entry as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAlert {
    name: Option<String>,
    url: Option<String>,
    kind: Option<String>,
    headers: Option<BTreeMap<String, String>>,
    events: Option<Vec<String>>,
    jobs: Option<Vec<String>>,
}

const MAX_TARGET_NAME: usize = 64;
const MAX_SUCCESS_WITHIN: Duration = Duration::from_secs(366 * 24 * 3600);
const MAX_DURATION_UNDER: Duration = Duration::from_secs(7 * 24 * 3600);

/// A problem found here: the job it belongs to (if any), the field, the message.
pub(super) type AlertProblem = (Option<String>, String, String);

/// Checks the targets and every job's alert settings; every problem is reported.
pub(super) fn alert_settings(
    raw: Vec<FileAlert>,
    jobs: &[JobSettings],
) -> (AlertSettings, Vec<AlertProblem>) {
    let mut problems: Vec<AlertProblem> = Vec::new();
    let job_names: BTreeSet<&str> = jobs.iter().map(|job| job.name.as_str()).collect();
    let mut targets: Vec<AlertTarget> = Vec::new();
    // Every name given, also of targets refused for another reason.
    let mut names: BTreeSet<String> = BTreeSet::new();
    for (index, alert) in raw.into_iter().enumerate() {
        let mut problem = |field: &str, message: String| {
            problems.push((None, format!("alerts[{index}].{field}"), message));
        };
        let name = alert
            .name
            .as_deref()
            .map(str::trim)
            .unwrap_or_default()
            .to_owned();
        if name.is_empty() {
            problem("name", "an alert target needs a name".to_owned());
        } else if name.chars().count() > MAX_TARGET_NAME
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            problem(
                "name",
                format!(
                    "{name:?} is not a target name: use up to {MAX_TARGET_NAME} letters, digits, '-', '_' or '.'"
                ),
            );
        } else if !names.insert(name.clone()) {
            problem(
                "name",
                format!("the name {name:?} is already used by another target"),
            );
        }
        let destination = destination(&alert, &mut problem);
        let events = match alert.events {
            None => AlertEvent::DEFAULT.to_vec(),
            Some(events) if events.is_empty() => {
                problem(
                    "events",
                    "list at least one event, or leave events out for dead, recovered and late"
                        .to_owned(),
                );
                Vec::new()
            }
            Some(events) => {
                let mut parsed: Vec<AlertEvent> = Vec::new();
                for text in events {
                    match AlertEvent::parse(text.trim()) {
                        Some(event) if !parsed.contains(&event) => parsed.push(event),
                        Some(_) => {}
                        None => problem(
                            "events",
                            format!(
                                "unknown event {text:?}: use dead, recovered, failed, late or slow"
                            ),
                        ),
                    }
                }
                parsed
            }
        };
        if let Some(listed) = &alert.jobs {
            for job in listed {
                if !job_names.contains(job.as_str()) {
                    problem("jobs", format!("there is no job named {job:?}"));
                }
            }
        }
        if let Some(destination) = destination {
            targets.push(AlertTarget {
                name,
                destination,
                events,
                jobs: alert.jobs,
            });
        }
    }
    let mut expectations = BTreeMap::new();
    for job in jobs {
        let mut problem = |field: &str, message: String| {
            problems.push((Some(job.name.clone()), field.to_owned(), message));
        };
        let alerts = job.alerts.clone().unwrap_or_default();
        for name in &alerts {
            if !targets.iter().any(|target| &target.name == name) {
                problem("alerts", format!("there is no alert target named {name:?}"));
            }
        }
        let mut bounded = |field: &str, text: &Option<String>, longest: Duration| {
            let text = text.as_deref()?;
            match parse_duration(text) {
                Ok(duration) if duration <= longest => Some(duration),
                Ok(_) => {
                    problem(
                        field,
                        format!("{text:?} is too long: at most {}", format_duration(longest)),
                    );
                    None
                }
                Err(error) => {
                    problem(field, error.to_string());
                    None
                }
            }
        };
        let success_within = bounded(
            "expect_success_within",
            &job.expect_success_within,
            MAX_SUCCESS_WITHIN,
        );
        let duration_under = bounded(
            "expect_duration_under",
            &job.expect_duration_under,
            MAX_DURATION_UNDER,
        );
        if !alerts.is_empty() || success_within.is_some() || duration_under.is_some() {
            expectations.insert(
                job.name.clone(),
                JobExpectations {
                    alerts,
                    success_within,
                    duration_under,
                },
            );
        }
    }
    (
        AlertSettings {
            targets,
            jobs: expectations,
        },
        problems,
    )
}

fn destination(alert: &FileAlert, problem: &mut impl FnMut(&str, String)) -> Option<Destination> {
    match (alert.kind.as_deref().map(str::trim), &alert.url) {
        (Some("log"), None) => {
            if alert.headers.is_some() {
                problem(
                    "headers",
                    "a log target sends no request: leave headers out".to_owned(),
                );
            }
            Some(Destination::Log)
        }
        (Some("log"), Some(_)) => {
            problem(
                "url",
                "a log target has no URL: write kind = \"log\" or a url, not both".to_owned(),
            );
            None
        }
        (Some(kind), _) if kind != "webhook" => {
            problem(
                "kind",
                format!("unknown kind {kind:?}: use webhook (with a url) or log"),
            );
            None
        }
        (_, None) => {
            problem(
                "url",
                "a webhook target needs a url (or write kind = \"log\")".to_owned(),
            );
            None
        }
        (_, Some(text)) => {
            // Never echo the URL: it is a secret.
            let url = match Url::parse(text.trim()) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
                    url
                }
                Ok(_) => {
                    problem(
                        "url",
                        "a webhook URL must start with http:// or https:// and name a host"
                            .to_owned(),
                    );
                    return None;
                }
                Err(error) => {
                    problem("url", format!("not a URL ({error})"));
                    return None;
                }
            };
            let mut headers = HeaderMap::new();
            for (name, value) in alert.headers.iter().flatten() {
                let Ok(header) = HeaderName::from_bytes(name.trim().as_bytes()) else {
                    problem("headers", format!("{name:?} is not a header name"));
                    continue;
                };
                match HeaderValue::from_str(value) {
                    Ok(mut value) => {
                        value.set_sensitive(true);
                        headers.insert(header, value);
                    }
                    Err(_) => problem(
                        "headers",
                        format!("the value of header {name:?} holds characters a header cannot"),
                    ),
                }
            }
            Some(Destination::Webhook { url, headers })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::alerts::{AlertEvent, Destination};
    use crate::config::{ConfigError, Settings};

    fn problems(text: &str) -> String {
        match Settings::from_toml(text, Path::new("batchboard.toml")) {
            Err(error @ ConfigError::Invalid(_)) => error.to_string(),
            other => panic!("expected invalid values, got {other:?}"),
        }
    }

    const JOBS: &str = r#"
[[jobs]]
name = "nightly-export"
handler = "command"
every = "1d"
"#;

    #[test]
    fn targets_and_job_expectations_are_read() {
        let text = format!(
            r#"
[web]
public_url = "https://batchboard.example.com"

[[alerts]]
name = "ops"
url = "https://hooks.example.com/services/T000/B000"
headers = {{ Authorization = "Bearer s3cret" }}
jobs = ["nightly-export"]

[[alerts]]
name = "journal"
kind = "log"
events = ["failed", "slow", "failed"]
{JOBS}
alerts = ["journal"]
expect_success_within = "26h"
expect_duration_under = "30m"
"#
        );
        let settings = Settings::from_toml(&text, Path::new("batchboard.toml")).expect("valid");
        let alerts = &settings.alerts;
        assert_eq!(alerts.targets.len(), 2);
        assert_eq!(alerts.targets[0].events, AlertEvent::DEFAULT);
        assert!(matches!(
            alerts.targets[0].destination,
            Destination::Webhook { .. }
        ));
        assert_eq!(
            alerts.targets[1].events,
            [AlertEvent::Failed, AlertEvent::Slow]
        );
        assert_eq!(alerts.targets[1].destination, Destination::Log);
        let expect = &alerts.jobs["nightly-export"];
        assert_eq!(
            expect.success_within,
            Some(std::time::Duration::from_secs(26 * 3600))
        );
        assert_eq!(
            expect.duration_under,
            Some(std::time::Duration::from_secs(1800))
        );
        assert_eq!(
            settings.web.public_url.clone().map(String::from).as_deref(),
            Some("https://batchboard.example.com/")
        );
        // The secrets stay out of every `Debug`.
        let debug = format!("{settings:?}");
        assert!(
            !debug.contains("B000") && !debug.contains("s3cret"),
            "{debug}"
        );
    }

    #[test]
    fn every_bad_alert_setting_is_reported_without_echoing_the_url() {
        let text = format!(
            r#"
[[alerts]]
name = "ops"
url = "ftp://hooks.example.com/T000/secret-path"

[[alerts]]
name = "ops"
kind = "log"
events = ["dead", "exploded"]
jobs = ["nowhere"]

[[alerts]]
kind = "pager"
{JOBS}
alerts = ["missing"]
expect_success_within = "soon"
expect_duration_under = "30d"
"#
        );
        let message = problems(&text);
        for expected in [
            "alerts[0].url: a webhook URL must start with http:// or https://",
            "alerts[1].name: the name \"ops\" is already used by another target",
            "alerts[1].events: unknown event \"exploded\"",
            "alerts[1].jobs: there is no job named \"nowhere\"",
            "alerts[2].name: an alert target needs a name",
            "alerts[2].kind: unknown kind \"pager\"",
            "job \"nightly-export\": alerts: there is no alert target named \"missing\"",
            "job \"nightly-export\": expect_success_within:",
            "job \"nightly-export\": expect_duration_under: \"30d\" is too long: at most 7d",
        ] {
            assert!(message.contains(expected), "{expected:?} in:\n{message}");
        }
        assert!(!message.contains("secret-path"), "{message}");
    }
}
