//! What every page shares: the signed-in user and the CSRF token for the layout
//! (templates/base.html), and small view helpers for times, durations, statuses and URLs.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::store::{JobState, RunStatus};
use crate::web::auth::{CurrentUser, Role};
use crate::web::csrf::CsrfToken;

/// The layout's data; every page view embeds it as `chrome`.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub user: CurrentUser,
    pub csrf: String,
    /// The maintenance banner, while one is under way.
    pub banner: Option<std::sync::Arc<crate::web::banner::Banner>>,
}

impl Chrome {
    /// The chrome of a request by `user` holding `csrf`, with the request's banner.
    pub fn new(user: CurrentUser, csrf: CsrfToken) -> Self {
        Self {
            user,
            csrf: csrf.0,
            banner: crate::web::banner::current(),
        }
    }

    /// Whether the Users link is shown.
    pub fn is_admin(&self) -> bool {
        self.user.role >= Role::Admin
    }

    /// Whether operator controls are shown (the server checks again on every change).
    pub fn is_operator(&self) -> bool {
        self.user.role >= Role::Operator
    }
}

/// An instant ready for `<time datetime="{{ iso }}" title="{{ utc }} UTC">{{ utc }}</time>`;
/// static/app.js rewrites the text into the viewer's time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeView {
    /// RFC 3339 in UTC, for the `datetime` attribute.
    pub iso: String,
    /// Readable UTC text, shown without JavaScript and on hover.
    pub utc: String,
}

impl TimeView {
    pub fn new(time: DateTime<Utc>) -> Self {
        Self {
            iso: time.to_rfc3339_opts(SecondsFormat::Secs, true),
            utc: time.format("%Y-%m-%d %H:%M:%S").to_string(),
        }
    }
}

/// A run's status as a badge: the text always shows, the class adds colour and an icon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Badge {
    pub label: String,
    /// One of `ok`, `bad`, `warn`, `live`, `muted`: the CSS class suffix.
    pub tone: &'static str,
}

impl Badge {
    pub fn new(label: impl Into<String>, tone: &'static str) -> Self {
        Self {
            label: label.into(),
            tone,
        }
    }

    /// The badge of a job's state. A queued job is told apart from a running one here,
    /// though both are filtered as running.
    pub fn job_state(state: JobState) -> Self {
        match state {
            JobState::Removed => Self::new("removed", "muted"),
            JobState::Running { queued: true } => Self::new("queued", "muted"),
            JobState::Running { queued: false } => Self::new("running", "live"),
            JobState::NeedsAttention => Self::new("needs attention", "bad"),
            JobState::Paused => Self::new("paused", "warn"),
            JobState::Disabled => Self::new("disabled", "muted"),
            JobState::Enabled => Self::new("enabled", "ok"),
        }
    }

    /// The badge of a run status.
    pub fn status(status: RunStatus) -> Self {
        Self::new(status.as_str().replace('_', " "), status_tone(status))
    }
}

/// The tone of a run status (see [`Badge::tone`]).
pub fn status_tone(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Succeeded => "ok",
        RunStatus::Failed | RunStatus::Dead | RunStatus::TimedOut => "bad",
        RunStatus::Retrying | RunStatus::Interrupted => "warn",
        RunStatus::Running => "live",
        RunStatus::Queued | RunStatus::Cancelled | RunStatus::Skipped => "muted",
    }
}

/// A duration for people: "850 ms", "4.2 s", "3 min 4 s", "2 h 5 min".
pub fn format_ms(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000),
        _ => format!("{} h {} min", ms / 3_600_000, (ms % 3_600_000) / 60_000),
    }
}

/// Builds `?key=value&…` from the pairs with a value, percent-encoded; empty when none.
pub fn query_string(pairs: &[(&str, Option<&str>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(key, value)| {
            let value = value.filter(|v| !v.is_empty())?;
            Some(format!("{}={}", encode(key), encode(value)))
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Escapes text for XML (the server-drawn SVG charts).
pub fn escape_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An empty query value counts as absent (GET forms send every field).
pub fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_job_is_badged_queued_though_it_is_filtered_as_running() {
        let badge = |state| {
            let Badge { label, tone } = Badge::job_state(state);
            (label, tone)
        };
        assert_eq!(
            badge(JobState::Running { queued: true }),
            ("queued".into(), "muted")
        );
        assert_eq!(
            badge(JobState::Running { queued: false }),
            ("running".into(), "live")
        );
        assert_eq!(
            badge(JobState::NeedsAttention),
            ("needs attention".into(), "bad")
        );
        assert_eq!(badge(JobState::Paused), ("paused".into(), "warn"));
        assert_eq!(badge(JobState::Disabled), ("disabled".into(), "muted"));
        assert_eq!(badge(JobState::Removed), ("removed".into(), "muted"));
        assert_eq!(badge(JobState::Enabled), ("enabled".into(), "ok"));
    }

    #[test]
    fn durations_read_naturally_at_every_scale() {
        assert_eq!(format_ms(850), "850 ms");
        assert_eq!(format_ms(4_200), "4.2 s");
        assert_eq!(format_ms(184_000), "3 min 4 s");
        assert_eq!(format_ms(7_500_000), "2 h 5 min");
    }

    #[test]
    fn query_strings_skip_empty_values_and_encode_the_rest() {
        assert_eq!(
            query_string(&[("q", Some("a b&c")), ("state", None), ("x", Some(""))]),
            "?q=a%20b%26c"
        );
        assert_eq!(query_string(&[("q", None)]), "");
    }

    #[test]
    fn xml_escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape_xml("\"><img src=x onerror='a'>&"),
            "&quot;&gt;&lt;img src=x onerror=&#39;a&#39;&gt;&amp;"
        );
    }
}
