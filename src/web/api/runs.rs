//! Runs: a job's runs paged by keyset, one run, its logs (tailable) and cancelling it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    ApiError, ApiOperator, ApiPath, ApiQuery, ApiResult, ApiUser, ErrorBody, invalid_field,
    page_limit,
};
use crate::job::Progress;
use crate::runlog::{LEVELS, level_rank};
use crate::store::{LogLine, RunFilter, RunRecord, RunStatus, Trigger};
use crate::web::error::WebError;
use crate::web::lookup::load_job;
use crate::web::runs_filter::FilterFailure;
use crate::web::state::AppState;

/// Runs per page unless `limit` says otherwise.
pub const DEFAULT_RUNS: u32 = 50;
/// The largest `limit` of a run listing.
pub const MAX_RUNS: u32 = 200;
/// Log lines per answer unless `limit` says otherwise.
pub const DEFAULT_LOG_LINES: u32 = 500;
/// The largest `limit` of a log read.
pub const MAX_LOG_LINES: u32 = 5000;

/// A run as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunJson {
    pub id: i64,
    pub job: String,
    /// `running`, `succeeded`, `failed`, `retrying`, `dead`, `cancelled`, `timed_out`,
    /// `interrupted` or `skipped`.
    #[schema(value_type = String)]
    pub status: RunStatus,
    /// `schedule`, `manual`, `retry`, `dependency` or `catch_up`.
    #[schema(value_type = String)]
    pub trigger: Trigger,
    pub attempt: u32,
    /// The first attempt's id, on a retry.
    pub first_run_id: Option<i64>,
    pub scheduled_for: DateTime<Utc>,
    /// When the handler started; `null` while queued and for a run that ended before it
    /// started.
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// `finished_at - started_at`; `null` while going and when it never started.
    pub duration_ms: Option<i64>,
    /// For a `queued` run asked for alone (`GET /api/v1/runs/{id}`): how long it has
    /// waited for a free slot, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued_ms: Option<i64>,
    pub items_checked: i64,
    pub items_updated: i64,
    pub items_total: Option<i64>,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    pub summary: Option<String>,
    pub instance_id: String,
    /// When the retry of this run is due.
    pub retry_at: Option<DateTime<Utc>>,
    /// Live counters, while the run is going on in this process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<ProgressJson>,
}

/// A running run's counters.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct ProgressJson {
    pub checked: u64,
    pub updated: u64,
    pub done: u64,
    pub total: Option<u64>,
}

impl From<Progress> for ProgressJson {
    fn from(progress: Progress) -> Self {
        Self {
            checked: progress.checked,
            updated: progress.updated,
            done: progress.done,
            total: progress.total,
        }
    }
}

impl From<&RunRecord> for RunJson {
    fn from(run: &RunRecord) -> Self {
        Self {
            id: run.id,
            job: run.job_name.clone(),
            status: run.status,
            trigger: run.trigger,
            attempt: run.attempt,
            first_run_id: run.first_run_id,
            scheduled_for: run.scheduled_for,
            started_at: run.started_at,
            finished_at: run.finished_at,
            duration_ms: run.duration_ms,
            queued_ms: None,
            items_checked: run.items_checked,
            items_updated: run.items_updated,
            items_total: run.items_total,
            error_kind: run.error_kind.clone(),
            error_message: run.error_message.clone(),
            summary: run.summary.clone(),
            instance_id: run.instance_id.clone(),
            retry_at: run.retry_at,
            progress: None,
        }
    }
}

/// `GET /api/v1/jobs/{name}/runs`'s query.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    /// At most this many runs (1 to 200, default 50).
    pub limit: Option<u32>,
    /// Only runs with a smaller id: the previous answer's `next_before`.
    pub before: Option<i64>,
    /// Only runs with this status.
    pub status: Option<String>,
    /// Only runs with this trigger.
    pub trigger: Option<String>,
}

/// A page of runs, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunList {
    pub runs: Vec<RunJson>,
    /// Pass as `before` for the next page; `null` on the last page.
    pub next_before: Option<i64>,
}

