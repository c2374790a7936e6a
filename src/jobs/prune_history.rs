//! The `prune_history` handler: deletes old runs and their log lines.
//!
//! It deletes in small batches, yielding between them, so that each transaction is
//! short and the scheduler's own writes never wait long behind it.

use std::time::Duration;

use serde::Deserialize;
use tracing::info;

use crate::job::{JobContext, JobError, JobHandler, Outcome};
use crate::schedule::parse_duration;
use crate::store::SharedStore;

/// Deletes runs older than a cutoff, or beyond the newest N of each job.
pub struct PruneHistoryHandler {
    store: SharedStore,
}

impl PruneHistoryHandler {
    /// A handler that prunes `store`.
    pub fn new(store: SharedStore) -> Self {
        Self { store }
    }
}

/// The `prune_history` handler's params: at least one of `older_than` and
/// `keep_per_job`. A run is deleted when either rule says so.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawParams")]
pub struct PruneHistoryParams {
    /// Delete runs that started longer ago than this (`"30d"`).
    pub older_than: Option<Duration>,
    /// Delete runs beyond the newest this many of each job.
    pub keep_per_job: Option<u32>,
    /// How many runs one transaction deletes at most.
    pub batch_size: u32,
}

/// The params as written; checked into [`PruneHistoryParams`] while decoding, so a bad
/// value is refused when the settings are loaded rather than at 3 a.m.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParams {
    #[serde(default)]
    older_than: Option<String>,
    #[serde(default)]
    keep_per_job: Option<u32>,
    #[serde(default = "default_batch_size")]
    batch_size: u32,
}

fn default_batch_size() -> u32 {
    500
}

const MAX_BATCH_SIZE: u32 = 10_000;

impl TryFrom<RawParams> for PruneHistoryParams {
    type Error = String;

    fn try_from(raw: RawParams) -> Result<Self, Self::Error> {
        if raw.older_than.is_none() && raw.keep_per_job.is_none() {
            return Err(
                "say what to prune: older_than (e.g. \"30d\"), keep_per_job, or both".into(),
            );
        }
        if !(1..=MAX_BATCH_SIZE).contains(&raw.batch_size) {
            return Err(format!("batch_size must be between 1 and {MAX_BATCH_SIZE}"));
        }
        let older_than = raw
            .older_than
            .as_deref()
            .map(parse_duration)
            .transpose()
            .map_err(|error| format!("older_than: {error}"))?;
        Ok(Self {
            older_than,
            keep_per_job: raw.keep_per_job,
            batch_size: raw.batch_size,
        })
    }
}

impl JobHandler for PruneHistoryHandler {
    type Params = PruneHistoryParams;

    async fn run(&self, params: PruneHistoryParams, ctx: JobContext) -> Result<Outcome, JobError> {
        // One cutoff for the whole run, so batches agree on what "old" means.
        let cutoff = match params.older_than {
            Some(age) => Some(
                chrono::Duration::from_std(age)
                    .ok()
                    .and_then(|age| ctx.now().checked_sub_signed(age))
                    .ok_or_else(|| JobError::fatal("older_than is too long"))?,
            ),
            None => None,
        };
        info!(
            cutoff = cutoff.map(|c| c.to_rfc3339()),
            keep_per_job = params.keep_per_job,
            batch_size = params.batch_size,
            "pruning run history"
        );

        let (mut runs, mut log_lines) = (0_u64, 0_u64);
        loop {
            if ctx.is_cancelled() {
                info!(runs, log_lines, "pruning cancelled");
                return Err(JobError::Cancelled);
            }
            let report = self
                .store
                .prune_runs(cutoff, params.keep_per_job, params.batch_size)
                .await
                .map_err(|error| JobError::retryable(format!("pruning runs: {error}")))?;
            if report.runs_deleted == 0 {
                break;
            }
            runs += report.runs_deleted;
            log_lines += report.log_lines_deleted;
            // Every run looked at in a batch is deleted, so both counts move together.
            ctx.add_checked(report.runs_deleted);
            ctx.add_updated(report.runs_deleted);
            tokio::task::yield_now().await;
        }
        info!(runs, log_lines, "pruning finished");
        Ok(Outcome::summary(format!(
            "deleted {runs} runs and {log_lines} log lines"
        )))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::jobs::test_support::{PruneOnlyStore, context};

    fn params(json: serde_json::Value) -> Result<PruneHistoryParams, serde_json::Error> {
        serde_json::from_value(json)
    }

    #[tokio::test]
    async fn prunes_in_batches_until_a_batch_deletes_nothing() {
        let store = PruneOnlyStore::with_runs(1_234);
        let handler = PruneHistoryHandler::new(Arc::clone(&store) as SharedStore);
        let ctx = context(CancellationToken::new());
        let params = params(serde_json::json!({ "keep_per_job": 100 })).expect("valid");
        let outcome = handler.run(params, ctx.clone()).await.expect("pruned");
        assert_eq!(
            outcome.summary.as_deref(),
            Some("deleted 1234 runs and 12340 log lines")
        );
        assert_eq!(ctx.counters().updated, 1_234);
        let calls = store.calls.lock().expect("calls lock").clone();
        // 500 + 500 + 234, then one empty batch that ends the loop.
        assert_eq!(calls.len(), 4);
        assert!(calls.iter().all(|call| *call == (None, Some(100), 500)));
    }

    #[tokio::test]
    async fn a_cancelled_run_stops_before_the_next_batch() {
        let store = PruneOnlyStore::with_runs(10_000);
        let handler = PruneHistoryHandler::new(Arc::clone(&store) as SharedStore);
        let cancel = CancellationToken::new();
        cancel.cancel();
        let params =
            params(serde_json::json!({ "keep_per_job": 5, "batch_size": 10 })).expect("valid");
        let result = handler.run(params, context(cancel)).await;
        assert!(matches!(result, Err(JobError::Cancelled)), "{result:?}");
        assert_eq!(*store.remaining.lock().expect("remaining lock"), 10_000);
    }

    #[test]
    fn params_must_say_what_to_prune() {
        let error = params(serde_json::json!({})).expect_err("nothing to prune");
        assert!(error.to_string().contains("older_than"), "{error}");
        let error = params(serde_json::json!({ "keep_per_job": 3, "batch_size": 0 }))
            .expect_err("empty batches");
        assert!(error.to_string().contains("batch_size"), "{error}");
        assert!(params(serde_json::json!({ "keep_per_job": 3, "extra": 1 })).is_err());
    }

    #[tokio::test]
    async fn older_than_becomes_a_cutoff_that_far_before_now() {
        let store = PruneOnlyStore::with_runs(0);
        let handler = PruneHistoryHandler::new(Arc::clone(&store) as SharedStore);
        let ctx = context(CancellationToken::new());
        let params = params(serde_json::json!({ "older_than": "30d" })).expect("valid");
        assert_eq!(params.older_than, Some(Duration::from_secs(30 * 24 * 3600)));
        let before = ctx.now();
        handler.run(params, ctx).await.expect("pruned");
        let calls = store.calls.lock().expect("calls lock").clone();
        let cutoff = calls[0].0.expect("a cutoff");
        let age = before - cutoff;
        assert!(
            (age - chrono::Duration::days(30)).num_seconds().abs() <= 1,
            "{age}"
        );
    }
}
