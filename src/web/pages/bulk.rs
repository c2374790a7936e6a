//! Bulk actions on what the runs view's filters match: retry the dead runs (each of
//! their jobs runs once now) or cancel the queued and running ones. A confirmation page
//! says how many runs the action touches first; the action itself checks that the
//! count still holds, and records one history row per job naming the runs it touched.

use std::collections::BTreeMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::chrome::{Badge, Chrome, encode};
use crate::store::{RunRecord, RunStatus};
use crate::web::auth::{CurrentUser, Role};
use crate::web::csrf::CsrfToken;
use crate::web::error::{WebError, WebResult};
use crate::web::runs_filter::{FilterFailure, RunsQuery};
use crate::web::state::AppState;

/// The most runs one bulk action touches; a filter matching more is refused, to be
/// narrowed, so that one click cannot start or stop thousands of runs unseen.
pub const BULK_MAX: usize = 500;

/// Runs listed on the confirmation page; the count covers them all.
const LISTED: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Retry,
    Cancel,
}

impl Action {
    fn parse(text: &str) -> WebResult<Self> {
        match text {
            "retry" => Ok(Action::Retry),
            "cancel" => Ok(Action::Cancel),
            _ => Err(WebError::NotFound(format!(
                "there is no bulk action {text:?}: use retry or cancel"
            ))),
        }
    }

    fn statuses(self) -> &'static [RunStatus] {
        match self {
            Action::Retry => &[RunStatus::Dead],
            Action::Cancel => &[RunStatus::Queued, RunStatus::Running],
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Action::Retry => "retry",
            Action::Cancel => "cancel",
        }
    }

    /// The history's field for it.
    fn history_field(self) -> &'static str {
        match self {
            Action::Retry => "bulk_retry",
            Action::Cancel => "bulk_cancel",
        }
    }
}

struct RunLine {
    id: i64,
    job: String,
    url_job: String,
    badge: Badge,
}

/// What happened to one job (retry) or run (cancel).
struct Outcome {
    job: String,
    url_job: String,
    /// The run started, or the run cancelled.
    run_id: Option<i64>,
    /// Why nothing was done, when nothing was.
    skipped: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "bulk.html")]
pub(crate) struct BulkPage {
    chrome: Chrome,
    action: &'static str,
    /// The filters' query string, to keep them on the way back and in the form.
    filters: String,
    count: usize,
    jobs: usize,
    listed: Vec<RunLine>,
    too_many: bool,
    /// The count changed between the confirmation and the click.
    changed_from: Option<usize>,
    /// After the action: what it did.
    outcomes: Option<Vec<Outcome>>,
    max: usize,
}

#[derive(Debug, Deserialize)]
pub(super) struct Confirmed {
    expected: usize,
}

/// The runs `action` would touch under `query`'s filters (the page is ignored), at most
/// [`BULK_MAX`] + 1.
async fn selection(
    state: &AppState,
    query: &RunsQuery,
    action: Action,
) -> WebResult<Vec<RunRecord>> {
    let mut filter = match query
        .filter(
            &state.store,
            u32::try_from(BULK_MAX + 1).unwrap_or(u32::MAX),
        )
        .await
    {
        Ok(filter) => filter,
        Err(FilterFailure::Invalid(error)) => {
            return Err(WebError::BadRequest(format!(
                "{}: {}",
                error.field, error.message
            )));
        }
        Err(FilterFailure::Store(error)) => return Err(error.into()),
    };
    filter.before = None;
    let allowed = action.statuses();
    let wanted: Vec<RunStatus> = if !filter.any_status.is_empty() {
        filter
            .any_status
            .iter()
            .copied()
            .filter(|status| allowed.contains(status))
            .collect()
    } else if let Some(status) = filter.status {
        allowed
            .iter()
            .copied()
            .filter(|allowed| *allowed == status)
            .collect()
    } else {
        allowed.to_vec()
    };
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    filter.status = None;
    filter.any_status = wanted;
    Ok(state.store.runs(&filter).await?)
}

