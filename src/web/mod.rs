//! The HTTP surface: the operator console (server-rendered with askama, htmx for
//! partial updates) and, later, the JSON API.
//!
//! Every page module exposes `routes()`; [`router`] merges them behind the login guard,
//! with sessions, CSRF checks and security headers around everything.

pub mod auth;
pub mod csrf;
pub mod error;
pub mod pages;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use tower_http::services::ServeDir;

use crate::job::Registry;
use crate::scheduler::SchedulerHandle;
use crate::store::SharedStore;

/// Settings of the web layer.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Mark cookies `Secure` (serve over TLS, directly or behind a proxy).
    pub secure_cookies: bool,
    /// Where `/static/…` files are read from.
    pub static_dir: PathBuf,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            secure_cookies: false,
            // The crate's own folder, so `cargo run` works from anywhere in the checkout;
            // an installed binary is pointed elsewhere by the settings.
            static_dir: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/static")),
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
}

/// The application's router.
///
/// # Errors
/// When the session store cannot be prepared.
pub async fn router(state: AppState) -> anyhow::Result<Router> {
    let static_files = ServeDir::new(&state.config.static_dir);
    let pages = pages::routes();
    Ok(Router::new()
        .route("/healthz", get(healthz))
        .merge(pages)
        .nest_service("/static", static_files)
        .with_state(state))
}

/// Process liveness. Says nothing else, so it can be open to anyone.
async fn healthz() -> (StatusCode, &'static str) {
    (StatusCode::OK, "ok")
}
