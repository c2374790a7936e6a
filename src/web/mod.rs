//! The HTTP surface. For now: `/healthz`; the console and the API build on this router.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;

use crate::scheduler::SchedulerHandle;
use crate::store::SharedStore;

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: SharedStore,
    pub scheduler: SchedulerHandle,
}

/// The application's router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .with_state(state)
}

/// Process liveness. Says nothing else, so it can be open to anyone.
async fn healthz() -> (StatusCode, &'static str) {
    (StatusCode::OK, "ok")
}
