//! The job page (`GET /jobs/{name}`): its summary and actions, the schedule form,
//! settings (file default vs operator override), a duration chart of the last 100 runs,
//! and the run history paged by keyset (`?before=<run id>`).
//!
//! The summary (`GET /jobs/{name}/summary`, also embedded in the page) re-fetches itself
//! when a save answers `HX-Trigger: job-changed`, so an edit shows without a reload.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::settings::{FieldErrors, FormValues, ScheduleForm};
use crate::job::{SETTINGS, setting_text};
use crate::secrets::RedactionList;
use crate::store::{JobRecord, JobState, RunFilter, RunRecord, RunStatus, Trigger};
use crate::web::auth::CurrentUser;
use crate::web::csrf::CsrfToken;
use crate::web::error::{WebError, WebResult};
use crate::web::htmx::{aims_at, push_url};
use crate::web::lookup::load_job;
use crate::web::pages::chains::{LinkedJob, links_of_job};
use crate::web::pages::chrome::{
    Badge, Chrome, TimeView, encode, format_ms, non_empty, query_string,
};
use crate::web::pages::dashboard::describe_schedule;
use crate::web::pages::svg::duration_chart;
use crate::web::redacted::ShownSettings;
use crate::web::state::AppState;

/// Runs per history page.
pub const PAGE_SIZE: u32 = 50;
/// Runs in the duration chart.
pub const CHART_RUNS: u32 = 100;

/// History filters and page, as in the URL.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct JobQuery {
    pub status: Option<String>,
    pub trigger: Option<String>,
    pub before: Option<i64>,
}

/// One setting: its value in force, the file's and the operator's, with secrets in
/// params redacted.
#[derive(Debug, Clone)]
pub struct SettingRow {
    pub field: &'static str,
    pub effective: String,
    /// Whether the setting has a value in force at all: an unset one shows "—" with no
    /// "default" badge, since there is no default value to speak of.
    pub is_set: bool,
    pub default: String,
    pub overridden: Option<String>,
}

/// One run of the history table.
#[derive(Debug, Clone)]
pub struct HistoryRow {
    pub id: i64,
    pub badge: Badge,
    pub trigger: String,
    pub attempt: u32,
    /// Empty for a run that has not started (queued) or never did.
    pub started: Option<TimeView>,
    pub duration: String,
    pub checked: i64,
    pub updated: i64,
}

/// The job's header: what it is, when it runs next, its version, and the actions the
/// viewer may take.
#[derive(Debug, Clone)]
pub struct JobSummary {
    pub name: String,
    /// The name percent-encoded for URLs.
    pub url_name: String,
    pub description: String,
    pub handler: String,
    pub schedule: String,
    pub state: Badge,
    pub next: Option<TimeView>,
    pub version: i64,
    pub paused: bool,
    /// The run in progress, if any (its cancel button shows).
    pub live_run: Option<i64>,
    /// Whether the action buttons show (operators and admins).
    pub can_operate: bool,
    pub csrf: String,
}

/// The summary alone, for its htmx refresh.
#[derive(Template, WebTemplate)]
#[template(path = "job_summary_partial.html")]
pub struct JobSummaryPartial {
    pub summary: JobSummary,
}

/// The job page.
#[derive(Template, WebTemplate)]
#[template(path = "job.html")]
pub struct JobPage {
    pub chrome: Chrome,
    pub name: String,
    pub summary: JobSummary,
    pub schedule_form: ScheduleForm,
    pub settings: Vec<SettingRow>,
    pub chart_svg: String,
    /// The jobs this one follows, and those that follow it (`after`, `after_failure`).
    pub upstream: Vec<LinkedJob>,
    pub downstream: Vec<LinkedJob>,
    pub runs: RunsView,
}

/// The id of the run history's element, which its filters and pages swap.
const RUNS: &str = "runs";

