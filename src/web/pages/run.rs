//! The run page (`GET /runs/{id}`): status, attempts of the retry chain, times, counts,
//! error, and the structured log with a minimum level, a text search and field chips.
//! While the run is going, `GET /runs/{id}/log?after=<line id>` is polled by htmx: it
//! answers the new lines (appended out of band), the run's summary (swapped out of band)
//! and a fresh poller; once the run is final the poller comes back without a trigger.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::chrome::{Badge, Chrome, TimeView, format_ms, non_empty, query_string};
use crate::runlog::{LEVELS, level_rank};
use crate::store::{LogLine, RunRecord, RunStatus};
use crate::web::auth::CurrentUser;
use crate::web::csrf::CsrfToken;
use crate::web::error::{WebError, WebResult};
use crate::web::state::AppState;

/// Log lines read per request.
pub const LOG_PAGE: u32 = 1000;

/// Log filters and position, as in the URL.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LogQuery {
    /// Minimum level: `error`, `warn`, `info`, `debug`, `trace`.
    pub level: Option<String>,
    /// Message contains (case-insensitive).
    pub q: Option<String>,
    /// Only lines after this line id.
    pub after: Option<i64>,
}

/// One field of a log line.
#[derive(Debug, Clone)]
pub struct Chip {
    pub key: String,
    pub value: String,
}

/// One log line.
#[derive(Debug, Clone)]
pub struct LogLineView {
    pub id: i64,
    pub ts: TimeView,
    pub level: String,
    /// `bad`, `warn`, `muted`: the CSS class suffix.
    pub tone: &'static str,
    pub message: String,
    pub chips: Vec<Chip>,
}

/// An attempt of the chain, for the links between attempts.
#[derive(Debug, Clone)]
pub struct AttemptLink {
    pub id: i64,
    pub attempt: u32,
    pub badge: Badge,
    pub current: bool,
}

/// The run's facts (swapped while live).
#[derive(Debug, Clone)]
pub struct RunSummaryView {
    pub id: i64,
    pub job: String,
    pub job_url: String,
    pub badge: Badge,
    pub is_final: bool,
    pub trigger: String,
    pub attempt: u32,
    pub max_attempts: Option<u32>,
    pub attempts: Vec<AttemptLink>,
    pub scheduled_for: TimeView,
    /// Empty while queued, and for a run that ended before it started.
    pub started_at: Option<TimeView>,
    /// How long a queued run has waited for a free slot.
    pub waiting: Option<String>,
    pub finished_at: Option<TimeView>,
    pub duration: String,
    pub checked: i64,
    pub updated: i64,
    pub total: Option<i64>,
    /// Live progress text, when running here.
    pub progress: Option<String>,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    pub summary: Option<String>,
    /// The instance (process) that claimed the run; none while it waits to be claimed.
    pub instance: Option<String>,
}

/// The poller's next URL; `None` once the run is final.
#[derive(Debug, Clone)]
pub struct Tail {
    pub url: Option<String>,
}

/// The run page.
#[derive(Template, WebTemplate)]
#[template(path = "run.html")]
pub struct RunPage {
    pub chrome: Chrome,
    pub run: RunSummaryView,
    pub lines: Vec<LogLineView>,
    pub levels: Vec<(&'static str, bool)>,
    pub q: String,
    pub tail: Tail,
    /// The link to the lines after these, when the page is full.
    pub more_url: Option<String>,
    pub oob: bool,
}

/// New lines, the summary and the next poller (htmx).
#[derive(Template, WebTemplate)]
#[template(path = "run_log_partial.html")]
pub struct RunLogPartial {
    pub run: RunSummaryView,
    pub lines: Vec<LogLineView>,
    pub tail: Tail,
    pub oob: bool,
}

async fn load(state: &AppState, id: i64) -> WebResult<RunSummaryView> {
    let run = state
        .store
        .run(id)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("there is no run {id}")))?;
    let chain = state
        .store
        .run_chain(run.first_run_id.unwrap_or(run.id))
        .await?;
    let max_attempts = state
        .store
        .job_by_name(&run.job_name)
        .await?
        .and_then(|job| job.effective_settings().ok())
        .map(|settings| settings.max_attempts.unwrap_or(3));
    let progress = state.scheduler.live_runs().get(run.id).map(|live| {
        let p = live.progress();
        match p.total {
            Some(total) => format!("{} of {} done", p.done, total),
            None => format!("{} checked, {} updated", p.checked, p.updated),
        }
    });
    Ok(summary_view(
        &run,
        &chain,
        max_attempts,
        progress,
        state.clock.now(),
    ))
}

