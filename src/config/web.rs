//! The `[web]` table: how the console's cookies and headers behave behind TLS and
//! proxies.
//!
//! ```toml
//! [web]
//! secure_cookies = true                 # or BATCHBOARD_SECURE_COOKIES=true
//! hsts = "1y"                           # Strict-Transport-Security max-age
//! trusted_proxies = ["10.0.0.0/8"]      # X-Forwarded-For is read only from these peers
//! public_url = "https://batchboard.example.com"   # alerts link to runs there
//! ```

use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::schedule::parse_duration;

/// `BATCHBOARD_SECURE_COOKIES`: `true` or `false`; wins over the file's `web.secure_cookies`.
pub const ENV_SECURE_COOKIES: &str = "BATCHBOARD_SECURE_COOKIES";

/// The `[web]` table, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebSettings {
    /// Cookies are `Secure` and `__Host-` prefixed: turn on when browsers reach the
    /// console over HTTPS (directly or through a proxy that terminates TLS).
    pub secure_cookies: bool,
    /// When set, every answer carries `Strict-Transport-Security: max-age=<this>`.
    pub hsts: Option<Duration>,
    /// Peers whose `X-Forwarded-For` names the real client; from anyone else the header
    /// is ignored and the peer address is the client.
    pub trusted_proxies: Vec<IpNet>,
    /// Where people reach the console, for the links in alerts; without it, alerts
    /// give the run's path only.
    pub public_url: Option<reqwest::Url>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileWeb {
    secure_cookies: Option<bool>,
    hsts: Option<String>,
    trusted_proxies: Option<Vec<String>>,
    public_url: Option<String>,
}

pub(super) fn web_settings(
    raw: FileWeb,
    file_origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
    problem: &mut impl FnMut(&str, Option<&str>, String),
) -> WebSettings {
    let secure_cookies = match env(ENV_SECURE_COOKIES) {
        None => raw.secure_cookies.unwrap_or(false),
        Some(text) => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => {
                problem(
                    ENV_SECURE_COOKIES,
                    None,
                    format!("{text:?} is not a yes or no: write true or false"),
                );
                false
            }
        },
    };
    let hsts = raw.hsts.and_then(|text| match parse_duration(&text) {
        Ok(duration) => Some(duration),
        Err(error) => {
            problem(file_origin, Some("web.hsts"), error.to_string());
            None
        }
    });
    let mut trusted_proxies = Vec::new();
    for (index, text) in raw.trusted_proxies.unwrap_or_default().iter().enumerate() {
        let text = text.trim();
        // A single address is a network of one.
        let parsed = text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from));
        match parsed {
            Ok(network) => trusted_proxies.push(network),
            Err(_) => problem(
                file_origin,
                Some(format!("web.trusted_proxies[{index}]").as_str()),
                format!(
                    "{text:?} is not an address or network: write one like 10.0.0.0/8, 192.168.1.10 or fd00::/8"
                ),
            ),
        }
    }
    let public_url = raw.public_url.and_then(|text| {
        match reqwest::Url::parse(text.trim()) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
                Some(url)
            }
            _ => {
                problem(
                    file_origin,
                    Some("web.public_url"),
                    format!(
                        "{text:?} is not where the console is reached: write its address, like https://batchboard.example.com"
                    ),
                );
                None
            }
        }
    });
    WebSettings {
        secure_cookies,
        hsts,
        trusted_proxies,
        public_url,
    }
}
