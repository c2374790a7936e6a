//! The `[metrics]` table: who may read `/metrics`.

use std::fmt;
use std::net::SocketAddr;

use serde::Deserialize;

/// `BATCHBOARD_METRICS_TOKEN`: the bearer token `/metrics` accepts; wins over the file's
/// `metrics.token`, so the secret can stay out of the file.
pub const ENV_METRICS_TOKEN: &str = "BATCHBOARD_METRICS_TOKEN";

/// The shortest metrics token accepted: anything shorter could be guessed.
pub const MIN_METRICS_TOKEN_LEN: usize = 16;

/// Who may read `/metrics` (the `[metrics]` table):
///
/// ```toml
/// [metrics]
/// token = "a-long-random-secret"   # scrapers send `Authorization: Bearer <token>`
/// bind = "127.0.0.1:9464"          # /metrics is also served there, open to anyone
/// ```
///
/// On the main address `/metrics` always needs a signed-in session or the token; with
/// neither key set only signed-in users can read it. `bind` is for a port that only the
/// monitoring network can reach.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct MetricsSettings {
    /// The bearer token `/metrics` accepts on the main address.
    pub token: Option<String>,
    /// A separate address where `/metrics` (and nothing else) is served without
    /// credentials.
    pub bind: Option<SocketAddr>,
}

impl fmt::Debug for MetricsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsSettings")
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("bind", &self.bind)
            .finish()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileMetrics {
    token: Option<String>,
    bind: Option<String>,
}

pub(super) fn metrics_settings(
    raw: FileMetrics,
    file_origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
    problem: &mut impl FnMut(&str, Option<&str>, String),
) -> MetricsSettings {
    let (token, origin, field) = match env(ENV_METRICS_TOKEN) {
        Some(token) => (Some(token), ENV_METRICS_TOKEN, None),
        None => (raw.token, file_origin, Some("metrics.token")),
    };
    let token = token.map(|token| token.trim().to_owned());
    if token
        .as_ref()
        .is_some_and(|token| token.len() < MIN_METRICS_TOKEN_LEN)
    {
        problem(
            origin,
            field,
            format!("the metrics token must be at least {MIN_METRICS_TOKEN_LEN} characters long"),
        );
    }
    let bind = raw
        .bind
        .and_then(|text| match text.trim().parse::<SocketAddr>() {
            Ok(address) => Some(address),
            Err(_) => {
                problem(
                    file_origin,
                    Some("metrics.bind"),
                    format!(
                        "{text:?} is not an address to listen on: write an IP address and a port, like 127.0.0.1:9464"
                    ),
                );
                None
            }
        });
    MetricsSettings { token, bind }
}
