//! What every request handler can reach, and the web layer's settings. Its own module, so that pages and the API
//! take it from here, not from the module that mounts them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::sessions::Sessions;
use super::signing::Signer;
use super::throttle::LoginThrottle;
use super::view_cache::ViewCache;
use crate::clock::SharedClock;
use crate::job::Registry;
use crate::scheduler::SchedulerHandle;
use crate::store::SharedStore;

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

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: SharedStore,
    pub scheduler: SchedulerHandle,
    /// The handlers, to validate edited settings against.
    pub registry: Registry,
    pub config: Arc<WebConfig>,
    /// The application's clock (tests pass a manual one).
    pub clock: SharedClock,
    /// Failed sign-ins per name, address and device.
    pub throttle: Arc<LoginThrottle>,
    /// Slots for password checks, so a burst of sign-ins cannot take every core.
    pub password_checks: Arc<crate::password_checks::PasswordCheckLimit>,
    /// Dashboards built moments ago, reused while nothing changes.
    pub dashboard: Arc<ViewCache>,
    /// Who may read `/metrics`.
    pub metrics: Arc<crate::config::MetricsSettings>,
    /// Signs the cookies the server must trust without a session (see [`super::signing`]).
    pub signer: Signer,
    /// What hides params values from every page and answer (see [`super::redacted`]).
    pub redaction: Arc<crate::secrets::RedactionList>,
    /// The session store, to end a user's sessions.
    pub sessions: Sessions,
}
