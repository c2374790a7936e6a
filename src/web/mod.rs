//! The HTTP surface: the operator console (server-rendered with askama, htmx for
//! partial updates), the JSON API under `/api/v1`, sign-in, `/metrics` and health.
//!
//! Every page module exposes `routes()`; [`router`] merges them behind the login guard,
//! with sessions, CSRF checks and security headers around everything.

pub mod api;
pub mod auth;
pub mod client_address;
pub mod csrf;
pub mod device;
pub mod error;
pub mod health;
pub mod login;
pub mod login_csrf;
pub mod metrics;
pub mod pages;
pub mod redacted;
pub mod security;
pub mod sessions;
pub mod signin;
pub mod signing;
pub mod throttle;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::get;
use tower_http::services::ServeDir;

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
    /// Peers whose `X-Forwarded-For` names the client (see [`client_address`]).
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
    pub throttle: Arc<throttle::LoginThrottle>,
    /// Slots for password checks, so a burst of sign-ins cannot take every core.
    pub password_checks: Arc<crate::password_checks::PasswordCheckLimit>,
    /// Dashboards built moments ago, reused while nothing changes.
    pub dashboard: Arc<pages::dashboard::DashboardCache>,
    /// Who may read `/metrics`.
    pub metrics: Arc<crate::config::MetricsSettings>,
    /// Signs the cookies the server must trust without a session (see [`signing`]).
    pub signer: signing::Signer,
    /// What hides params values from every page and answer (see [`redacted`]).
    pub redaction: Arc<crate::secrets::RedactionList>,
    /// The session store, to end a user's sessions.
    pub sessions: sessions::Sessions,
}

/// The application's router: `/login`, `/healthz`, `/readyz` and `/static` are public,
/// `/metrics` checks its own credentials (a session or its bearer token); every other
/// path (the page routes, `/logout`, and unknown paths too, so nothing is revealed before
/// sign-in) sits behind [`auth::require_login`], then behind a pending forced password
/// change ([`pages::account::require_password_change`]), and is never cached. Around
/// everything: security headers, the session and sign-in layers, the API token check,
/// and the CSRF check.
///
/// # Errors
/// When the router cannot be built.
pub async fn router(state: AppState) -> anyhow::Result<Router> {
    let auth_layer = auth::layer(&state.sessions, &state.config, state.store.clone());
    let bearer_layer = from_fn_with_state(state.clone(), auth::bearer);
    let csrf_layer = from_fn_with_state(state.clone(), csrf::verify);
    let headers_layer = from_fn_with_state(state.config.clone(), security::headers);
    let static_files = ServeDir::new(&state.config.static_dir);
    let protected = pages::routes()
        .merge(api::routes())
        .layer(from_fn(pages::account::require_password_change))
        .layer(from_fn(auth::require_login))
        // Outermost, so the guards' own answers are not cached either.
        .layer(from_fn(security::no_store))
        // Outside the guard, so refused requests are counted too; last, so every route
        // is counted under its path template.
        .layer(from_fn(metrics::track_requests))
        .with_state(state.clone());
    Ok(Router::new()
        .merge(health::routes())
        .route("/metrics", get(metrics::scrape))
        .route(
            "/login",
            get(login::show)
                .post(login::submit)
                .layer(from_fn(security::no_store)),
        )
        .nest_service("/static", static_files)
        // Only the routes above: the fallback counts its own requests.
        .route_layer(from_fn(metrics::track_requests))
        .fallback_service(protected)
        .with_state(state)
        .layer(csrf_layer)
        .layer(bearer_layer)
        .layer(auth_layer)
        .layer(headers_layer))
}