/// The summary of `run`, with the attempts of its chain.
pub fn summary_view(
    run: &RunRecord,
    chain: &[RunRecord],
    max_attempts: Option<u32>,
    progress: Option<String>,
    now: DateTime<Utc>,
) -> RunSummaryView {
    RunSummaryView {
        instance: Some(run.instance_id.clone()).filter(|id| id != crate::store::UNCLAIMED),
        id: run.id,
        job: run.job_name.clone(),
        job_url: format!("/jobs/{}", super::chrome::encode(&run.job_name)),
        badge: Badge::status(run.status),
        is_final: run.status.is_final(),
        trigger: run.trigger.as_str().replace('_', " "),
        attempt: run.attempt,
        max_attempts,
        attempts: chain
            .iter()
            .map(|a| AttemptLink {
                id: a.id,
                attempt: a.attempt,
                badge: Badge::status(a.status),
                current: a.id == run.id,
            })
            .collect(),
        scheduled_for: TimeView::new(run.scheduled_for),
        started_at: run.started_at.map(TimeView::new),
        waiting: (run.status == RunStatus::Queued)
            .then(|| format_ms((now - run.scheduled_for).num_milliseconds())),
        finished_at: run.finished_at.map(TimeView::new),
        duration: run.duration_ms.map_or_else(|| "—".into(), format_ms),
        checked: run.items_checked,
        updated: run.items_updated,
        total: run.items_total,
        progress,
        error_kind: run.error_kind.clone(),
        error_message: run.error_message.clone(),
        summary: run.summary.clone(),
    }
}

/// The lines at least as severe as `level` whose message contains `q`.
pub fn filter_lines(
    lines: Vec<(i64, LogLine)>,
    level: Option<&str>,
    q: Option<&str>,
) -> Vec<LogLineView> {
    let max_rank = level.map_or(LEVELS.len(), level_rank);
    let needle = q.map(str::to_lowercase);
    lines
        .into_iter()
        .filter(|(_, line)| level_rank(&line.level) <= max_rank)
        .filter(|(_, line)| {
            needle
                .as_deref()
                .is_none_or(|n| line.message.to_lowercase().contains(n))
        })
        .map(|(id, line)| line_view(id, line))
        .collect()
}

fn line_view(id: i64, line: LogLine) -> LogLineView {
    let chips = match line.fields {
        serde_json::Value::Object(map) => map
            .into_iter()
            .map(|(key, value)| Chip {
                key,
                value: match value {
                    serde_json::Value::String(text) => text,
                    other => other.to_string(),
                },
            })
            .collect(),
        serde_json::Value::Null => Vec::new(),
        other => vec![Chip {
            key: "fields".into(),
            value: other.to_string(),
        }],
    };
    let tone = match level_rank(&line.level) {
        0 => "bad",
        1 => "warn",
        _ => "muted",
    };
    LogLineView {
        id,
        ts: TimeView::new(line.ts),
        level: line.level,
        tone,
        message: line.message,
        chips,
    }
}

fn tail(run: &RunSummaryView, after: Option<i64>, query: &LogQuery) -> Tail {
    let after = after.map(|a| a.to_string());
    Tail {
        url: (!run.is_final).then(|| {
            format!(
                "/runs/{}/log{}",
                run.id,
                query_string(&[
                    ("level", non_empty(&query.level)),
                    ("q", non_empty(&query.q)),
                    ("after", after.as_deref()),
                ])
            )
        }),
    }
}

pub(super) async fn run_page(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Path(id): Path<i64>,
    Query(query): Query<LogQuery>,
) -> WebResult<RunPage> {
    let run = load(&state, id).await?;
    let raw = state.store.run_logs(id, query.after, LOG_PAGE).await?;
    let full = raw.len() == LOG_PAGE as usize;
    let last = raw.last().map(|(line_id, _)| *line_id).or(query.after);
    let lines = filter_lines(raw, non_empty(&query.level), non_empty(&query.q));
    let more_url = full.then(|| {
        let after = last.map(|a| a.to_string());
        format!(
            "/runs/{id}{}",
            query_string(&[
                ("level", non_empty(&query.level)),
                ("q", non_empty(&query.q)),
                ("after", after.as_deref()),
            ])
        )
    });
    let chosen = non_empty(&query.level);
    Ok(RunPage {
        chrome: Chrome::new(user, csrf),
        tail: if full {
            Tail { url: None }
        } else {
            tail(&run, last, &query)
        },
        run,
        lines,
        levels: LEVELS.iter().map(|l| (*l, Some(*l) == chosen)).collect(),
        q: non_empty(&query.q).unwrap_or_default().to_owned(),
        more_url,
        oob: false,
    })
}

