//! Upcoming fires (`GET /upcoming`): the next 24 hours of every job's scheduled fires as a
//! timeline ([`super::timeline`]), with the same in a list for screen readers; paused,
//! disabled and upstream-only jobs are shown as such. Fifty jobs a page, by name.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use chrono::{Duration, Utc};
use serde::Deserialize;

use super::chrome::{Chrome, encode, non_empty, query_string};
use super::timeline::{Lane, Quiet, draw};
use crate::job::JobSpec;
use crate::schedule::Schedule;
use crate::store::{JobQuery, JobRecord};
use crate::web::auth::CurrentUser;
use crate::web::csrf::CsrfToken;
use crate::web::error::WebResult;
use crate::web::state::AppState;

/// Jobs per page.
const PAGE_SIZE: usize = 50;
/// Fires named one by one in the list; the rest are counted.
const LISTED_FIRES: usize = 6;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpcomingQuery {
    /// Jobs after this name (keyset paging).
    after: Option<String>,
}

struct ListedLane {
    job: String,
    url_job: String,
    text: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "upcoming.html")]
pub(crate) struct UpcomingPage {
    chrome: Chrome,
    from: String,
    svg: String,
    lanes: Vec<ListedLane>,
    next_page: Option<String>,
}

/// The lane of `record` in `[from, until)`; `None` for a removed job or one whose
/// settings do not make a job (the dashboard says why).
fn lane_of(
    record: &JobRecord,
    from: chrono::DateTime<Utc>,
    until: chrono::DateTime<Utc>,
) -> Option<Lane> {
    if record.removed_at.is_some() {
        return None;
    }
    let spec = JobSpec::from_settings(&record.effective_settings().ok()?).ok()?;
    let quiet = if record.paused {
        Some(Quiet::Paused)
    } else if !spec.enabled {
        Some(Quiet::Disabled)
    } else if spec.schedule == Schedule::Upstream {
        Some(Quiet::Upstream)
    } else {
        None
    };
    Some(Lane::new(
        &record.name,
        &spec.schedule,
        record.next_run_at,
        quiet,
        from,
        until,
    ))
}

fn listed(lane: &Lane) -> ListedLane {
    let text = match lane.quiet {
        Some(quiet) => quiet.describe().to_owned(),
        None if lane.fires.is_empty() => "no fire in the next 24 hours".to_owned(),
        None if lane.dense => format!(
            "{} fires, the first at {} UTC",
            lane.count,
            lane.fires
                .first()
                .map_or_else(String::new, |fire| fire.format("%H:%M:%S").to_string())
        ),
        None => {
            let mut times: Vec<String> = lane
                .fires
                .iter()
                .take(LISTED_FIRES)
                .map(|fire| fire.format("%H:%M").to_string())
                .collect();
            if lane.fires.len() > LISTED_FIRES {
                times.push("…".into());
            }
            format!(
                "{} fire{}: {} UTC",
                lane.count,
                if lane.count == 1 { "" } else { "s" },
                times.join(", ")
            )
        }
    };
    ListedLane {
        job: lane.job.clone(),
        url_job: encode(&lane.job),
        text,
    }
}

/// `GET /upcoming`.
pub(super) async fn upcoming(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
    Query(query): Query<UpcomingQuery>,
) -> WebResult<UpcomingPage> {
    let from = state.clock.now();
    let span = Duration::hours(24);
    let mut page = state
        .store
        .jobs_matching(&JobQuery {
            after: non_empty(&query.after).map(str::to_owned),
            limit: u32::try_from(PAGE_SIZE + 1).unwrap_or(u32::MAX),
            ..JobQuery::default()
        })
        .await?;
    let next_page = (page.len() > PAGE_SIZE)
        .then(|| {
            page.truncate(PAGE_SIZE);
            page.last()
                .map(|job| format!("/upcoming{}", query_string(&[("after", Some(&job.name))])))
        })
        .flatten();
    let lanes: Vec<Lane> = page
        .iter()
        .filter_map(|record| lane_of(record, from, from + span))
        .collect();
    Ok(UpcomingPage {
        chrome: Chrome::new(user, csrf),
        from: from.format("%Y-%m-%d %H:%M").to_string(),
        svg: draw(&lanes, from, span),
        lanes: lanes.iter().map(listed).collect(),
        next_page,
    })
}
