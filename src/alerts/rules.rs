//! What alerts are configured: the targets of `[[alerts]]`, each job's expectations, and
//! which targets hear of which event of which job.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::HeaderMap;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertEvent {
    /// A run failed on its last allowed attempt.
    Dead,
    /// The first success after a dead run or a `late` alert.
    Recovered,
    /// Any attempt that ended in failure, retried or not.
    Failed,
    /// No success for longer than the job's `expect_success_within`.
    Late,
    /// A run still going after the job's `expect_duration_under`.
    Slow,
    /// Sent by hand from the alerts page, to check a target.
    Test,
}

impl AlertEvent {
    /// The events a target hears of when its `events` are not given.
    pub const DEFAULT: [AlertEvent; 3] =
        [AlertEvent::Dead, AlertEvent::Recovered, AlertEvent::Late];

    /// The events a target may list.
    pub const CHOSEN: [AlertEvent; 5] = [
        AlertEvent::Dead,
        AlertEvent::Recovered,
        AlertEvent::Failed,
        AlertEvent::Late,
        AlertEvent::Slow,
    ];

    /// Its name in the settings file, the payload and the alerts page.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertEvent::Dead => "dead",
            AlertEvent::Recovered => "recovered",
            AlertEvent::Failed => "failed",
            AlertEvent::Late => "late",
            AlertEvent::Slow => "slow",
            AlertEvent::Test => "test",
        }
    }

    /// One of [`AlertEvent::CHOSEN`] by name.
    pub fn parse(text: &str) -> Option<AlertEvent> {
        Self::CHOSEN
            .into_iter()
            .find(|event| event.as_str() == text)
    }
}

impl fmt::Display for AlertEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a target's alerts go.
#[derive(Clone, PartialEq)]
pub enum Destination {
    /// A JSON `POST` to this URL with these headers; both are secrets (the URL of an
    /// incoming webhook is its password).
    Webhook { url: Url, headers: HeaderMap },
    /// The server's own log, at `info`, target `batchboard::alerts`.
    Log,
}

impl Destination {
    /// What the console may show of it: the scheme and host of a webhook, never its
    /// path, query, user or headers.
    pub fn shown(&self) -> String {
        match self {
            Destination::Webhook { url, .. } => match url.host_str() {
                Some(host) => format!("webhook to {}://{host}/…", url.scheme()),
                None => "webhook".to_owned(),
            },
            Destination::Log => "the server's log".to_owned(),
        }
    }
}

// The URL and headers are secrets: a `Debug` of the settings (a panic, a trace) must
// not print them.
impl fmt::Debug for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown())
    }
}

/// One `[[alerts]]` entry, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertTarget {
    pub name: String,
    pub destination: Destination,
    /// What it hears of ([`AlertEvent::DEFAULT`] unless given); never empty.
    pub events: Vec<AlertEvent>,
    /// The jobs it hears of; `None`: every job. A job's own `alerts` adds it too.
    pub jobs: Option<Vec<String>>,
}

/// What a job's settings say about alerts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobExpectations {
    /// Targets named by the job itself (`alerts = ["ops"]`).
    pub alerts: Vec<String>,
    /// `expect_success_within`: a dead man's switch.
    pub success_within: Option<Duration>,
    /// `expect_duration_under`: longer runs are `slow`.
    pub duration_under: Option<Duration>,
}

/// Every alert setting, checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertSettings {
    pub targets: Vec<AlertTarget>,
    /// By job name; jobs that say nothing of alerts are absent.
    pub jobs: BTreeMap<String, JobExpectations>,
}

impl AlertSettings {
    /// Whether there is nothing to watch: no target, and no job that can be overdue (the
    /// dashboard shows overdue jobs even when no target hears of it).
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
            && self
                .jobs
                .values()
                .all(|expect| expect.success_within.is_none())
    }

    /// The targets that hear of `event` for `job`.
    pub fn targets_for<'a>(
        &'a self,
        job: &'a str,
        event: AlertEvent,
    ) -> impl Iterator<Item = &'a AlertTarget> + 'a {
        let named_by_job = self.jobs.get(job).map(|expect| expect.alerts.as_slice());
        self.targets.iter().filter(move |target| {
            target.events.contains(&event)
                && (target
                    .jobs
                    .as_ref()
                    .is_none_or(|jobs| jobs.iter().any(|name| name == job))
                    || named_by_job.is_some_and(|names| names.contains(&target.name)))
        })
    }

    /// Whether any target hears of `event` for `job`.
    pub fn wanted(&self, job: &str, event: AlertEvent) -> bool {
        self.targets_for(job, event).next().is_some()
    }

    pub fn target(&self, name: &str) -> Option<&AlertTarget> {
        self.targets.iter().find(|target| target.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(name: &str, events: &[AlertEvent], jobs: Option<&[&str]>) -> AlertTarget {
        AlertTarget {
            name: name.into(),
            destination: Destination::Log,
            events: events.to_vec(),
            jobs: jobs.map(|jobs| jobs.iter().map(|&job| job.to_owned()).collect()),
        }
    }

    #[test]
    fn a_target_hears_its_events_of_its_jobs_and_of_jobs_that_name_it() {
        let mut settings = AlertSettings {
            targets: vec![
                target("all", &AlertEvent::DEFAULT, None),
                target("nightly", &[AlertEvent::Failed], Some(&["export"])),
            ],
            jobs: BTreeMap::new(),
        };
        settings.jobs.insert(
            "import".into(),
            JobExpectations {
                alerts: vec!["nightly".into()],
                ..JobExpectations::default()
            },
        );
        let names = |job: &'static str, event| {
            settings
                .targets_for(job, event)
                .map(|target| target.name.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(names("export", AlertEvent::Dead), ["all"]);
        assert_eq!(names("export", AlertEvent::Failed), ["nightly"]);
        assert_eq!(names("import", AlertEvent::Failed), ["nightly"]);
        assert!(names("other", AlertEvent::Failed).is_empty());
        assert!(names("other", AlertEvent::Slow).is_empty());
    }

    #[test]
    fn the_console_sees_a_webhook_by_its_host_only() {
        let destination = Destination::Webhook {
            url: "https://user:pw@hooks.example.com/services/T000/B000?token=abc"
                .parse()
                .expect("a URL"),
            headers: HeaderMap::new(),
        };
        assert_eq!(
            destination.shown(),
            "webhook to https://hooks.example.com/…"
        );
        let debug = format!("{destination:?}");
        assert!(!debug.contains("B000") && !debug.contains("abc") && !debug.contains("pw"));
    }
}
