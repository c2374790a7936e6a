//! `/api/v1/jobs…`: list and read jobs, change their settings, reset them to the file,
//! run, pause and resume them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::runs::RunJson;
use super::settings::{JobPatchJson, PatchRequest, PolicyJson, ScheduleJson, field_name};
use super::{ApiError, ApiJson, ApiOperator, ApiPath, ApiResult, ApiUser, ErrorBody};
use crate::scheduler::EditError;
use crate::store::{JobRecord, JobRuns, JobState, RunRecord};
use crate::web::error::WebError;
use crate::web::lookup::load_job;
use crate::web::redacted::ShownSettings;
use crate::web::state::AppState;

/// A job with its settings in force, its state and its latest run.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobJson {
    pub name: String,
    pub handler: String,
    pub description: Option<String>,
    pub schedule: ScheduleJson,
    pub enabled: bool,
    pub paused: bool,
    /// Whether the job left the settings file (its history stays).
    pub removed: bool,
    /// `running`, `attention` (the latest run is dead), `paused`, `disabled`, `enabled`
    /// or `removed`.
    pub state: String,
    pub next_run_at: Option<DateTime<Utc>>,
    pub last_run: Option<RunJson>,
    /// Send it back with a change: a stale one gets 409.
    pub version: i64,
    /// The other settings in force: timeouts, retries, overlaps.
    #[serde(flatten)]
    pub policies: PolicyJson,
}

/// One job: [`JobJson`] plus the file's settings, the operators' overrides and the
/// merged settings in force.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobDetailJson {
    #[serde(flatten)]
    pub job: JobJson,
    /// The settings file's values. In `params`, the values of `env` and `headers`, of
    /// keys that look secret, and the user info and secret-looking query values of URLs
    /// read `[redacted]`; the names stay.
    #[schema(schema_with = redacted_settings_schema)]
    pub defaults: Value,
    /// The fields operators changed, which win over the defaults (redacted the same way).
    #[schema(value_type = Object)]
    pub overrides: Map<String, Value>,
    /// The settings in force (redacted the same way).
    #[schema(schema_with = redacted_settings_schema)]
    pub effective: Value,
}

/// A job's settings in an answer: an object whose example shows what is redacted
/// (utoipa drops the examples of a plain `value_type = Object`).
fn redacted_settings_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .description(Some(
            "A job's settings; secrets in `params` read `[redacted]`, names kept.",
        ))
        .examples([serde_json::json!({
            "name": "warm-cache", "handler": "http", "every": "5m",
            "params": {
                "url": "https://[redacted]@shop.example.com/warm?token=[redacted]&scope=all",
                "headers": { "Authorization": "[redacted]" }
            }
        })])
        .build()
}

/// `GET /api/v1/jobs`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobJson>,
}

/// `POST /api/v1/jobs/{name}/run`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunStarted {
    pub run_id: i64,
}

/// `POST /api/v1/jobs/{name}/reset`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetJson {
    pub version: i64,
    /// One setting to reset (`schedule` for the whole schedule); absent: every setting.
    pub field: Option<String>,
}

impl JobJson {
    /// `job` as the API shows it, in `state`, with its latest run.
    pub fn new(job: &JobRecord, state: &str, last_run: Option<&RunRecord>) -> Self {
        let settings = job
            .effective_settings()
            .unwrap_or_else(|_| job.defaults.clone());
        Self {
            name: job.name.clone(),
            schedule: ScheduleJson::of(&settings),
            policies: PolicyJson::of(&settings),
            enabled: settings.enabled.unwrap_or(true),
            handler: settings.handler,
            description: settings.description,
            paused: job.paused,
            removed: job.removed_at.is_some(),
            state: state.to_owned(),
            next_run_at: job.next_run_at,
            last_run: last_run.map(RunJson::from),
            version: job.version,
        }
    }
}

/// `GET /api/v1/jobs`: every job (removed ones too), by name.
#[utoipa::path(
    get,
    path = "/api/v1/jobs",
    tag = "jobs",
    responses(
        (status = 200, body = JobList),
        (status = 401, body = ErrorBody),
    )
)]
pub async fn list_jobs(State(state): State<AppState>, _user: ApiUser) -> ApiResult<Json<JobList>> {
    let jobs = state.store.jobs().await?;
    let latest = state.store.latest_runs().await?;
    let running = state.store.running_runs().await?;
    let runs = JobRuns::new(&latest, &running);
    let jobs = jobs
        .iter()
        .map(|job| JobJson::new(job, runs.state(job).as_str(), latest.get(&job.id)))
        .collect();
    Ok(Json(JobList { jobs }))
}

