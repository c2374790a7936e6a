//! The alerts page: each target (where it sends, never its URL or headers: they are
//! secrets), a button to send it a test alert, and every delivery, newest first.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use super::chrome::{Chrome, TimeView};
use crate::alerts::AlertError;
use crate::store::DeliveryRecord;
use crate::web::auth::{CurrentUser, Role};
use crate::web::csrf::CsrfToken;
use crate::web::error::{WebError, WebResult};
use crate::web::htmx::go_to;
use crate::web::state::AppState;

/// Deliveries per page.
const PAGE_SIZE: u32 = 50;

struct TargetRow {
    name: String,
    destination: String,
    events: String,
    jobs: String,
}

struct DeliveryRow {
    id: i64,
    created: TimeView,
    event: String,
    target: String,
    job: Option<String>,
    run_id: Option<i64>,
    status: &'static str,
    attempts: u32,
    last_error: String,
}

impl From<DeliveryRecord> for DeliveryRow {
    fn from(record: DeliveryRecord) -> Self {
        Self {
            id: record.id,
            created: TimeView::new(record.created_at),
            event: record.event,
            target: record.target,
            job: record.job,
            run_id: record.run_id,
            status: record.status.as_str(),
            attempts: record.attempts,
            last_error: record.last_error.unwrap_or_default(),
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "alerts.html")]
pub(crate) struct AlertsPage {
    chrome: Chrome,
    targets: Vec<TargetRow>,
    deliveries: Vec<DeliveryRow>,
    /// The `before` of the next page, when there is one.
    older: Option<i64>,
    can_test: bool,
}

#[derive(Debug, Deserialize)]
pub(super) struct PageQuery {
    before: Option<i64>,
}

/// `GET /alerts`.
pub(super) async fn alerts_page(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Query(query): Query<PageQuery>,
) -> WebResult<AlertsPage> {
    let settings = state.alerts.settings();
    let targets = settings
        .targets
        .iter()
        .map(|target| TargetRow {
            name: target.name.clone(),
            destination: target.destination.shown(),
            events: target
                .events
                .iter()
                .map(|event| event.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            jobs: match &target.jobs {
                None => "every job".to_owned(),
                Some(jobs) if jobs.is_empty() => "jobs that name it".to_owned(),
                Some(jobs) => jobs.join(", "),
            },
        })
        .collect();
    let mut deliveries: Vec<DeliveryRow> = state
        .store
        .alerts()
        .deliveries(query.before, PAGE_SIZE + 1)
        .await?
        .into_iter()
        .map(DeliveryRow::from)
        .collect();
    let older = if deliveries.len() > PAGE_SIZE as usize {
        deliveries.truncate(PAGE_SIZE as usize);
        deliveries.last().map(|row| row.id)
    } else {
        None
    };
    Ok(AlertsPage {
        can_test: user.role >= Role::Operator,
        chrome: Chrome::new(user, csrf),
        targets,
        deliveries,
        older,
    })
}

/// `POST /alerts/{target}/test`: sends a test alert in the background.
pub(super) async fn send_test(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Path(target): Path<String>,
) -> WebResult<Response> {
    user.require(Role::Operator)?;
    state
        .alerts
        .send_test(&target, &user.name)
        .map_err(|error| match error {
            AlertError::UnknownTarget(_) => WebError::NotFound(error.to_string()),
            AlertError::Busy => WebError::Conflict(error.to_string()),
        })?;
    Ok(go_to(&headers, "/alerts"))
}
