//! The dashboard (`GET /`): counts, then every job in one table with its state, last and
//! next run, live progress and a 24-hour outcome strip. Filters and the page live in the
//! URL; htmx polls the same URL and swaps only the table (and the counts, out of band).
//!
//! A constant number of queries whatever the number of jobs: jobs, latest runs, running
//! runs, the day's status counts, and the outcome buckets of the jobs on this page.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::Deserialize;

use super::chrome::{Badge, Chrome, TimeView, encode, format_ms, non_empty, query_string};
use super::svg::{BucketCounts, outcome_strip};
use crate::schedule::Schedule;
use crate::store::{JobRecord, JobRuns, JobState, RunStatus, Trouble};
use crate::web::auth::CurrentUser;
use crate::web::csrf::CsrfToken;
use crate::web::error::WebResult;
use crate::web::htmx::is_htmx;
use crate::web::state::AppState;

mod listing;

use listing::{Listing, list_by_state, list_page};

/// Jobs per page.
pub const PAGE_SIZE: usize = 50;
/// The strip's buckets: 24 of one hour.
const STRIP_BUCKETS: usize = 24;

/// The filters and page, as in the URL.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DashboardQuery {
    /// Name contains (case-insensitive).
    pub q: Option<String>,
    pub handler: Option<String>,
    /// One of [`STATES`]' values.
    pub state: Option<String>,
    /// Keyset: jobs whose name sorts after this.
    pub after: Option<String>,
}

/// The state filter's choices: the state (its value is [`JobState::as_str`]), text.
pub const STATES: [(JobState, &str); 6] = [
    (JobState::Enabled, "Enabled"),
    (JobState::Paused, "Paused"),
    (JobState::Running { queued: false }, "Running"),
    (JobState::NeedsAttention, "Needs attention"),
    (JobState::Disabled, "Disabled"),
    (JobState::Removed, "Removed"),
];

/// The counts at the top.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub running: usize,
    /// Runs due but waiting for a free slot.
    pub queued: usize,
    pub failed_24h: u64,
    pub attention: usize,
    /// Jobs with no success within their `expect_success_within` (a `late` alert went out).
    pub overdue: usize,
    /// The runs view of the failures counted in `failed_24h` (the same window).
    pub failed_url: String,
}

/// The filter form's values.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub q: String,
    pub handler: String,
    pub state: String,
    /// Each handler, and whether it is the one chosen.
    pub handlers: Vec<(String, bool)>,
    /// Each state's value, text, and whether it is the one chosen.
    pub states: Vec<(&'static str, &'static str, bool)>,
}

/// A running job's progress.
#[derive(Debug, Clone)]
pub struct ProgressView {
    pub value: u64,
    pub max: Option<u64>,
    pub text: String,
}

/// A job's last run, in brief.
#[derive(Debug, Clone)]
pub struct LastRunView {
    pub run_id: i64,
    pub badge: Badge,
    pub when: TimeView,
    pub duration: String,
    pub checked: i64,
    pub updated: i64,
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub name: String,
    /// The name percent-encoded for the link.
    pub name_url: String,
    pub handler: String,
    pub schedule: String,
    pub state: Badge,
    pub last: Option<LastRunView>,
    pub next: Option<TimeView>,
    pub progress: Option<ProgressView>,
    /// No success within its `expect_success_within`.
    pub overdue: bool,
    /// Server-drawn SVG; holds no user text.
    pub strip_svg: String,
}

/// The table and its paging links.
#[derive(Debug, Clone, Default)]
pub struct TableView {
    pub rows: Vec<JobRow>,
    /// This view's URL, polled by htmx.
    pub refresh_url: String,
    pub next_url: Option<String>,
    pub first_url: Option<String>,
}

/// The full page.
#[derive(Template, WebTemplate)]
#[template(path = "dashboard.html")]
pub struct DashboardPage {
    pub chrome: Chrome,
    pub counts: Counts,
    pub filters: Filters,
    pub table: Arc<TableView>,
    pub oob: bool,
}

/// The table alone (htmx), with the counts swapped out of band.
#[derive(Template, WebTemplate)]
#[template(path = "dashboard_table_partial.html")]
pub struct DashboardTable {
    pub counts: Counts,
    pub table: Arc<TableView>,
    pub oob: bool,
}

