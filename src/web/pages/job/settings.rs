//! Changing a job's settings from the console: the schedule form, its save and reset,
//! and the next-fires preview.
//!
//! Input is checked twice: the form for shapes (known kinds and policies, lengths, from
//! [`crate::job::SETTINGS`]), then the engine for meaning (`SchedulerHandle::edit_job` parses the
//! schedule and durations and checks the job as a whole). Either way an invalid form
//! comes back with the message next to its field and nothing saved.

mod form;
mod view;

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::job::Setting;
use crate::schedule::Schedule;
use crate::scheduler::{EditError, JobPatch};
use crate::store::JobRecord;
use crate::web::auth::{CurrentUser, Role};
use crate::web::csrf::CsrfToken;
use crate::web::error::{WebError, WebResult};
use crate::web::htmx::{is_htmx, trigger};
use crate::web::lookup::load_job;
use crate::web::pages::chrome::Chrome;
use crate::web::state::AppState;

use form::SettingsForm;
use form::patch_from;
pub use view::{FieldErrors, FormValues, ScheduleForm};

/// The event htmx listeners on the job page and dashboard refresh on.
const JOB_CHANGED: &str = "job-changed";

/// The form (partial for htmx, a page otherwise) with `status`.
fn form_response(
    status: StatusCode,
    headers: &HeaderMap,
    job: &JobRecord,
    values: &FormValues,
    errors: &FieldErrors,
    chrome: &Chrome,
) -> Response {
    let form = ScheduleForm::new(job, values, errors, &chrome.csrf, true);
    if is_htmx(headers) {
        (status, form).into_response()
    } else {
        let page = view::StandalonePage {
            chrome: chrome.clone(),
            form,
        };
        (status, page).into_response()
    }
}

fn saved_notice(job: &JobRecord, what: &str) -> String {
    match job.next_run_at {
        Some(next) if !job.paused => format!(
            "{what}; next run at {} UTC.",
            next.format("%Y-%m-%d %H:%M:%S")
        ),
        _ => format!("{what}; the job is not scheduled (paused or disabled)."),
    }
}

/// After a change: the re-rendered form for htmx (with the event that refreshes the
/// rest of the page), a redirect to the job page otherwise.
fn changed_response(headers: &HeaderMap, job: &JobRecord, notice: &str, csrf: &str) -> Response {
    if is_htmx(headers) {
        let form = ScheduleForm::new(
            job,
            &FormValues::of_job(job),
            &FieldErrors::new(),
            csrf,
            true,
        )
        .with_notice(Some(notice.to_owned()));
        trigger(form.into_response(), JOB_CHANGED)
    } else {
        Redirect::to(&format!("/jobs/{}", job.name)).into_response()
    }
}

/// What a refused edit shows: field messages (422), or the current values with the
/// conflict message (409).
async fn refused(
    state: &AppState,
    headers: &HeaderMap,
    job: &JobRecord,
    values: &FormValues,
    error: EditError,
    chrome: &Chrome,
) -> WebResult<Response> {
    match error {
        EditError::Invalid(settings) => {
            // Problems outside the form's fields (the handler, the params, …) still need
            // saying: above the form.
            let mut errors = FieldErrors::new();
            for (field, message) in settings.fields {
                let shown = matches!(field, "kind" | "schedule")
                    || Setting::in_form().any(|(setting, _)| setting.name == field);
                let field = if shown { field } else { "form" };
                errors.insert(field.to_owned(), message);
            }
            Ok(form_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                headers,
                job,
                values,
                &errors,
                chrome,
            ))
        }
        EditError::Conflict => {
            let current = load_job(state, &job.name).await?;
            let errors = FieldErrors::from([("form".to_owned(), EditError::Conflict.to_string())]);
            Ok(form_response(
                StatusCode::CONFLICT,
                headers,
                &current,
                &FormValues::of_job(&current),
                &errors,
                chrome,
            ))
        }
        other => Err(WebError::from(other)),
    }
}

