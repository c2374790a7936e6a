//! The runs view (`GET /runs`): every run of every job, newest first, filtered by
//! status, job, trigger, time range and error text, paged by keyset. The filters live
//! in the URL, so a filtered view can be linked to (the dashboard's counts do), and are
//! the API's (`GET /api/v1/runs`).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::chrome::{Badge, Chrome, TimeView, encode, format_ms};
use crate::store::RunRecord;
use crate::web::auth::CurrentUser;
use crate::web::csrf::CsrfToken;
use crate::web::error::{WebError, WebResult};
use crate::web::runs_filter::{FilterError, FilterFailure, RunsQuery};
use crate::web::state::AppState;

/// Runs per page.
pub const PAGE_SIZE: u32 = 50;

/// The status filter's choices: value, label.
const STATUSES: [(&str, &str); 12] = [
    ("", "Any status"),
    ("failures", "Any failure"),
    ("queued", "Queued"),
    ("running", "Running"),
    ("succeeded", "Succeeded"),
    ("failed", "Failed"),
    ("retrying", "Retrying"),
    ("dead", "Dead"),
    ("timed_out", "Timed out"),
    ("cancelled", "Cancelled"),
    ("interrupted", "Interrupted"),
    ("skipped", "Skipped"),
];

/// The trigger filter's choices.
const TRIGGERS: [(&str, &str); 6] = [
    ("", "Any trigger"),
    ("schedule", "Schedule"),
    ("manual", "Manual"),
    ("retry", "Retry"),
    ("dependency", "Dependency"),
    ("catch_up", "Catch-up"),
];

/// The longest error shown in a row; the run page has all of it.
const ERROR_CHARS: usize = 120;

struct RunRow {
    id: i64,
    job: String,
    url_job: String,
    badge: Badge,
    trigger: String,
    attempt: u32,
    started: Option<TimeView>,
    duration: String,
    checked: i64,
    updated: i64,
    error: String,
}

impl RunRow {
    fn of(run: &RunRecord) -> Self {
        let error = run.error_message.as_deref().unwrap_or_default();
        let error = if error.chars().count() > ERROR_CHARS {
            let cut: String = error.chars().take(ERROR_CHARS - 1).collect();
            format!("{cut}…")
        } else {
            error.to_owned()
        };
        Self {
            id: run.id,
            job: run.job_name.clone(),
            url_job: encode(&run.job_name),
            badge: Badge::status(run.status),
            trigger: run.trigger.as_str().replace('_', " "),
            attempt: run.attempt,
            started: run.started_at.map(TimeView::new),
            duration: run.duration_ms.map_or_else(|| "—".into(), format_ms),
            checked: run.items_checked,
            updated: run.items_updated,
            error,
        }
    }
}

/// The filters as shown in the form.
struct FilterForm {
    status: String,
    job: String,
    trigger: String,
    from: String,
    until: String,
    error: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "runs.html")]
pub(crate) struct RunsPage {
    chrome: Chrome,
    form: FilterForm,
    statuses: &'static [(&'static str, &'static str)],
    triggers: &'static [(&'static str, &'static str)],
    /// The filter that could not be applied, shown beside its field.
    refused: Option<FilterError>,
    runs: Vec<RunRow>,
    /// Whether any filter is set (the empty message and the "clear" link say so).
    filtered: bool,
    older: Option<String>,
    newest: Option<String>,
    /// The filters as a query string, for the bulk actions' links.
    filters_query: String,
}

/// `GET /runs`.
pub(super) async fn runs_page(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Query(query): Query<RunsQuery>,
) -> WebResult<Response> {
    if query.limit.is_some() {
        return Err(WebError::BadRequest(
            "the runs view shows 50 runs a page; limit is for the API".into(),
        ));
    }
    let form = FilterForm {
        status: query.status.clone().unwrap_or_default(),
        job: query.job.clone().unwrap_or_default(),
        trigger: query.trigger.clone().unwrap_or_default(),
        from: query.from.clone().unwrap_or_default(),
        until: query.until.clone().unwrap_or_default(),
        error: query.error.clone().unwrap_or_default(),
    };
    let filtered = !query.filters_query().is_empty();
    let mut page = RunsPage {
        chrome: Chrome::new(user, csrf),
        form,
        statuses: &STATUSES,
        triggers: &TRIGGERS,
        refused: None,
        runs: Vec::new(),
        filtered,
        older: None,
        newest: query
            .before
            .map(|_| format!("/runs{}", query.filters_query())),
        filters_query: query.filters_query(),
    };
    let filter = match query.filter(&state.store, PAGE_SIZE + 1).await {
        Ok(filter) => filter,
        Err(FilterFailure::Invalid(error)) => {
            page.refused = Some(error);
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
        Err(FilterFailure::Store(error)) => return Err(error.into()),
    };
    let mut runs = state.store.runs(&filter).await?;
    if runs.len() > PAGE_SIZE as usize {
        runs.truncate(PAGE_SIZE as usize);
        page.older = runs
            .last()
            .map(|run| format!("/runs{}", query.page_query(run.id)));
    }
    page.runs = runs.iter().map(RunRow::of).collect();
    Ok(page.into_response())
}
