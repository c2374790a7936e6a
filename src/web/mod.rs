//! The HTTP surface: the operator console (server-rendered with askama, htmx for
//! partial updates), the JSON API under `/api/v1`, sign-in, `/metrics` and health.
//!
//! Every page module exposes `routes()`; [`router`] merges them behind the login guard,
//! with sessions, CSRF checks and security headers around everything.

pub mod api;
pub mod auth;
pub mod banner;
pub mod cancel;
pub mod client_address;
pub mod config;
pub mod csrf;
pub mod device;
pub mod error;
pub mod health;
pub mod htmx;
pub mod login;
pub mod login_csrf;
pub mod lookup;
pub mod metrics;
pub mod pages;
pub mod redacted;
pub mod runs_filter;
pub mod security;
pub mod sessions;
pub mod signin;
pub mod signing;
pub mod state;
pub mod throttle;
pub mod view_cache;

use axum::Router;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::get;
use tower_http::services::ServeDir;

pub use state::{AppState, WebConfig};

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
    let auth_layer = state
        .sessions
        .auth_layer(&state.config, state.store.clone());
    let bearer_layer = from_fn_with_state(state.clone(), auth::bearer);
    let csrf_layer = from_fn_with_state(state.clone(), csrf::verify);
    let headers_layer = from_fn_with_state(state.config.clone(), security::headers);
    let static_files = ServeDir::new(&state.config.static_dir);
    let protected = pages::routes()
        .layer(from_fn_with_state(state.clone(), banner::with_banner))
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