pub(super) async fn run_log(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(query): Query<LogQuery>,
) -> WebResult<RunLogPartial> {
    let run = load(&state, id).await?;
    let raw = state.store.run_logs(id, query.after, LOG_PAGE).await?;
    let last = raw.last().map(|(line_id, _)| *line_id).or(query.after);
    // A final run may still have lines written with its last batch: keep polling
    // until one answer brings no new line.
    let drained = raw.is_empty();
    let lines = filter_lines(raw, non_empty(&query.level), non_empty(&query.q));
    let mut tail = tail(&run, last, &query);
    if run.is_final && !drained {
        tail = Tail {
            url: Some(format!(
                "/runs/{id}/log{}",
                query_string(&[
                    ("level", non_empty(&query.level)),
                    ("q", non_empty(&query.q)),
                    ("after", last.map(|a| a.to_string()).as_deref()),
                ])
            )),
        };
    }
    Ok(RunLogPartial {
        run,
        lines,
        tail,
        oob: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{RunStatus, Trigger};
    use crate::web::auth::Role;
    use chrono::{DateTime, Utc};

    const SCRIPT: &str = "<script>alert(1)</script>";
    const HOSTILE: &str = "\"><img src=x onerror=alert(1)>";

    fn run(status: RunStatus) -> RunRecord {
        RunRecord {
            id: 7,
            job_id: 1,
            job_name: "sync".into(),
            trigger: Trigger::Retry,
            attempt: 2,
            first_run_id: Some(5),
            status,
            scheduled_for: DateTime::<Utc>::UNIX_EPOCH,
            started_at: Some(DateTime::<Utc>::UNIX_EPOCH),
            finished_at: None,
            duration_ms: None,
            items_checked: 1,
            items_updated: 0,
            items_total: None,
            error_kind: Some(HOSTILE.into()),
            error_message: Some(SCRIPT.into()),
            summary: None,
            instance_id: "i".into(),
            retry_at: None,
        }
    }

    fn line(level: &str, message: &str) -> LogLine {
        LogLine {
            run_id: 7,
            ts: DateTime::<Utc>::UNIX_EPOCH,
            level: level.into(),
            message: message.into(),
            fields: serde_json::json!({ "sku": HOSTILE }),
        }
    }

    #[test]
    fn the_log_keeps_lines_at_or_above_the_level_that_match_the_search() {
        let lines = vec![
            (1, line("ERROR", "disk full")),
            (2, line("INFO", "checked disk")),
            (3, line("DEBUG", "disk probe")),
            (4, line("WARN", "slow")),
        ];
        let ids = |v: Vec<LogLineView>| v.iter().map(|l| l.id).collect::<Vec<_>>();
        assert_eq!(
            ids(filter_lines(lines.clone(), Some("info"), Some("DISK"))),
            vec![1, 2]
        );
        assert_eq!(
            ids(filter_lines(lines.clone(), Some("warn"), None)),
            vec![1, 4]
        );
        assert_eq!(ids(filter_lines(lines, None, None)), vec![1, 2, 3, 4]);
    }

    #[test]
    fn the_run_page_escapes_log_messages_field_values_and_errors() {
        let current = run(RunStatus::Running);
        let chain = vec![run(RunStatus::Retrying), current.clone()];
        let summary = summary_view(&current, &chain, Some(3), None, Utc::now());
        let page = RunPage {
            chrome: Chrome::new(
                CurrentUser {
                    id: 1,
                    name: "a".into(),
                    role: Role::Viewer,
                },
                CsrfToken("t".into()),
            ),
            tail: tail(&summary, Some(1), &LogQuery::default()),
            run: summary,
            lines: filter_lines(vec![(1, line("INFO", SCRIPT))], None, None),
            levels: LEVELS.iter().map(|l| (*l, false)).collect(),
            q: HOSTILE.into(),
            more_url: None,
            oob: false,
        };
        let html = page.render().expect("renders");
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(
            html.contains("attempt 2 of 3") || html.contains("Attempt 2 of 3"),
            "{html}"
        );
        assert!(html.contains("hx-get=\"/runs/7/log?after=1\""), "{html}");
    }

    #[test]
    fn the_tail_of_a_final_run_stops_polling() {
        let done = summary_view(&run(RunStatus::Succeeded), &[], None, None, Utc::now());
        let partial = RunLogPartial {
            tail: tail(&done, Some(9), &LogQuery::default()),
            run: done,
            lines: filter_lines(vec![(9, line("INFO", SCRIPT))], None, None),
            oob: true,
        };
        let html = partial.render().expect("renders");
        assert!(!html.contains("hx-trigger"), "{html}");
        assert!(
            html.contains("hx-swap-oob=\"beforeend:#log-lines\""),
            "{html}"
        );
        assert!(!html.contains("<script>alert"), "{html}");
    }
}
