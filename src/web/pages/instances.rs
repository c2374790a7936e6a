//! The instances panel: the processes sharing the database (each `serve`, each one-off
//! `batchboard run`), whether each is alive by its heartbeat, and how many runs it has
//! going. It reads the same liveness rule the lease check acts on.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;

use super::chrome::{Chrome, TimeView};
use crate::instance::LEASE;
use crate::store::InstanceRecord;
use crate::web::auth::CurrentUser;
use crate::web::csrf::CsrfToken;
use crate::web::error::WebResult;
use crate::web::state::AppState;

/// How far back stopped instances are still listed.
const STOPPED_SHOWN_FOR: chrono::Duration = chrono::Duration::hours(24);

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
    fn new(
        instance: InstanceRecord,
        now: chrono::DateTime<chrono::Utc>,
        me: &str,
        leader: Option<&str>,
    ) -> Self {
        let state = if instance.stopped_at.is_some() {
            "stopped"
        } else if instance.is_alive(now, LEASE) {
            "alive"
        } else {
            "gone (lease ran out)"
        };
        Self {
            this_one: instance.id == me,
            leader: leader == Some(instance.id.as_str()) && state == "alive",
            kind: instance.kind.as_str(),
            started: TimeView::new(instance.started_at),
            heartbeat: TimeView::new(instance.heartbeat_at),
            silent_secs: (now - instance.heartbeat_at).num_seconds().max(0),
            state,
            running_runs: instance.running_runs,
            id: instance.id,
            host: instance.host,
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
    let now = crate::instance::now(&state.store, &state.clock).await?;
    let me = state.scheduler.instance_id().to_owned();
    let leader = state
        .store
        .leadership(crate::instance::leader::SCHEDULER_LEASE)
        .await?
        .filter(|term| term.expires_at > now)
        .map(|term| term.holder);
    let instances = state
        .store
        .instances(now - STOPPED_SHOWN_FOR)
        .await?
        .into_iter()
        .map(|instance| InstanceRow::new(instance, now, &me, leader.as_deref()))
        .collect();
    Ok(InstancesPage {
        chrome: Chrome::new(user, csrf),
        instances,
        lease_secs: LEASE.num_seconds(),
    })
}