fn page(chrome: Chrome, action: Action, query: &RunsQuery, runs: &[RunRecord]) -> BulkPage {
    let jobs: std::collections::BTreeSet<&str> =
        runs.iter().map(|run| run.job_name.as_str()).collect();
    BulkPage {
        chrome,
        action: action.as_str(),
        filters: query.filters_query(),
        count: runs.len().min(BULK_MAX),
        jobs: jobs.len(),
        listed: runs
            .iter()
            .take(LISTED)
            .map(|run| RunLine {
                id: run.id,
                job: run.job_name.clone(),
                url_job: encode(&run.job_name),
                badge: Badge::status(run.status),
            })
            .collect(),
        too_many: runs.len() > BULK_MAX,
        changed_from: None,
        outcomes: None,
        max: BULK_MAX,
    }
}

/// `GET /runs/bulk/{action}`: how many runs the action would touch, and a button.
pub(super) async fn confirm(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path(action): Path<String>,
    Query(query): Query<RunsQuery>,
) -> WebResult<BulkPage> {
    user.require(Role::Operator)?;
    let action = Action::parse(&action)?;
    let runs = selection(&state, &query, action).await?;
    Ok(page(Chrome::new(user, csrf), action, &query, &runs))
}

/// `POST /runs/bulk/{action}`: does it, if the count is still the one confirmed.
pub(super) async fn apply(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path(action): Path<String>,
    Query(query): Query<RunsQuery>,
    Form(confirmed): Form<Confirmed>,
) -> WebResult<Response> {
    user.require(Role::Operator)?;
    let action = Action::parse(&action)?;
    let runs = selection(&state, &query, action).await?;
    let actor = user.name.clone();
    let mut view = page(Chrome::new(user, csrf), action, &query, &runs);
    if view.too_many || runs.len() != confirmed.expected {
        view.changed_from = Some(confirmed.expected);
        return Ok((StatusCode::CONFLICT, view).into_response());
    }
    let outcomes = match action {
        Action::Retry => retry(&state, &runs, &actor).await,
        Action::Cancel => cancel(&state, &runs, &actor).await,
    };
    view.outcomes = Some(outcomes);
    Ok(view.into_response())
}

/// Runs each job of the dead runs once now.
async fn retry(state: &AppState, runs: &[RunRecord], actor: &str) -> Vec<Outcome> {
    let mut by_job: BTreeMap<&str, (i64, Vec<i64>)> = BTreeMap::new();
    for run in runs {
        by_job
            .entry(&run.job_name)
            .or_insert((run.job_id, Vec::new()))
            .1
            .push(run.id);
    }
    let mut outcomes = Vec::with_capacity(by_job.len());
    for (job, (job_id, dead_runs)) in by_job {
        let started = state.scheduler.run_now(job).await;
        if let Ok(run_id) = started {
            let details = serde_json::json!({ "dead_runs": dead_runs, "run": run_id });
            record(state, job_id, actor, Action::Retry, &details).await;
        }
        outcomes.push(Outcome {
            job: job.to_owned(),
            url_job: encode(job),
            run_id: started.as_ref().ok().copied(),
            skipped: started.err().map(|error| error.to_string()),
        });
    }
    outcomes
}

/// Cancels each queued or running run, wherever it runs.
async fn cancel(state: &AppState, runs: &[RunRecord], actor: &str) -> Vec<Outcome> {
    let mut cancelled: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    let mut outcomes = Vec::with_capacity(runs.len());
    for run in runs {
        let result = crate::web::cancel::cancel_run(state, run.id, actor).await;
        if result.is_ok() {
            cancelled.entry(run.job_id).or_default().push(run.id);
        }
        outcomes.push(Outcome {
            job: run.job_name.clone(),
            url_job: encode(&run.job_name),
            run_id: Some(run.id),
            skipped: result.err().map(|error| error.to_string()),
        });
    }
    for (job_id, run_ids) in cancelled {
        record(
            state,
            job_id,
            actor,
            Action::Cancel,
            &serde_json::json!({ "runs": run_ids }),
        )
        .await;
    }
    outcomes
}

async fn record(
    state: &AppState,
    job_id: i64,
    actor: &str,
    action: Action,
    details: &serde_json::Value,
) {
    if let Err(error) = state
        .store
        .actions()
        .record_action(
            job_id,
            actor,
            action.history_field(),
            details,
            state.clock.now(),
        )
        .await
    {
        // The action is done; only its history row is missing, and the log says so.
        tracing::error!(job_id, %error, action = action.as_str(), "could not record a bulk action in the history");
    }
}