/// `GET /api/v1/jobs/{name}`: one job with its defaults and overrides.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/{name}",
    tag = "jobs",
    params(("name" = String, Path, description = "The job's name")),
    responses(
        (status = 200, body = JobDetailJson),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn get_job(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<JobDetailJson>> {
    let job = load_job(&state, &name).await?;
    Ok(Json(detail(&state, &job).await?))
}

/// `PATCH /api/v1/jobs/{name}`: changes settings if `version` is still current.
#[utoipa::path(
    patch,
    path = "/api/v1/jobs/{name}",
    tag = "jobs",
    params(("name" = String, Path, description = "The job's name")),
    request_body = JobPatchJson,
    responses(
        (status = 200, description = "The job as it now stands", body = JobDetailJson),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Viewers cannot change jobs", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Stale version, or the job was removed", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 422, description = "Invalid settings, each bad field named", body = ErrorBody),
    )
)]
pub async fn patch_job(
    State(state): State<AppState>,
    ApiOperator(user): ApiOperator,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> ApiResult<Json<JobDetailJson>> {
    // Settings and `paused` travel in one patch: one change, one version.
    let request = PatchRequest::parse(body)?;
    let job = state
        .scheduler
        .edit_job(&name, request.patch, request.version, &user.name)
        .await
        .map_err(|error| edit_error(error, request.nested_schedule))?;
    Ok(Json(detail(&state, &job).await?))
}

/// `POST /api/v1/jobs/{name}/reset`: drops overrides so the file's settings apply.
#[utoipa::path(
    post,
    path = "/api/v1/jobs/{name}/reset",
    tag = "jobs",
    params(("name" = String, Path, description = "The job's name")),
    request_body = ResetJson,
    responses(
        (status = 200, body = JobDetailJson),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
pub async fn reset_job(
    State(state): State<AppState>,
    ApiOperator(user): ApiOperator,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<ResetJson>,
) -> ApiResult<Json<JobDetailJson>> {
    refuse_removed(&load_job(&state, &name).await?)?;
    let job = state
        .scheduler
        .reset_job(&name, body.field.as_deref(), body.version, &user.name)
        .await
        .map_err(|error| edit_error(error, false))?;
    Ok(Json(detail(&state, &job).await?))
}

/// `POST /api/v1/jobs/{name}/run`: starts a run now.
#[utoipa::path(
    post,
    path = "/api/v1/jobs/{name}/run",
    tag = "jobs",
    params(("name" = String, Path, description = "The job's name")),
    responses(
        (status = 202, description = "The run started", body = RunStarted),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Already running and overlap is forbidden, or removed", body = ErrorBody),
    )
)]
pub async fn run_job(
    State(state): State<AppState>,
    _operator: ApiOperator,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<(StatusCode, Json<RunStarted>)> {
    let run_id = state.scheduler.run_now(&name).await?;
    Ok((StatusCode::ACCEPTED, Json(RunStarted { run_id })))
}

/// `POST /api/v1/jobs/{name}/pause`: stops firing the job until it is resumed.
#[utoipa::path(
    post,
    path = "/api/v1/jobs/{name}/pause",
    tag = "jobs",
    params(("name" = String, Path, description = "The job's name")),
    responses(
        (status = 200, body = JobDetailJson),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn pause_job(
    State(state): State<AppState>,
    ApiOperator(user): ApiOperator,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<JobDetailJson>> {
    state.scheduler.pause_as(&name, &user.name).await?;
    let job = load_job(&state, &name).await?;
    Ok(Json(detail(&state, &job).await?))
}

/// `POST /api/v1/jobs/{name}/resume`: fires the job again from its next slot.
#[utoipa::path(
    post,
    path = "/api/v1/jobs/{name}/resume",
    tag = "jobs",
    params(("name" = String, Path, description = "The job's name")),
    responses(
        (status = 200, body = JobDetailJson),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
    )
)]
pub async fn resume_job(
    State(state): State<AppState>,
    ApiOperator(user): ApiOperator,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<JobDetailJson>> {
    refuse_removed(&load_job(&state, &name).await?)?;
    state.scheduler.resume_as(&name, &user.name).await?;
    let job = load_job(&state, &name).await?;
    Ok(Json(detail(&state, &job).await?))
}

/// A job gone from the settings file keeps its history but takes no more changes. The
/// scheduler refuses them too; the store may know first (another instance synced it).
fn refuse_removed(job: &JobRecord) -> ApiResult<()> {
    match job.removed_at {
        Some(_) => Err(edit_error(EditError::Removed(job.name.clone()), false)),
        None => Ok(()),
    }
}

async fn detail(state: &AppState, job: &JobRecord) -> ApiResult<JobDetailJson> {
    let recent = state
        .store
        .runs(&crate::store::RunFilter {
            job_id: Some(job.id),
            limit: 1,
            ..Default::default()
        })
        .await?;
    let shown = ShownSettings::of(job, &state.redaction);
    Ok(JobDetailJson {
        job: JobJson::new(
            job,
            JobState::from_latest(job, recent.first()).as_str(),
            recent.first(),
        ),
        defaults: shown.defaults,
        overrides: shown.overrides,
        effective: shown.effective,
    })
}

/// An edit's refusal as an API error, its fields named as the request named them
/// (`schedule.every` and so on when the schedule came nested).
fn edit_error(error: EditError, nested_schedule: bool) -> ApiError {
    let mut error = WebError::from(error);
    if let WebError::Invalid { fields, .. } = &mut error {
        *fields = std::mem::take(fields)
            .into_iter()
            .map(|(field, message)| (field_name(&field, nested_schedule), message))
            .collect();
    }
    ApiError(error)
}