/// `GET /api/v1/runs/{id}/logs`'s query.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    /// Only lines at least this severe: `error`, `warn`, `info`, `debug` or `trace`.
    pub level: Option<String>,
    /// Only lines after this cursor: the previous answer's `next_after`.
    pub after: Option<i64>,
    /// Read at most this many lines (1 to 5000, default 500), before the level filter.
    pub limit: Option<u32>,
}

/// One log line.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogJson {
    pub id: i64,
    pub ts: DateTime<Utc>,
    pub level: String,
    pub message: String,
    /// The event's fields, secrets redacted.
    #[schema(value_type = Object)]
    pub fields: serde_json::Value,
}

/// Log lines, oldest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogList {
    pub logs: Vec<LogJson>,
    /// Pass as `after` to read on (to tail a running run); the same cursor as sent when
    /// nothing new was read.
    pub next_after: Option<i64>,
    /// Whether the run is over: once it is and `logs` is empty, nothing more will come.
    pub finished: bool,
}

/// `POST /api/v1/runs/{id}/cancel`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CancelAccepted {
    pub run_id: i64,
    /// Always `cancelling`: the run ends (as `cancelled`) when its handler stops.
    pub status: String,
}

/// `GET /api/v1/jobs/{name}/runs`: a job's runs, newest first, by keyset.
#[utoipa::path(
    get,
    path = "/api/v1/jobs/{name}/runs",
    tag = "runs",
    params(("name" = String, Path, description = "The job's name"), RunsQuery),
    responses(
        (status = 200, body = RunList),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "A bad limit, status or trigger", body = ErrorBody),
    )
)]
pub async fn list_runs(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<RunsQuery>,
) -> ApiResult<Json<RunList>> {
    let limit = page_limit(query.limit, DEFAULT_RUNS, MAX_RUNS)?;
    let status = parse_choice::<RunStatus>("status", query.status.as_deref())?;
    let trigger = parse_choice::<Trigger>("trigger", query.trigger.as_deref())?;
    let job = load_job(&state, &name).await?;
    let mut runs = state
        .store
        .runs(&RunFilter {
            job_id: Some(job.id),
            status,
            trigger,
            before: query.before,
            limit: limit + 1,
            ..RunFilter::default()
        })
        .await?;
    let more = runs.len() > limit as usize;
    runs.truncate(limit as usize);
    let next_before = more.then(|| runs.last().map(|run| run.id)).flatten();
    Ok(Json(RunList {
        runs: runs.iter().map(|run| with_progress(&state, run)).collect(),
        next_before,
    }))
}

/// `GET /api/v1/runs`: the runs of every job, newest first, by keyset, filtered as the
/// console's runs view is.
#[utoipa::path(
    get,
    path = "/api/v1/runs",
    tag = "runs",
    params(crate::web::runs_filter::RunsQuery),
    responses(
        (status = 200, body = RunList),
        (status = 401, body = ErrorBody),
        (status = 422, description = "A filter that cannot be applied, named in `fields`", body = ErrorBody),
    )
)]
pub async fn list_all_runs(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiQuery(query): ApiQuery<crate::web::runs_filter::RunsQuery>,
) -> ApiResult<Json<RunList>> {
    let limit = page_limit(query.limit, DEFAULT_RUNS, MAX_RUNS)?;
    let filter = match query.filter(&state.store, limit + 1).await {
        Ok(filter) => filter,
        Err(FilterFailure::Invalid(error)) => {
            return Err(invalid_field(error.field, error.message));
        }
        Err(FilterFailure::Store(error)) => return Err(WebError::from(error).into()),
    };
    let mut runs = state.store.runs(&filter).await?;
    let more = runs.len() > limit as usize;
    runs.truncate(limit as usize);
    let next_before = more.then(|| runs.last().map(|run| run.id)).flatten();
    Ok(Json(RunList {
        runs: runs.iter().map(|run| with_progress(&state, run)).collect(),
        next_before,
    }))
}

