//! `GET /api/v1/instances`: the processes sharing the database, as the console's
//! instances panel shows them.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiResult, ApiUser, ErrorBody};
use crate::instance::{LEASE, Overview};
use crate::web::state::AppState;

/// The instances.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InstancesJson {
    /// The database's time, by which `alive` is judged.
    pub now: DateTime<Utc>,
    /// Running and recently stopped instances, newest first.
    pub instances: Vec<InstanceJson>,
}

/// One process.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InstanceJson {
    /// As in each run's `instance_id`.
    pub id: String,
    /// `serve` or `run` (a one-off `batchboard run`).
    pub kind: String,
    pub host: String,
    pub pid: i64,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    pub stopped_at: Option<DateTime<Utc>>,
    /// Not stopped, and heard from within the lease.
    pub alive: bool,
    /// Its runs still queued or running.
    pub running_runs: u64,
    /// It holds the scheduler lease: it decides the scheduled fires.
    pub leader: bool,
}

/// `GET /api/v1/instances`: every instance, alive or stopped within a day.
#[utoipa::path(
    get,
    path = "/api/v1/instances",
    tag = "status",
    responses(
        (status = 200, body = InstancesJson),
        (status = 401, body = ErrorBody),
    )
)]
pub async fn list_instances(
    State(state): State<AppState>,
    _user: ApiUser,
) -> ApiResult<Json<InstancesJson>> {
    let overview = Overview::read(&state.store, &state.clock).await?;
    let instances = overview
        .instances
        .iter()
        .map(|instance| InstanceJson {
            alive: instance.is_alive(overview.now, LEASE),
            leader: overview.leads(instance),
            kind: instance.kind.as_str().to_owned(),
            id: instance.id.clone(),
            host: instance.host.clone(),
            pid: instance.pid,
            started_at: instance.started_at,
            heartbeat_at: instance.heartbeat_at,
            stopped_at: instance.stopped_at,
            running_runs: instance.running_runs,
        })
        .collect();
    Ok(Json(InstancesJson {
        now: overview.now,
        instances,
    }))
}
