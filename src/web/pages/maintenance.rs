//! The maintenance page (admins): begin a maintenance with a reason (every job not paused
//! yet is paused, and the banner shows on every page), or end it (those jobs resume).

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::chrome::{Chrome, TimeView};
use crate::maintenance::{MAX_REASON_CHARS, MaintenanceError};
use crate::store::Maintenance;
use crate::web::auth::{CurrentUser, Role};
use crate::web::csrf::CsrfToken;
use crate::web::error::WebResult;
use crate::web::htmx::go_to;
use crate::web::state::AppState;

struct UnderWay {
    reason: String,
    started_by: String,
    since: TimeView,
    paused_jobs: Vec<String>,
}

impl From<Maintenance> for UnderWay {
    fn from(maintenance: Maintenance) -> Self {
        Self {
            since: TimeView::new(maintenance.started_at),
            reason: maintenance.reason,
            started_by: maintenance.started_by,
            paused_jobs: maintenance.paused_jobs,
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "maintenance.html")]
pub(crate) struct MaintenancePage {
    chrome: Chrome,
    under_way: Option<UnderWay>,
    /// What was typed, shown again with `refused`.
    reason: String,
    refused: Option<String>,
    max_reason: usize,
}

#[derive(Debug, Deserialize)]
pub(super) struct BeginForm {
    #[serde(default)]
    reason: String,
}

async fn page(
    state: &AppState,
    user: CurrentUser,
    csrf: CsrfToken,
    reason: String,
    refused: Option<String>,
) -> WebResult<MaintenancePage> {
    let under_way = state.store.maintenance().maintenance().await?;
    Ok(MaintenancePage {
        chrome: Chrome::new(user, csrf),
        under_way: under_way.map(UnderWay::from),
        reason,
        refused,
        max_reason: MAX_REASON_CHARS,
    })
}

/// `GET /maintenance`.
pub(super) async fn maintenance_page(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
) -> WebResult<MaintenancePage> {
    user.require(Role::Admin)?;
    page(&state, user, csrf, String::new(), None).await
}

/// `POST /maintenance`: begins one; a refused reason is shown in the form, kept.
pub(super) async fn begin(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    headers: HeaderMap,
    Form(form): Form<BeginForm>,
) -> WebResult<Response> {
    user.require(Role::Admin)?;
    let begun = crate::maintenance::begin(
        &state.store,
        &state.scheduler,
        &form.reason,
        &user.name,
        state.clock.now(),
    )
    .await;
    state.banner.forget();
    match begun {
        Ok(_) => Ok(go_to(&headers, "/maintenance")),
        Err(
            error @ (MaintenanceError::NoReason
            | MaintenanceError::ReasonTooLong
            | MaintenanceError::AlreadyOn { .. }),
        ) => {
            // Shown in the form, keeping what was typed.
            let view = page(&state, user, csrf, form.reason, Some(error.to_string())).await?;
            Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, view).into_response())
        }
        Err(error) => Err(error.into()),
    }
}

/// `POST /maintenance/end`.
pub(super) async fn end(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
) -> WebResult<Response> {
    user.require(Role::Admin)?;
    let ended = crate::maintenance::end(&state.store, &state.scheduler, &user.name).await;
    state.banner.forget();
    match ended {
        // Ended by someone else first: the page shows that nothing is under way.
        Ok(_) | Err(MaintenanceError::NotOn) => Ok(go_to(&headers, "/maintenance")),
        Err(error) => Err(error.into()),
    }
}
