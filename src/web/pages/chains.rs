//! The chains view (`GET /chains`): every group of jobs linked by `after` and
//! `after_failure`, drawn as a graph ([`super::chain_graph`]) with the same links listed
//! in words below it, and the upstream and downstream jobs of one job for its page.

use std::collections::HashMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;

use super::chain_graph::{ChainGroup, ChainJob, groups};
use super::chrome::{Badge, Chrome, encode};
use crate::job::chain::Follows;
use crate::store::{JobRecord, StoreResult};
use crate::web::auth::CurrentUser;
use crate::web::csrf::CsrfToken;
use crate::web::error::WebResult;
use crate::web::state::AppState;

/// One job of a group, in words.
struct ListedJob {
    name: String,
    url_name: String,
    last: Badge,
    after: Vec<String>,
    after_failure: Vec<String>,
}

/// One chain: its drawing and its jobs in words.
struct ChainView {
    svg: String,
    jobs: Vec<ListedJob>,
}

#[derive(Template, WebTemplate)]
#[template(path = "chains.html")]
pub(crate) struct ChainsPage {
    chrome: Chrome,
    chains: Vec<ChainView>,
}

/// The upstream jobs a job's settings name, and how it follows each: from its
/// effective settings (a record whose settings cannot be read has none).
fn links_of(record: &JobRecord) -> Vec<(String, Follows)> {
    let Ok(settings) = record.effective_settings() else {
        return Vec::new();
    };
    let success = settings
        .after
        .unwrap_or_default()
        .into_iter()
        .map(|name| (name, Follows::Success));
    let failure = settings
        .after_failure
        .unwrap_or_default()
        .into_iter()
        .map(|name| (name, Follows::Failure));
    success.chain(failure).collect()
}

/// Every chain between the jobs still declared, with each job's last outcome. Only the
/// jobs in chains are read (the scheduler's index names them), so the page costs the
/// same beside ten jobs or ten thousand.
async fn chain_groups(state: &AppState) -> StoreResult<Vec<ChainGroup>> {
    let store = &state.store;
    let mut jobs: Vec<JobRecord> = Vec::new();
    for name in state.scheduler.chained_jobs() {
        if let Some(job) = store.job_by_name(&name).await?
            && job.removed_at.is_none()
        {
            jobs.push(job);
        }
    }
    let ids: Vec<i64> = jobs.iter().map(|job| job.id).collect();
    let latest = store.latest_runs_of(&ids).await?;
    let jobs = jobs
        .iter()
        .map(|record| ChainJob {
            name: record.name.clone(),
            last: latest.get(&record.id).map(|run| run.status),
            upstream: links_of(record),
        })
        .collect();
    Ok(groups(jobs))
}

/// `GET /chains`.
pub(super) async fn chains_page(
    State(state): State<AppState>,
    user: CurrentUser,
    csrf: CsrfToken,
) -> WebResult<ChainsPage> {
    let chains = chain_groups(&state)
        .await?
        .iter()
        .enumerate()
        .map(|(index, group)| ChainView {
            svg: group.svg(index),
            jobs: group.jobs.iter().map(listed).collect(),
        })
        .collect();
    Ok(ChainsPage {
        chrome: Chrome::new(user, csrf),
        chains,
    })
}

fn listed(job: &ChainJob) -> ListedJob {
    let names = |wanted: Follows| {
        job.upstream
            .iter()
            .filter(|(_, follows)| *follows == wanted)
            .map(|(name, _)| name.clone())
            .collect()
    };
    ListedJob {
        name: job.name.clone(),
        url_name: encode(&job.name),
        last: last_badge(job.last),
        after: names(Follows::Success),
        after_failure: names(Follows::Failure),
    }
}

fn last_badge(last: Option<crate::store::RunStatus>) -> Badge {
    last.map_or_else(|| Badge::new("not run yet", "muted"), Badge::status)
}

/// A job linked to the one a page shows, with its last outcome.
#[derive(Debug, Clone)]
pub struct LinkedJob {
    pub name: String,
    pub url_name: String,
    /// "after" or "after failure of".
    pub how: &'static str,
    pub last: Badge,
}

/// The jobs `record` follows and the jobs that follow it, for its page: the followers
/// as the scheduler runs them, so no job is read to find them.
///
/// # Errors
/// When the store cannot be read.
pub async fn links_of_job(
    state: &AppState,
    record: &JobRecord,
) -> StoreResult<(Vec<LinkedJob>, Vec<LinkedJob>)> {
    let mut upstream_records = Vec::new();
    for (name, follows) in links_of(record) {
        if let Some(upstream) = state.store.job_by_name(&name).await? {
            upstream_records.push((upstream, follows));
        }
    }
    let mut downstream_records = Vec::new();
    for (name, follows) in state.scheduler.followers_of(&record.name) {
        if let Some(follower) = state.store.job_by_name(&name).await? {
            downstream_records.push((follower, follows));
        }
    }
    let ids: Vec<i64> = upstream_records
        .iter()
        .chain(&downstream_records)
        .map(|(job, _)| job.id)
        .collect();
    let latest: HashMap<i64, crate::store::RunRecord> = if ids.is_empty() {
        HashMap::new()
    } else {
        state.store.latest_runs_of(&ids).await?
    };
    let linked = |(job, follows): &(JobRecord, Follows)| LinkedJob {
        name: job.name.clone(),
        url_name: encode(&job.name),
        how: match follows {
            Follows::Success => "after",
            Follows::Failure => "on failure",
        },
        last: last_badge(latest.get(&job.id).map(|run| run.status)),
    };
    Ok((
        upstream_records.iter().map(linked).collect(),
        downstream_records.iter().map(linked).collect(),
    ))
}
