//! The job's and run's buttons: run now, pause, resume, cancel a run. Each answers
//! with where to go next.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;

use crate::web::auth::{CurrentUser, Role};
use crate::web::error::{WebError, WebResult};
use crate::web::htmx::go_to;
use crate::web::state::AppState;

pub(in crate::web::pages) async fn run_now(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> WebResult<Response> {
    user.require(Role::Operator)?;
    let run_id = state
        .scheduler
        .run_now(&name)
        .await
        .map_err(WebError::from)?;
    Ok(go_to(&headers, &format!("/runs/{run_id}")))
}

pub(in crate::web::pages) async fn pause(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> WebResult<Response> {
    user.require(Role::Operator)?;
    state
        .scheduler
        .pause_as(&name, &user.name)
        .await
        .map_err(WebError::from)?;
    Ok(go_to(&headers, &format!("/jobs/{name}")))
}

pub(in crate::web::pages) async fn resume(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> WebResult<Response> {
    user.require(Role::Operator)?;
    state
        .scheduler
        .resume_as(&name, &user.name)
        .await
        .map_err(WebError::from)?;
    Ok(go_to(&headers, &format!("/jobs/{name}")))
}

pub(in crate::web::pages) async fn cancel(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> WebResult<Response> {
    user.require(Role::Operator)?;
    crate::web::cancel::cancel_run(&state, id, &user.name).await?;
    Ok(go_to(&headers, &format!("/runs/{id}")))
}