/// The run history with its filters and pages: part of the job page, and alone the
/// answer to an htmx filter or page aimed at `#runs`.
#[derive(Template, WebTemplate)]
#[template(path = "job_runs_partial.html")]
pub struct RunsView {
    pub name: String,
    pub history: Vec<HistoryRow>,
    /// Each status filter choice, and whether it is chosen.
    pub statuses: Vec<(&'static str, bool)>,
    /// Each trigger filter choice, and whether it is chosen.
    pub triggers: Vec<(&'static str, bool)>,
    pub next_url: Option<String>,
    pub first_url: Option<String>,
    /// The address of what this view shows, for the address bar after an htmx swap.
    pub url: String,
}

// The template escapes every value it shows; the job page writes its output as it is.
impl askama::filters::HtmlSafe for RunsView {}

impl RunsView {
    /// The history of `job` filtered by `status` and `trigger` from `before`: `page` holds
    /// its runs, newest first, one more than a page when an older page exists.
    fn new(
        job: &str,
        mut page: Vec<RunRecord>,
        status: Option<RunStatus>,
        trigger: Option<Trigger>,
        before: Option<i64>,
    ) -> Self {
        let has_more = page.len() > PAGE_SIZE as usize;
        page.truncate(PAGE_SIZE as usize);
        let url = |before: Option<String>| {
            format!(
                "/jobs/{}{}",
                encode(job),
                query_string(&[
                    ("status", status.map(RunStatus::as_str)),
                    ("trigger", trigger.map(Trigger::as_str)),
                    ("before", before.as_deref()),
                ])
            )
        };
        Self {
            name: job.to_owned(),
            history: page.iter().map(history_row).collect(),
            statuses: STATUSES
                .iter()
                .map(|s| (s.as_str(), Some(*s) == status))
                .collect(),
            triggers: TRIGGERS
                .iter()
                .map(|t| (t.as_str(), Some(*t) == trigger))
                .collect(),
            next_url: has_more
                .then(|| page.last().map(|run| url(Some(run.id.to_string()))))
                .flatten(),
            first_url: before.map(|_| url(None)),
            url: url(before.map(|before| before.to_string())),
        }
    }
}

const STATUSES: [RunStatus; 10] = [
    RunStatus::Queued,
    RunStatus::Running,
    RunStatus::Succeeded,
    RunStatus::Failed,
    RunStatus::Retrying,
    RunStatus::Dead,
    RunStatus::Cancelled,
    RunStatus::TimedOut,
    RunStatus::Interrupted,
    RunStatus::Skipped,
];
const TRIGGERS: [Trigger; 5] = [
    Trigger::Schedule,
    Trigger::Manual,
    Trigger::Retry,
    Trigger::Dependency,
    Trigger::CatchUp,
];

pub(in crate::web::pages) async fn job_page(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(query): Query<JobQuery>,
) -> WebResult<Response> {
    let job = load_job(&state, &name).await?;
    let status = parse_filter::<RunStatus>("status", non_empty(&query.status))?;
    let trigger = parse_filter::<Trigger>("trigger", non_empty(&query.trigger))?;
    let filter = RunFilter {
        job_id: Some(job.id),
        status,
        trigger,
        before: query.before,
        limit: PAGE_SIZE + 1,
        ..RunFilter::default()
    };
    if aims_at(&headers, RUNS) {
        let page = state.store.runs(&filter).await?;
        let runs = RunsView::new(&job.name, page, status, trigger, query.before);
        let url = runs.url.clone();
        return Ok(push_url(runs.into_response(), &url));
    }
    // The chart's runs come as one aggregate value rather than a row each: the driver's
    // cost per row and per column is most of what reading them costs.
    let bars = state.store.run_bars(job.id, CHART_RUNS).await?;
    let page = state.store.runs(&filter).await?;
    let (upstream, downstream) = links_of_job(&state, &job).await?;
    let chrome = Chrome::new(user, csrf);
    let latest = bars.first().map(|bar| bar.status);
    let summary = summarise(&state, &job, latest, &chrome);
    let schedule_form = ScheduleForm::new(
        &job,
        &FormValues::of_job(&job),
        &FieldErrors::new(),
        &chrome.csrf,
        chrome.is_operator(),
    );
    Ok(JobPage {
        chrome,
        summary,
        schedule_form,
        settings: setting_rows(&job, &state.redaction),
        chart_svg: duration_chart(&bars),
        upstream,
        downstream,
        runs: RunsView::new(&job.name, page, status, trigger, query.before),
        name: job.name,
    }
    .into_response())
}

/// `GET /jobs/{name}/summary`: the summary block alone.
pub(in crate::web::pages) async fn summary_partial(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path(name): Path<String>,
) -> WebResult<JobSummaryPartial> {
    let job = load_job(&state, &name).await?;
    // The latest run's status only: the summary's state needs no more.
    let latest = state.store.run_bars(job.id, 1).await?;
    let chrome = Chrome::new(user, csrf);
    Ok(JobSummaryPartial {
        summary: summarise(&state, &job, latest.first().map(|bar| bar.status), &chrome),
    })
}

/// The summary of `job` given the status of its latest run.
fn summarise(
    state: &AppState,
    job: &JobRecord,
    latest: Option<RunStatus>,
    chrome: &Chrome,
) -> JobSummary {
    // The scheduler knows what runs in this process; the store may lag a moment.
    let live_run = state
        .scheduler
        .live_runs()
        .all()
        .into_iter()
        .find(|run| run.job_id == job.id)
        .map(|run| run.run_id);
    let state = JobState::from_latest_status(job, latest);
    summary_of(job, Badge::job_state(state), live_run, chrome)
}

/// The summary of `job` in `state`, with `live_run` in progress, as seen by `chrome`'s user.
pub fn summary_of(
    job: &JobRecord,
    state: Badge,
    live_run: Option<i64>,
    chrome: &Chrome,
) -> JobSummary {
    JobSummary {
        name: job.name.clone(),
        url_name: encode(&job.name),
        description: job
            .effective_settings()
            .ok()
            .and_then(|s| s.description)
            .unwrap_or_default(),
        handler: job.defaults.handler.clone(),
        schedule: describe_schedule(job),
        state,
        next: job.next_run_at.map(TimeView::new),
        version: job.version,
        paused: job.paused,
        live_run,
        can_operate: chrome.is_operator(),
        csrf: chrome.csrf.clone(),
    }
}

fn parse_filter<T: std::str::FromStr>(field: &str, value: Option<&str>) -> WebResult<Option<T>> {
    value
        .map(|v| {
            v.parse::<T>()
                .map_err(|_| WebError::BadRequest(format!("unknown {field} {v:?}")))
        })
        .transpose()
}

/// The settings shown, in the order of the settings file: the description, every
/// setting an operator may change, and the params.
fn shown_fields() -> impl Iterator<Item = &'static str> {
    std::iter::once("description")
        .chain(SETTINGS.iter().map(|setting| setting.name))
        .chain(["params"])
}

/// Each setting with its effective value, its file default and the override (if any),
/// redacted with `redaction`.
pub fn setting_rows(job: &JobRecord, redaction: &RedactionList) -> Vec<SettingRow> {
    let shown = ShownSettings::of(job, redaction);
    shown_fields()
        .map(|field| {
            let effective = shown.effective.get(field);
            SettingRow {
                field,
                effective: show(effective),
                is_set: !matches!(effective, None | Some(serde_json::Value::Null)),
                default: show(shown.defaults.get(field)),
                overridden: shown.overrides.get(field).map(|value| show(Some(value))),
            }
        })
        .collect()
}

/// A JSON value as text: strings bare, absent as "—", the rest as compact JSON.
fn show(value: Option<&serde_json::Value>) -> String {
    setting_text(value).unwrap_or_else(|| "—".into())
}

fn history_row(run: &RunRecord) -> HistoryRow {
    HistoryRow {
        id: run.id,
        badge: Badge::status(run.status),
        trigger: run.trigger.as_str().replace('_', " "),
        attempt: run.attempt,
        started: run.started_at.map(TimeView::new),
        duration: run.duration_ms.map_or_else(|| "—".into(), format_ms),
        checked: run.items_checked,
        updated: run.items_updated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobSettings;
    use crate::web::auth::Role;
    use chrono::{DateTime, Utc};

    const HOSTILE: &str = "\"><img src=x onerror=alert(1)>";

    fn job() -> JobRecord {
        let mut overrides = serde_json::Map::new();
        overrides.insert("every".into(), serde_json::json!("10m"));
        JobRecord {
            id: 1,
            name: "sync".into(),
            defaults: JobSettings {
                name: "sync".into(),
                handler: "demo".into(),
                every: Some("5m".into()),
                description: Some(HOSTILE.into()),
                params: Some(serde_json::json!({"x": HOSTILE})),
                ..JobSettings::default()
            },
            overrides,
            paused: false,
            removed_at: None,
            next_run_at: None,
            version: 3,
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    #[test]
    fn settings_show_the_default_and_the_override_side_by_side() {
        let rows = setting_rows(&job(), &RedactionList::default());
        let every = rows.iter().find(|r| r.field == "every").expect("every");
        assert_eq!(
            (every.effective.as_str(), every.default.as_str()),
            ("10m", "5m")
        );
        assert_eq!(every.overridden.as_deref(), Some("10m"));
        let timeout = rows.iter().find(|r| r.field == "timeout").expect("timeout");
        assert_eq!(
            (timeout.effective.as_str(), timeout.overridden.as_deref()),
            ("—", None)
        );
    }

    #[test]
    fn the_job_page_escapes_descriptions_and_params() {
        let mut job = job();
        job.name = HOSTILE.into();
        let chrome = Chrome::new(
            CurrentUser {
                id: 1,
                name: "a".into(),
                role: Role::Admin,
            },
            CsrfToken("t".into()),
        );
        let page = JobPage {
            name: HOSTILE.into(),
            summary: summary_of(&job, Badge::new("enabled", "ok"), Some(9), &chrome),
            schedule_form: ScheduleForm::new(
                &job,
                &FormValues::of_job(&job),
                &FieldErrors::new(),
                "t",
                true,
            ),
            chrome,
            settings: setting_rows(&job, &RedactionList::default()),
            chart_svg: duration_chart(&[]),
            upstream: vec![LinkedJob {
                name: HOSTILE.into(),
                url_name: encode(HOSTILE),
                how: "after",
                last: Badge::new("succeeded", "ok"),
            }],
            downstream: Vec::new(),
            runs: RunsView::new(HOSTILE, vec![], Some(RunStatus::Failed), None, None),
        };
        let html = page.render().expect("renders");
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(html.contains("<section id=\"schedule\""));
        assert!(
            html.contains("action=\"/runs/9/cancel\""),
            "a live run can be cancelled"
        );
        assert!(html.contains("/summary\""), "the summary refreshes itself");
        assert!(
            html.contains("href=\"/users\""),
            "admins see the Users link"
        );
    }
}
