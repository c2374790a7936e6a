//! Which jobs a dashboard page lists, and what it needs to know about all jobs.

use std::collections::{BTreeSet, HashMap};

use super::{DashboardQuery, PAGE_SIZE};
use crate::store::{JobQuery, JobRecord, JobRuns, RunRecord};
use crate::web::error::WebResult;
use crate::web::pages::chrome::non_empty;
use crate::web::state::AppState;

/// One page of jobs and what the page needs to know about all of them.
pub(super) struct Listing {
    /// Up to one more than a page, so the caller knows whether a next page exists.
    pub(super) page: Vec<JobRecord>,
    pub(super) latest: HashMap<i64, RunRecord>,
    pub(super) attention: usize,
    pub(super) handlers: Vec<String>,
}

/// The usual case, without a state filter: the page's jobs come straight from the
/// store's index on names, so a page costs the same with ten jobs or ten thousand.
pub(super) async fn list_page(state: &AppState, query: &DashboardQuery) -> WebResult<Listing> {
    let filter = JobQuery {
        name_contains: non_empty(&query.q).map(str::to_owned),
        handler: non_empty(&query.handler).map(str::to_owned),
        after: non_empty(&query.after).map(str::to_owned),
        limit: u32::try_from(PAGE_SIZE + 1).unwrap_or(u32::MAX),
    };
    let page = state.store.jobs_matching(&filter).await?;
    let ids: Vec<i64> = page.iter().map(|job| job.id).collect();
    Ok(Listing {
        latest: state.store.latest_runs_of(&ids).await?,
        attention: usize::try_from(state.store.count_needing_attention().await?)
            .unwrap_or(usize::MAX),
        handlers: state.store.job_handlers().await?,
        page,
    })
}

/// With a state filter: a job's state depends on its runs and on what is live, so every
/// job is looked at. Filtering by state is the rare case that reads all jobs.
pub(super) async fn list_by_state(
    state: &AppState,
    query: &DashboardQuery,
    running: &[RunRecord],
) -> WebResult<Listing> {
    let jobs = state.store.jobs().await?;
    let latest = state.store.latest_runs().await?;
    let runs = JobRuns::new(&latest, running);
    let attention = jobs
        .iter()
        .filter(|job| job.removed_at.is_none() && runs.needs_attention(job.id))
        .count();
    let handlers: BTreeSet<String> = jobs
        .iter()
        .map(|job| job.defaults.handler.clone())
        .collect();
    let page = select_page(&jobs, query, &runs)
        .into_iter()
        .cloned()
        .collect();
    Ok(Listing {
        page,
        latest,
        attention,
        handlers: handlers.into_iter().collect(),
    })
}

/// The jobs matching the query, by name, from the keyset on: one more than a page, so
/// the caller knows whether a next page exists.
pub(super) fn select_page<'a>(
    jobs: &'a [JobRecord],
    query: &DashboardQuery,
    runs: &JobRuns<'_>,
) -> Vec<&'a JobRecord> {
    let needle = non_empty(&query.q).map(str::to_lowercase);
    let handler = non_empty(&query.handler);
    let state = non_empty(&query.state);
    let after = non_empty(&query.after);
    jobs.iter()
        .filter(|job| after.is_none_or(|after| job.name.as_str() > after))
        .filter(|job| {
            needle
                .as_deref()
                .is_none_or(|n| job.name.to_lowercase().contains(n))
        })
        .filter(|job| handler.is_none_or(|h| job.defaults.handler == h))
        .filter(|job| state.is_none_or(|s| runs.state(job).as_str() == s))
        .take(PAGE_SIZE + 1)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::pages::dashboard::tests::record;

    #[test]
    fn the_page_keysets_by_name_and_filters_by_name_handler_and_state() {
        let mut jobs: Vec<JobRecord> = (0..60)
            .map(|i| record(i, &format!("job-{i:02}"), "demo"))
            .collect();
        jobs[3].paused = true;
        jobs[4].defaults.handler = "http".into();
        let latest = HashMap::new();
        let runs = JobRuns::new(&latest, &[]);
        let all = select_page(&jobs, &DashboardQuery::default(), &runs);
        assert_eq!(all.len(), PAGE_SIZE + 1);
        let after = DashboardQuery {
            after: Some("job-49".into()),
            ..Default::default()
        };
        let rest = select_page(&jobs, &after, &runs);
        assert_eq!(rest.first().map(|j| j.name.as_str()), Some("job-50"));
        assert_eq!(rest.len(), 10);
        let paused = DashboardQuery {
            state: Some("paused".into()),
            ..Default::default()
        };
        assert_eq!(select_page(&jobs, &paused, &runs).len(), 1);
        let http = DashboardQuery {
            handler: Some("http".into()),
            q: Some("JOB-0".into()),
            ..Default::default()
        };
        assert_eq!(
            select_page(&jobs, &http, &runs)
                .iter()
                .map(|j| j.id)
                .collect::<Vec<_>>(),
            vec![4]
        );
    }
}
