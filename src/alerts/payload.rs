//! What an alert says: one JSON document per delivery, with a `text` field that Slack-
//! and Mattermost-compatible incoming webhooks show as it is.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Url;
use serde_json::{Value, json};

use super::AlertEvent;
use crate::schedule::format_duration;
use crate::store::RunRecord;

/// An alert about to be delivered, before the run it is about is read.
#[derive(Debug, Clone)]
pub(crate) struct Alert {
    pub event: AlertEvent,
    pub job: Option<String>,
    pub run_id: Option<i64>,
    pub at: DateTime<Utc>,
    pub detail: Detail,
}

/// What only some events carry.
#[derive(Debug, Clone)]
pub(crate) enum Detail {
    None,
    /// `late`: the last success (or when the job appeared) and the window.
    Late {
        since: DateTime<Utc>,
        within: Duration,
    },
    /// `slow`: the run's start and the limit it passed.
    Slow {
        under: Duration,
    },
    /// `test`: who asked.
    Test {
        target: String,
        by: String,
    },
}

/// The longest error excerpt in `text`; the whole message is in `error`.
const TEXT_ERROR_CHARS: usize = 300;

impl Alert {
    /// The payload; `run` is the run it is about, as stored (its error message was masked
    /// when it was stored).
    pub(crate) fn payload(&self, run: Option<&RunRecord>, public_url: Option<&Url>) -> Value {
        let link = self.run_id.map(|id| run_link(id, public_url));
        let text = self.text(run, link.as_deref());
        json!({
            "event": self.event.as_str(),
            "job": self.job,
            "run_id": self.run_id,
            "status": run.map(|run| run.status.as_str()),
            "attempt": run.map(|run| run.attempt),
            "trigger": run.map(|run| run.trigger.as_str()),
            "error": run.and_then(|run| run.error_message.as_deref()),
            "scheduled_for": run.map(|run| time(run.scheduled_for)),
            "started_at": run.and_then(|run| run.started_at).map(time),
            "finished_at": run.and_then(|run| run.finished_at).map(time),
            "at": time(self.at),
            "url": link,
            "text": text,
        })
    }

    fn text(&self, run: Option<&RunRecord>, link: Option<&str>) -> String {
        let job = self.job.as_deref().unwrap_or("?");
        let error = run
            .and_then(|run| run.error_message.as_deref())
            .map(|message| format!(": {}", excerpt(message)))
            .unwrap_or_default();
        let mut text = match (&self.detail, self.event) {
            (Detail::Test { target, by }, _) => {
                format!("Batchboard: a test alert to target {target}, sent by {by}.")
            }
            (Detail::Late { since, within }, _) => format!(
                "Batchboard: job {job} is late: no successful run since {} (expected within {}).",
                time(*since),
                format_duration(*within)
            ),
            (Detail::Slow { under }, _) => format!(
                "Batchboard: job {job} has been running for more than {} (expected under {}).",
                format_duration(*under),
                format_duration(*under)
            ),
            (_, AlertEvent::Dead) => format!(
                "Batchboard: job {job} is dead after {} attempt(s){error}",
                run.map_or(1, |run| run.attempt)
            ),
            (_, AlertEvent::Failed) => format!(
                "Batchboard: job {job} failed (attempt {}, {}){error}",
                run.map_or(1, |run| run.attempt),
                run.map_or("failed", |run| run.status.as_str())
            ),
            (_, AlertEvent::Recovered) => {
                format!("Batchboard: job {job} recovered: a run succeeded.")
            }
            (_, event) => format!("Batchboard: job {job}: {event}."),
        };
        if let Some(link) = link {
            text.push(' ');
            text.push_str(link);
        }
        text
    }
}

/// The run page's address: absolute under `[web] public_url`, else the path alone.
fn run_link(run_id: i64, public_url: Option<&Url>) -> String {
    let path = format!("runs/{run_id}");
    match public_url {
        // `join` keeps a path prefix (`https://host/batchboard/`) when it ends in '/'.
        Some(base) => {
            let mut base = base.clone();
            if !base.path().ends_with('/') {
                let with_slash = format!("{}/", base.path());
                base.set_path(&with_slash);
            }
            base.join(&path)
                .map_or_else(|_| format!("/{path}"), String::from)
        }
        None => format!("/{path}"),
    }
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn excerpt(message: &str) -> String {
    let mut chars = message.chars();
    let mut excerpt: String = chars.by_ref().take(TEXT_ERROR_CHARS).collect();
    if chars.next().is_some() {
        excerpt.push('…');
    }
    excerpt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_absolute_under_the_public_url_and_keep_its_path() {
        let base: Url = "https://ops.example.com/batchboard".parse().expect("a URL");
        assert_eq!(
            run_link(42, Some(&base)),
            "https://ops.example.com/batchboard/runs/42"
        );
        assert_eq!(run_link(42, None), "/runs/42");
    }

    #[test]
    fn the_text_names_the_job_the_attempts_and_the_link() {
        let alert = Alert {
            event: AlertEvent::Late,
            job: Some("nightly".into()),
            run_id: None,
            at: DateTime::from_timestamp(1_800_003_600, 0).expect("a time"),
            detail: Detail::Late {
                since: DateTime::from_timestamp(1_800_000_000, 0).expect("a time"),
                within: Duration::from_secs(1800),
            },
        };
        let payload = alert.payload(None, None);
        assert_eq!(payload["event"], "late");
        assert_eq!(payload["job"], "nightly");
        let text = payload["text"].as_str().expect("a text");
        assert!(text.contains("job nightly is late"), "{text}");
        assert!(text.contains("expected within 30m"), "{text}");
    }
}
