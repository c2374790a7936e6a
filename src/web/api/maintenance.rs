//! `/api/v1/maintenance`: whether every job is held paused for maintenance; admins begin
//! it (`POST`, with a reason) and end it (`DELETE`), as on the console's maintenance page.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiAdmin, ApiJson, ApiResult, ApiUser, ErrorBody};
use crate::store::Maintenance;
use crate::web::state::AppState;

/// The maintenance under way, or `active: false`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MaintenanceJson {
    pub active: bool,
    pub reason: Option<String>,
    pub started_by: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    /// The jobs it paused, which ending it resumes.
    pub paused_jobs: Vec<String>,
}

impl From<Option<Maintenance>> for MaintenanceJson {
    fn from(maintenance: Option<Maintenance>) -> Self {
        match maintenance {
            None => Self {
                active: false,
                reason: None,
                started_by: None,
                started_at: None,
                paused_jobs: Vec::new(),
            },
            Some(on) => Self {
                active: true,
                reason: Some(on.reason),
                started_by: Some(on.started_by),
                started_at: Some(on.started_at),
                paused_jobs: on.paused_jobs,
            },
        }
    }
}

/// What begins a maintenance.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BeginMaintenance {
    /// Shown on every page while it lasts; 1 to 200 characters.
    pub reason: String,
}

/// `GET /api/v1/maintenance`.
#[utoipa::path(
    get,
    path = "/api/v1/maintenance",
    tag = "status",
    responses((status = 200, body = MaintenanceJson), (status = 401, body = ErrorBody))
)]
pub async fn get_maintenance(
    State(state): State<AppState>,
    _user: ApiUser,
) -> ApiResult<Json<MaintenanceJson>> {
    Ok(Json(state.store.maintenance().maintenance().await?.into()))
}

/// `POST /api/v1/maintenance`: pauses every job not paused yet, with a reason.
#[utoipa::path(
    post,
    path = "/api/v1/maintenance",
    tag = "status",
    request_body = BeginMaintenance,
    responses(
        (status = 200, body = MaintenanceJson),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "A maintenance is already under way"),
        (status = 422, body = ErrorBody),
    )
)]
pub async fn begin_maintenance(
    State(state): State<AppState>,
    ApiAdmin(user): ApiAdmin,
    ApiJson(body): ApiJson<BeginMaintenance>,
) -> ApiResult<Json<MaintenanceJson>> {
    let begun = crate::maintenance::begin(
        &state.store,
        &state.scheduler,
        &body.reason,
        &user.name,
        state.clock.now(),
    )
    .await?;
    state.banner.forget();
    Ok(Json(Some(begun).into()))
}

/// `DELETE /api/v1/maintenance`: resumes the jobs the maintenance paused.
#[utoipa::path(
    delete,
    path = "/api/v1/maintenance",
    tag = "status",
    responses(
        (status = 200, body = MaintenanceJson, description = "The maintenance that ended"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "No maintenance is under way"),
    )
)]
pub async fn end_maintenance(
    State(state): State<AppState>,
    ApiAdmin(user): ApiAdmin,
) -> ApiResult<Json<MaintenanceJson>> {
    let ended = crate::maintenance::end(&state.store, &state.scheduler, &user.name).await?;
    state.banner.forget();
    Ok(Json(Some(ended).into()))
}