pub(super) async fn dashboard(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    headers: HeaderMap,
    Query(query): Query<DashboardQuery>,
) -> WebResult<Response> {
    let view = cached_view(&state, &query).await?;
    let (q, handler, state_filter) = (
        non_empty(&query.q),
        non_empty(&query.handler),
        non_empty(&query.state),
    );
    if is_htmx(&headers) {
        return Ok(DashboardTable {
            counts: view.counts.clone(),
            table: Arc::clone(&view.table),
            oob: true,
        }
        .into_response());
    }
    let filters = Filters {
        q: q.unwrap_or_default().to_owned(),
        handler: handler.unwrap_or_default().to_owned(),
        state: state_filter.unwrap_or_default().to_owned(),
        handlers: view
            .handlers
            .iter()
            .map(|h| (h.clone(), Some(h.as_str()) == handler))
            .collect(),
        states: STATES
            .iter()
            .map(|(state, text)| {
                let value = state.as_str();
                (value, *text, Some(value) == state_filter)
            })
            .collect(),
    };
    Ok(DashboardPage {
        chrome: Chrome::new(user, csrf),
        counts: view.counts.clone(),
        filters,
        table: Arc::clone(&view.table),
        oob: false,
    }
    .into_response())
}

/// What the dashboard shows for one query, the same for every viewer.
pub struct DashboardView {
    counts: Counts,
    table: Arc<TableView>,
    handlers: Vec<String>,
}

async fn cached_view(state: &AppState, query: &DashboardQuery) -> WebResult<Arc<DashboardView>> {
    let key = query_string(&[
        ("q", non_empty(&query.q)),
        ("handler", non_empty(&query.handler)),
        ("state", non_empty(&query.state)),
        ("after", non_empty(&query.after)),
    ]);
    // Read before building: an event during the build makes the next request rebuild.
    let generation = state.scheduler.generation();
    let now = state.clock.now();
    if let Some(view) = state.dashboard.fresh(&key, generation, now) {
        return Ok(view);
    }
    let view = Arc::new(build_view(state, query).await?);
    state
        .dashboard
        .keep(key, generation, now, Arc::clone(&view));
    Ok(view)
}

