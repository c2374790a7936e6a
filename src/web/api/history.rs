//! `GET /api/v1/history`: who changed which setting of which job, newest first.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiQuery, ApiResult, ApiUser, ErrorBody, page_limit};
use crate::store::{ChangeFilter, JobChangeRecord};
use crate::web::lookup::load_job;
use crate::web::redacted::shown_change;
use crate::web::state::AppState;

/// Changes per page unless `limit` says otherwise.
pub const DEFAULT_CHANGES: u32 = 50;
/// The largest `limit`.
pub const MAX_CHANGES: u32 = 200;

/// The history's query.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Only this job's changes.
    pub job: Option<String>,
    /// Only changes with a smaller id: the previous answer's `next_before`.
    pub before: Option<i64>,
    /// At most this many changes (1 to 200, default 50).
    pub limit: Option<u32>,
}

/// One recorded change.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChangeJson {
    pub id: i64,
    pub job: String,
    /// A user's name, or `system`.
    pub actor: String,
    /// A setting's name, or `paused`.
    pub field: String,
    /// The value in force before (`null`: unset).
    #[schema(value_type = Object)]
    pub old_value: Option<serde_json::Value>,
    /// The value in force after (`null`: unset).
    #[schema(value_type = Object)]
    pub new_value: Option<serde_json::Value>,
    pub changed_at: DateTime<Utc>,
}

impl From<JobChangeRecord> for ChangeJson {
    fn from(change: JobChangeRecord) -> Self {
        Self {
            id: change.id,
            job: change.job_name,
            actor: change.actor,
            field: change.field,
            old_value: change.old_value,
            new_value: change.new_value,
            changed_at: change.changed_at,
        }
    }
}

/// A page of changes, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChangeList {
    pub changes: Vec<ChangeJson>,
    /// Pass as `before` for the next page; `null` on the last page.
    pub next_before: Option<i64>,
}

/// `GET /api/v1/history`: the configuration history, newest first, by keyset.
#[utoipa::path(
    get,
    path = "/api/v1/history",
    tag = "history",
    params(HistoryQuery),
    responses(
        (status = 200, body = ChangeList),
        (status = 401, body = ErrorBody),
        (status = 404, description = "Unknown job", body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
pub async fn list_changes(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<ChangeList>> {
    let limit = page_limit(query.limit, DEFAULT_CHANGES, MAX_CHANGES)?;
    let job_id = match query.job.as_deref().filter(|name| !name.is_empty()) {
        Some(name) => Some(load_job(&state, name).await?.id),
        None => None,
    };
    let mut changes = state
        .store
        .job_changes(&ChangeFilter {
            job_id,
            before: query.before,
            limit: limit + 1,
        })
        .await?;
    let more = changes.len() > limit as usize;
    changes.truncate(limit as usize);
    let next_before = more.then(|| changes.last().map(|c| c.id)).flatten();
    Ok(Json(ChangeList {
        changes: changes
            .into_iter()
            .map(|change| ChangeJson::from(shown_change(change, &state.redaction)))
            .collect(),
        next_before,
    }))
}
