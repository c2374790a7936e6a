//! The web layer's settings: cookies, HSTS, static files, trusted proxies.

use std::path::PathBuf;
use std::time::Duration;

/// Settings of the web layer.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Mark cookies `Secure` and give their names the `__Host-` prefix (serve over TLS,
    /// directly or behind a proxy). See [`WebConfig::cookie_name`].
    pub secure_cookies: bool,
    /// When set, every answer carries `Strict-Transport-Security` with this max-age.
    pub hsts: Option<Duration>,
    /// Where `/static/…` files are read from.
    pub static_dir: PathBuf,
    /// Peers whose `X-Forwarded-For` names the client (see [`super::client_address`]).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl WebConfig {
    /// The name of a cookie the server sets: `base`, or `__Host-<base>` with secure
    /// cookies. The prefix makes browsers refuse the cookie unless it is `Secure`, has
    /// `Path=/` and no `Domain`, so a sibling subdomain or a plain-HTTP page cannot plant
    /// or overwrite it.
    pub fn cookie_name(&self, base: &str) -> String {
        if self.secure_cookies {
            format!("__Host-{base}")
        } else {
            base.to_owned()
        }
    }
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            secure_cookies: false,
            hsts: None,
            // The crate's own folder, so `cargo run` works from anywhere in the checkout;
            // an installed binary is pointed elsewhere by the settings.
            static_dir: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/static")),
            trusted_proxies: Vec::new(),
        }
    }
}