async fn build_view(state: &AppState, query: &DashboardQuery) -> WebResult<DashboardView> {
    let now = Utc::now();
    let since = day_start(now);
    let running = state.store.running_runs().await?;
    let status_counts = state.store.status_counts_since(since).await?;
    let Listing {
        mut page,
        latest,
        attention,
        handlers,
    } = match non_empty(&query.state) {
        Some(_) => list_by_state(state, query, &running).await?,
        None => list_page(state, query).await?,
    };
    let runs = JobRuns::new(&latest, &running);
    let overdue: HashSet<String> = state
        .store
        .alerts()
        .jobs_in_trouble()
        .await?
        .into_iter()
        .filter(|(_, trouble)| *trouble == Trouble::Late)
        .map(|(job, _)| job)
        .collect();
    let counts = Counts {
        overdue: overdue.len(),
        running: running
            .iter()
            .filter(|run| run.status == RunStatus::Running)
            .count(),
        queued: running
            .iter()
            .filter(|run| run.status == RunStatus::Queued)
            .count(),
        failed_24h: status_counts
            .iter()
            .filter(|(status, _)| status.is_failure())
            .map(|(_, count)| count)
            .sum(),
        attention,
        failed_url: format!(
            "/runs{}",
            query_string(&[
                ("status", Some("failures")),
                (
                    "from",
                    Some(&since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                ),
            ])
        ),
    };
    let has_more = page.len() > PAGE_SIZE;
    page.truncate(PAGE_SIZE);

    let ids: Vec<i64> = page.iter().map(|job| job.id).collect();
    let buckets = state
        .store
        .outcome_buckets(&ids, since, Duration::hours(1))
        .await?;
    let mut strips: HashMap<i64, Vec<BucketCounts>> = HashMap::new();
    for bucket in buckets {
        let strip = strips
            .entry(bucket.job_id)
            .or_insert_with(|| vec![BucketCounts::default(); STRIP_BUCKETS]);
        if let Some(cell) = strip.get_mut(bucket.bucket as usize) {
            cell.add(bucket.status, bucket.runs);
        }
    }
    let live = state.scheduler.live_runs();
    let rows = page
        .iter()
        .map(|job| {
            let progress = runs.going(job.id).and_then(|run| {
                let progress = live.get(run.id)?.progress();
                Some(progress_view(progress))
            });
            let strip = strips
                .remove(&job.id)
                .unwrap_or_else(|| vec![BucketCounts::default(); STRIP_BUCKETS]);
            let mut row = job_row(job, &runs, progress, outcome_strip(&strip, since, 60));
            row.overdue = overdue.contains(&job.name);
            row
        })
        .collect();

    let (q, handler, state_filter) = (
        non_empty(&query.q),
        non_empty(&query.handler),
        non_empty(&query.state),
    );
    let url = |after: Option<&str>| {
        format!(
            "/{}",
            query_string(&[
                ("q", q),
                ("handler", handler),
                ("state", state_filter),
                ("after", after)
            ])
        )
    };
    let table = TableView {
        refresh_url: url(non_empty(&query.after)),
        next_url: has_more
            .then(|| page.last().map(|job| url(Some(&job.name))))
            .flatten(),
        first_url: non_empty(&query.after).map(|_| url(None)),
        rows,
    };
    Ok(DashboardView {
        counts,
        table: Arc::new(table),
        handlers,
    })
}

/// The strip's window: the 24 whole hours up to the end of the current hour.
fn day_start(now: DateTime<Utc>) -> DateTime<Utc> {
    let hour = now.duration_trunc(Duration::hours(1)).unwrap_or(now);
    hour - Duration::hours(STRIP_BUCKETS as i64 - 1)
}

fn progress_view(progress: crate::job::Progress) -> ProgressView {
    let text = match progress.total {
        Some(total) if total > 0 => format!(
            "{} of {} ({}%)",
            progress.done,
            total,
            progress.done.min(total) * 100 / total
        ),
        _ => format!("{} checked, {} updated", progress.checked, progress.updated),
    };
    ProgressView {
        value: progress.done,
        max: progress.total.filter(|total| *total > 0),
        text,
    }
}

/// The plain-words schedule of a job's effective settings.
pub fn describe_schedule(job: &JobRecord) -> String {
    match job.effective_settings() {
        Ok(settings) => Schedule::parse(
            settings.every.as_deref(),
            settings.cron.as_deref(),
            settings.timezone.as_deref(),
        )
        .map(|schedule| schedule.describe())
        .unwrap_or_else(|error| format!("invalid schedule: {error}")),
        Err(_) => "unreadable settings".into(),
    }
}

fn job_row(
    job: &JobRecord,
    runs: &JobRuns<'_>,
    progress: Option<ProgressView>,
    strip_svg: String,
) -> JobRow {
    let last = runs.latest(job.id).map(|run| LastRunView {
        run_id: run.id,
        badge: Badge::status(run.status),
        // A queued run, or one that never started, is placed at its slot.
        when: TimeView::new(run.started_at.unwrap_or(run.scheduled_for)),
        duration: run.duration_ms.map_or_else(|| "—".into(), format_ms),
        checked: run.items_checked,
        updated: run.items_updated,
    });
    JobRow {
        name: job.name.clone(),
        name_url: encode(&job.name),
        handler: job.defaults.handler.clone(),
        schedule: describe_schedule(job),
        state: Badge::job_state(runs.state(job)),
        last,
        next: job.next_run_at.map(TimeView::new),
        progress,
        overdue: false,
        strip_svg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobSettings;
    use crate::web::auth::Role;

    const HOSTILE: &str = "\"><img src=x onerror=alert(1)>";

    pub(crate) fn record(id: i64, name: &str, handler: &str) -> JobRecord {
        JobRecord {
            id,
            name: name.into(),
            defaults: JobSettings {
                name: name.into(),
                handler: handler.into(),
                every: Some("5m".into()),
                ..JobSettings::default()
            },
            overrides: serde_json::Map::new(),
            paused: false,
            removed_at: None,
            next_run_at: None,
            version: 1,
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    fn chrome() -> Chrome {
        Chrome::new(
            CurrentUser {
                id: 1,
                name: HOSTILE.into(),
                role: Role::Viewer,
            },
            CsrfToken("tok".into()),
        )
    }

    #[test]
    fn the_dashboard_escapes_job_names_handlers_and_filters() {
        let job = record(1, HOSTILE, HOSTILE);
        let latest = HashMap::new();
        let runs = JobRuns::new(&latest, &[]);
        let row = job_row(&job, &runs, None, String::new());
        let page = DashboardPage {
            chrome: chrome(),
            counts: Counts::default(),
            filters: Filters {
                q: HOSTILE.into(),
                handlers: vec![(HOSTILE.into(), true)],
                ..Filters::default()
            },
            table: Arc::new(TableView {
                rows: vec![row],
                refresh_url: "/".into(),
                ..TableView::default()
            }),
            oob: false,
        };
        let html = page.render().expect("renders");
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(
            html.contains("&#34;&#62;&#60;img src=x onerror=alert(1)&#62;")
                || html.contains("&quot;&gt;&lt;img"),
            "{html}"
        );
        assert!(html.contains("every 5 minutes"));
        assert!(
            !html.contains("href=\"/users\""),
            "viewers see no Users link"
        );
    }

    #[test]
    fn the_partial_carries_the_counts_out_of_band_and_keeps_polling() {
        let table = DashboardTable {
            counts: Counts {
                running: 2,
                queued: 0,
                failed_24h: 3,
                attention: 1,
                overdue: 0,
                failed_url: "/runs?status=failures".into(),
            },
            table: Arc::new(TableView {
                refresh_url: "/?q=a".into(),
                ..TableView::default()
            }),
            oob: true,
        };
        let html = table.render().expect("renders");
        assert!(html.contains("hx-swap-oob=\"true\""));
        assert!(html.contains("hx-get=\"/?q=a\""));
        assert!(html.contains("hx-trigger=\"every 5s\""));
        assert!(!html.contains("<form"), "the filter form is never swapped");
    }
}
