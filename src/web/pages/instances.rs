//! The instances panel: the processes sharing the database (each `serve`, each one-off
//! `batchboard run`), whether each is alive by its heartbeat, and how many runs it has
//! going. It reads the same liveness rule the lease check acts on.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;

use super::chrome::{Chrome, TimeView};
use crate::instance::{LEASE, Overview};
use crate::store::InstanceRecord;
use crate::web::auth::CurrentUser;
use crate::web::csrf::CsrfToken;
use crate::web::error::WebResult;
use crate::web::state::AppState;

struct InstanceRow {
    id: String,
    kind: &'static str,
    host: String,
    pid: i64,
    started: TimeView,
    heartbeat: TimeView,
    /// Seconds since the last heartbeat, by the database's clock.
    silent_secs: i64,
    state: &'static str,
    running_runs: u64,
    this_one: bool,
    /// It holds the scheduler lease: it decides the scheduled fires.
    leader: bool,
}

impl InstanceRow {
    fn new(instance: &InstanceRecord, overview: &Overview, me: &str) -> Self {
        let now = overview.now;
        let state = if instance.stopped_at.is_some() {
            "stopped"
        } else if instance.is_alive(now, LEASE) {
            "alive"
        } else {
            "gone (lease ran out)"
        };
        Self {
            this_one: instance.id == me,
            leader: overview.leads(instance),
            kind: instance.kind.as_str(),
            started: TimeView::new(instance.started_at),
            heartbeat: TimeView::new(instance.heartbeat_at),
            silent_secs: (now - instance.heartbeat_at).num_seconds().max(0),
            state,
            running_runs: instance.running_runs,
            id: instance.id.clone(),
            host: instance.host.clone(),
            pid: instance.pid,
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "instances.html")]
pub(crate) struct InstancesPage {
    chrome: Chrome,
    instances: Vec<InstanceRow>,
    lease_secs: i64,
}

/// `GET /instances`.
pub(super) async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
) -> WebResult<InstancesPage> {
    let overview = Overview::read(&state.store, &state.clock).await?;
    let me = state.scheduler.instance_id();
    let instances = overview
        .instances
        .iter()
        .map(|instance| InstanceRow::new(instance, &overview, me))
        .collect();
    Ok(InstancesPage {
        chrome: Chrome::new(user, csrf),
        instances,
        lease_secs: LEASE.num_seconds(),
    })
}
