//! `/healthz` and `/readyz`: public, and saying nothing beyond "ok" or "not".

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::web::state::AppState;

/// How long the database may take to answer the readiness query before the process
/// counts as not ready (a load balancer should not wait on a stuck pool).
const DATABASE_DEADLINE: Duration = Duration::from_secs(2);

/// `/healthz` (the process answers) and `/readyz` (the database answers and the
/// scheduler task is alive). Both are meant to be mounted outside the login guard.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// Process liveness. Says nothing else, so it can be open to anyone.
async fn healthz() -> (StatusCode, &'static str) {
    (StatusCode::OK, "ok")
}

/// Readiness: 200 when the database answers a trivial query in time and the scheduler
/// task is running, else 503. Which of the two failed is logged, never answered.
async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    let database = match tokio::time::timeout(DATABASE_DEADLINE, state.store.ping()).await {
        Ok(Ok(())) => true,
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness: the database did not answer");
            false
        }
        Err(_) => {
            tracing::warn!("readiness: the database did not answer in time");
            false
        }
    };
    let scheduler = state.scheduler.is_alive();
    if !scheduler {
        tracing::warn!("readiness: the scheduler task has stopped");
    }
    if database && scheduler {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}