pub(in crate::web::pages) async fn save_settings(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<SettingsForm>,
) -> WebResult<Response> {
    user.require(Role::Operator)?;
    let chrome = Chrome::new(user.clone(), csrf);
    let job = load_job(&state, &name).await?;
    let values = form.values.clone();
    let mut errors = form.shape_errors();
    let patch = if errors.is_empty() {
        patch_from(&values).unwrap_or_else(|more| {
            errors.extend(more);
            JobPatch::default()
        })
    } else {
        JobPatch::default()
    };
    // The form's version, so that an edit made from a stale page is refused.
    let shown = JobRecord {
        version: form.version,
        ..job.clone()
    };
    if !errors.is_empty() {
        return Ok(form_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            &headers,
            &shown,
            &values,
            &errors,
            &chrome,
        ));
    }
    match state
        .scheduler
        .edit_job(&name, patch, form.version, &user.name)
        .await
    {
        Ok(saved) => Ok(changed_response(
            &headers,
            &saved,
            &saved_notice(&saved, "Saved"),
            &chrome.csrf,
        )),
        Err(error) => refused(&state, &headers, &shown, &values, error, &chrome).await,
    }
}

/// The version a button's form was rendered at.
#[derive(Debug, Deserialize)]
pub(crate) struct ResetForm {
    version: i64,
    /// One field, `schedule`, or empty for every override.
    #[serde(default)]
    field: String,
}

pub(in crate::web::pages) async fn reset(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<ResetForm>,
) -> WebResult<Response> {
    user.require(Role::Operator)?;
    let chrome = Chrome::new(user.clone(), csrf);
    let field = Some(form.field.trim()).filter(|field| !field.is_empty());
    match state
        .scheduler
        .reset_job(&name, field, form.version, &user.name)
        .await
    {
        Ok(saved) => {
            let notice = saved_notice(&saved, "Reset to the file defaults");
            Ok(changed_response(&headers, &saved, &notice, &chrome.csrf))
        }
        Err(error) => {
            // Read only when refused: a reset that succeeds returns the job as saved.
            let job = load_job(&state, &name).await?;
            let values = FormValues::of_job(&job);
            refused(&state, &headers, &job, &values, error, &chrome).await
        }
    }
}

/// The schedule typed into the form so far.
#[derive(Debug, Deserialize)]
pub(crate) struct PreviewQuery {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    every: String,
    #[serde(default)]
    cron: String,
    #[serde(default)]
    timezone: String,
}

/// How many fires the preview lists.
const PREVIEW_FIRES: usize = 5;

pub(in crate::web::pages) async fn preview(
    State(state): State<AppState>,
    _user: CurrentUser,
    Path(name): Path<String>,
    Query(query): Query<PreviewQuery>,
) -> WebResult<Response> {
    load_job(&state, &name).await?;
    let text = |value: &str| {
        Some(value.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let parsed = if query.kind == "upstream" {
        Ok(Schedule::Upstream)
    } else if query.kind == "cron" {
        Schedule::parse(
            None,
            Some(query.cron.trim()),
            text(&query.timezone).as_deref(),
        )
    } else {
        Schedule::parse(Some(query.every.trim()), None, None)
    };
    let page = match parsed {
        Ok(schedule) => view::PreviewTemplate {
            description: Some(schedule.describe()),
            fires: schedule
                .upcoming(state.clock.now(), PREVIEW_FIRES)
                .into_iter()
                .map(|at| {
                    (
                        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                    )
                })
                .collect(),
            error: None,
        },
        Err(error) => view::PreviewTemplate {
            description: None,
            fires: Vec::new(),
            error: Some(error.message),
        },
    };
    let html = askama::Template::render(&page).map_err(|e| WebError::Internal(e.into()))?;
    Ok(Html(html).into_response())
}