/// `GET /api/v1/runs/{id}`: one run.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}",
    tag = "runs",
    params(("id" = i64, Path, description = "The run's id")),
    responses(
        (status = 200, body = RunJson),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn get_run(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<RunJson>> {
    let run = load_run(&state, id).await?;
    Ok(Json(with_progress(&state, &run)))
}

/// `GET /api/v1/runs/{id}/logs`: a run's log lines, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}/logs",
    tag = "runs",
    params(("id" = i64, Path, description = "The run's id"), LogsQuery),
    responses(
        (status = 200, body = LogList),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "A bad level or limit", body = ErrorBody),
    )
)]
pub async fn run_logs(
    State(state): State<AppState>,
    _user: ApiUser,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<LogsQuery>,
) -> ApiResult<Json<LogList>> {
    let limit = page_limit(query.limit, DEFAULT_LOG_LINES, MAX_LOG_LINES)?;
    let level = match query.level.as_deref().map(str::to_ascii_lowercase) {
        Some(level) if !LEVELS.contains(&level.as_str()) => {
            return Err(invalid_field(
                "level",
                format!("give one of {}", LEVELS.join(", ")),
            ));
        }
        other => other,
    };
    let run = load_run(&state, id).await?;
    let lines = state.store.run_logs(id, query.after, limit).await?;
    // The cursor moves past every line read, shown or filtered out, so tailing with a
    // level filter does not read the same lines again.
    let next_after = lines.last().map(|(id, _)| *id).or(query.after);
    let max_rank = level.as_deref().map_or(LEVELS.len(), level_rank);
    let logs = lines
        .into_iter()
        .filter(|(_, line)| level_rank(&line.level) <= max_rank)
        .map(|(id, line)| log_json(id, line))
        .collect();
    Ok(Json(LogList {
        logs,
        next_after,
        finished: run.status.is_final(),
    }))
}

/// `POST /api/v1/runs/{id}/cancel`: asks a running run to stop.
#[utoipa::path(
    post,
    path = "/api/v1/runs/{id}/cancel",
    tag = "runs",
    params(("id" = i64, Path, description = "The run's id")),
    responses(
        (status = 202, body = CancelAccepted),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The run is not running", body = ErrorBody),
    )
)]
pub async fn cancel_run(
    State(state): State<AppState>,
    ApiOperator(user): ApiOperator,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<(StatusCode, Json<CancelAccepted>)> {
    load_run(&state, id).await?;
    crate::web::cancel::cancel_run(&state, id, &user.name).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(CancelAccepted {
            run_id: id,
            status: "cancelling".into(),
        }),
    ))
}

async fn load_run(state: &AppState, id: i64) -> ApiResult<RunRecord> {
    state
        .store
        .run(id)
        .await?
        .ok_or_else(|| ApiError(WebError::NotFound(format!("there is no run {id}"))))
}

fn with_progress(state: &AppState, run: &RunRecord) -> RunJson {
    let mut json = RunJson::from(run);
    if run.status == RunStatus::Queued {
        json.queued_ms = Some(
            (state.clock.now() - run.scheduled_for)
                .num_milliseconds()
                .max(0),
        );
    }
    if run.status == RunStatus::Running {
        json.progress = state
            .scheduler
            .live_runs()
            .get(run.id)
            .map(|live| live.progress().into());
    }
    json
}

fn log_json(id: i64, line: LogLine) -> LogJson {
    LogJson {
        id,
        ts: line.ts,
        level: line.level,
        message: line.message,
        fields: line.fields,
    }
}

/// `value` parsed as one of a fixed set of names, or a 422 naming `field`.
fn parse_choice<T: std::str::FromStr<Err = String>>(
    field: &str,
    value: Option<&str>,
) -> ApiResult<Option<T>> {
    value
        .filter(|value| !value.is_empty())
        .map(|value| {
            value
                .parse::<T>()
                .map_err(|error| invalid_field(field, error))
        })
        .transpose()
}
