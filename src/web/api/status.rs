//! `GET /api/v1/status`: this scheduler instance, what it runs now and what fires next.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::runs::ProgressJson;
use super::{ApiResult, ApiUser, ErrorBody};
use crate::store::Trigger;
use crate::web::state::AppState;

/// How many upcoming fires the status lists.
pub const NEXT_FIRES: usize = 10;

/// The scheduler's status.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatusJson {
    /// This process's instance name (as in each run's `instance_id`).
    pub instance_id: String,
    /// The current time on the scheduler's clock.
    pub now: DateTime<Utc>,
    /// Runs going on in this process, oldest first (those waiting for a slot included).
    pub running: Vec<LiveRunJson>,
    /// Runs started but waiting for a free slot.
    pub queue_depth: usize,
    /// How many runs execute at once at most.
    pub max_concurrent_runs: usize,
    /// The next fires of active jobs, soonest first.
    pub next_fires: Vec<NextFireJson>,
}

/// A run in progress.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LiveRunJson {
    pub run_id: i64,
    pub job: String,
    #[schema(value_type = String)]
    pub trigger: Trigger,
    pub attempt: u32,
    /// When it was due to start.
    pub due_at: DateTime<Utc>,
    /// When its handler started; `null` while it waits for a free slot (queued).
    pub started_at: Option<DateTime<Utc>>,
    pub progress: ProgressJson,
}

/// A job's next fire.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NextFireJson {
    pub job: String,
    pub at: DateTime<Utc>,
}

/// `GET /api/v1/status`: instance, running runs and next fires.
#[utoipa::path(
    get,
    path = "/api/v1/status",
    tag = "status",
    responses(
        (status = 200, body = StatusJson),
        (status = 401, body = ErrorBody),
    )
)]
pub async fn scheduler_status(
    State(state): State<AppState>,
    _user: ApiUser,
) -> ApiResult<Json<StatusJson>> {
    let running = state
        .scheduler
        .live_runs()
        .all()
        .into_iter()
        .map(|run| LiveRunJson {
            progress: run.progress().into(),
            started_at: run.started_at(),
            run_id: run.run_id,
            job: run.job,
            trigger: run.trigger,
            attempt: run.attempt,
            due_at: run.due_at,
        })
        .collect();
    let mut next_fires: Vec<NextFireJson> = state
        .store
        .jobs()
        .await?
        .into_iter()
        .filter(|job| !job.paused && job.removed_at.is_none())
        .filter_map(|job| job.next_run_at.map(|at| NextFireJson { job: job.name, at }))
        .collect();
    next_fires.sort_by(|a, b| (a.at, &a.job).cmp(&(b.at, &b.job)));
    next_fires.truncate(NEXT_FIRES);
    Ok(Json(StatusJson {
        instance_id: state.scheduler.instance_id().to_owned(),
        now: state.clock.now(),
        running,
        queue_depth: state.scheduler.queue_depth(),
        max_concurrent_runs: state.scheduler.max_concurrent_runs(),
        next_fires,
    }))
}
