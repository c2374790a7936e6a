//! `/api/v1/jobs…`: list and read jobs, change their settings, reset them to the file,
//! run, pause and resume them.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::runs::RunJson;
use super::{ApiError, ApiJson, ApiOperator, ApiPath, ApiResult, ApiUser, ErrorBody};
use crate::job::JobSettings;
use crate::scheduler::{CommandError, EditError, JobPatch};
use crate::store::{JobRecord, JobRuns, JobState, RunRecord};
use crate::web::AppState;
use crate::web::error::WebError;
use crate::web::redacted::ShownSettings;

/// A job's schedule: `{"every": "5m"}` or `{"cron": "0 3 * * *", "timezone": "UTC"}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

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
    pub jitter: Option<String>,
    pub timeout: Option<String>,
    pub max_attempts: Option<u32>,
    pub backoff: Option<String>,
    pub max_backoff: Option<String>,
    /// `forbid`, `allow` or `replace` (absent: `forbid`).
    pub concurrency: Option<String>,
    /// `run_once` or `skip` (absent: `run_once`).
    pub misfire: Option<String>,
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

/// What a `PATCH` may carry; every field but `version` is optional.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[allow(dead_code)] // The documented shape; the body is parsed field by field.
pub struct JobPatchJson {
    /// The `version` the change is based on.
    pub version: i64,
    pub schedule: Option<ScheduleJson>,
    pub every: Option<String>,
    pub cron: Option<String>,
    pub timezone: Option<String>,
    pub jitter: Option<String>,
    pub timeout: Option<String>,
    pub max_attempts: Option<u32>,
    pub backoff: Option<String>,
    pub max_backoff: Option<String>,
    pub concurrency: Option<String>,
    pub misfire: Option<String>,
    pub enabled: Option<bool>,
    pub paused: Option<bool>,
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
        let schedule = if settings.cron.is_some() {
            ScheduleJson {
                every: None,
                timezone: Some(settings.timezone.clone().unwrap_or_else(|| "UTC".into())),
                cron: settings.cron.clone(),
            }
        } else {
            ScheduleJson {
                every: settings.every.clone(),
                ..ScheduleJson::default()
            }
        };
        let JobSettings {
            handler,
            description,
            jitter,
            timeout,
            max_attempts,
            backoff,
            max_backoff,
            concurrency,
            misfire,
            enabled,
            ..
        } = settings;
        Self {
            name: job.name.clone(),
            handler,
            description,
            schedule,
            enabled: enabled.unwrap_or(true),
            paused: job.paused,
            removed: job.removed_at.is_some(),
            state: state.to_owned(),
            next_run_at: job.next_run_at,
            last_run: last_run.map(RunJson::from),
            version: job.version,
            jitter,
            timeout,
            max_attempts,
            backoff,
            max_backoff,
            concurrency,
            misfire,
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
    let run_id = state
        .scheduler
        .run_now(&name)
        .await
        .map_err(command_error)?;
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
    state
        .scheduler
        .pause_as(&name, &user.name)
        .await
        .map_err(command_error)?;
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
    state
        .scheduler
        .resume_as(&name, &user.name)
        .await
        .map_err(command_error)?;
    let job = load_job(&state, &name).await?;
    Ok(Json(detail(&state, &job).await?))
}

/// The job named `name`, or a 404.
///
/// # Errors
/// 404 when there is none; 500 when the store fails.
pub async fn load_job(state: &AppState, name: &str) -> ApiResult<JobRecord> {
    state.store.job_by_name(name).await?.ok_or_else(|| {
        ApiError(WebError::NotFound(format!(
            "there is no job named {name:?}"
        )))
    })
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

/// A `PATCH` body, checked field by field so every bad field is named at once.
#[derive(Debug)]
struct PatchRequest {
    version: i64,
    patch: JobPatch,
    /// The schedule came as `"schedule": {...}`: its errors are named `schedule.…`.
    nested_schedule: bool,
}

impl PatchRequest {
    fn parse(body: Map<String, Value>) -> ApiResult<Self> {
        let mut errors = BTreeMap::new();
        let mut version = None;
        let mut patch = JobPatch::default();
        let mut schedule: Option<ScheduleJson> = None;
        for (field, value) in body {
            let errors = &mut errors;
            match field.as_str() {
                "version" => version = take(errors, field, value),
                "schedule" => schedule = take(errors, field, value),
                "every" => patch.every = take(errors, field, value),
                "cron" => patch.cron = take(errors, field, value),
                "timezone" => patch.timezone = take(errors, field, value),
                "jitter" => patch.jitter = take(errors, field, value),
                "timeout" => patch.timeout = take(errors, field, value),
                "max_attempts" => patch.max_attempts = take(errors, field, value),
                "backoff" => patch.backoff = take(errors, field, value),
                "max_backoff" => patch.max_backoff = take(errors, field, value),
                "concurrency" => patch.concurrency = take(errors, field, value),
                "misfire" => patch.misfire = take(errors, field, value),
                "enabled" => patch.enabled = take(errors, field, value),
                "paused" => patch.paused = take(errors, field, value),
                _ => {
                    errors.insert(field, "this is not a setting that can be changed".into());
                }
            }
        }
        let nested_schedule = schedule.is_some();
        if let Some(schedule) = schedule {
            if patch.every.is_some() || patch.cron.is_some() || patch.timezone.is_some() {
                errors.insert(
                    "schedule".into(),
                    "give the schedule either as \"schedule\" or as its fields, not both".into(),
                );
            }
            patch.every = schedule.every;
            patch.cron = schedule.cron;
            patch.timezone = schedule.timezone;
        }
        // The console form's limits, so a huge value is refused before the engine
        // parses it or echoes it in a message.
        for (field, message) in crate::web::pages::schedule::length_errors(&patch) {
            errors
                .entry(field_name(&field, nested_schedule))
                .or_insert(message);
        }
        if version.is_none() && !errors.contains_key("version") {
            errors.insert(
                "version".into(),
                "send the job's version, so a change made meanwhile is not overwritten".into(),
            );
        }
        match version {
            Some(version) if errors.is_empty() => Ok(Self {
                version,
                patch,
                nested_schedule,
            }),
            _ => Err(ApiError(WebError::Invalid {
                error: "the change is invalid; nothing was saved".into(),
                fields: errors,
            })),
        }
    }
}

/// `value` as a `T`, or an error noted against `field`.
fn take<T: serde::de::DeserializeOwned>(
    errors: &mut BTreeMap<String, String>,
    field: String,
    value: Value,
) -> Option<T> {
    match serde_json::from_value(value) {
        Ok(value) => Some(value),
        Err(error) => {
            errors.insert(field, format!("wrong type: {error}"));
            None
        }
    }
}

/// How the request named `field`: `schedule.every` and so on when the schedule came
/// nested as `"schedule": {...}`.
fn field_name(field: &str, nested_schedule: bool) -> String {
    if nested_schedule && matches!(field, "every" | "cron" | "timezone") {
        format!("schedule.{field}")
    } else {
        field.to_owned()
    }
}

/// An edit's refusal as an API error; `nested_schedule` names schedule fields
/// `schedule.every` and so on, as the request did.
pub fn edit_error(error: EditError, nested_schedule: bool) -> ApiError {
    let message = error.to_string();
    ApiError(match error {
        EditError::UnknownJob(name) => {
            WebError::NotFound(format!("there is no job named {name:?}"))
        }
        EditError::Removed(_) | EditError::Conflict => WebError::Conflict(message),
        EditError::Invalid(settings) => WebError::Invalid {
            error: "the settings are invalid; nothing was saved".into(),
            fields: settings
                .fields
                .into_iter()
                .map(|(field, message)| (field_name(field, nested_schedule), message))
                .collect(),
        },
        EditError::Stopped | EditError::Store(_) => WebError::Internal(anyhow::anyhow!(message)),
    })
}

/// A scheduler command's refusal as an API error.
pub fn command_error(error: CommandError) -> ApiError {
    ApiError(WebError::from(error))
}
