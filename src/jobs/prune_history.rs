//! The `prune_history` handler: deletes old runs and their log lines, and (with
//! `older_than`) alert deliveries recorded before the same cutoff.
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
            runs += report.runs_deleted;
            log_lines += report.log_lines_deleted;
            if report.runs_deleted == 0 {
                break;
            }
            // Every run looked at in a batch is deleted, so both counts move together.
            ctx.add_checked(report.runs_deleted);
            ctx.add_updated(report.runs_deleted);
            tokio::task::yield_now().await;
        }
        // Alert deliveries go by age only: they belong to no job's newest runs.
        let mut deliveries = 0_u64;
        while let Some(cutoff) = cutoff {
            if ctx.is_cancelled() {
                return Err(JobError::Cancelled);
            }
            let deleted = self
                .store
                .alerts()
                .prune_deliveries(cutoff, params.batch_size)
                .await
                .map_err(|error| {
                    JobError::retryable(format!("pruning alert deliveries: {error}"))
                })?;
            if deleted == 0 {
                break;
            }
            deliveries += deleted;
            tokio::task::yield_now().await;
        }
        info!(runs, log_lines, deliveries, "pruning finished");
        Ok(Outcome::summary(format!(
            "deleted {runs} runs, {log_lines} log lines and {deliveries} alert deliveries"
        )))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;
    use std::task::Poll;

    use chrono::{DateTime, TimeZone, Utc};
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::clock::ManualClock;
    use crate::job::JobSettings;
    use crate::jobs::test_support::{context_on, temp_store};
    use crate::store::{LogLine, NewRun, RunFilter, RunFinish, RunStatus, Trigger, WriteBatch};

    fn params(json: serde_json::Value) -> Result<PruneHistoryParams, serde_json::Error> {
        serde_json::from_value(json)
    }

    /// The time every test prunes at.
    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0)
            .single()
            .expect("a valid instant")
    }

    fn days(n: i64) -> chrono::Duration {
        chrono::Duration::days(n)
    }

    /// A context whose clock stands at [`now`].
    fn ctx(cancel: CancellationToken) -> JobContext {
        context_on(cancel, Arc::new(ManualClock::new(now())))
    }

    /// A run to seed, with how it ended and how many log lines it wrote.
    struct Seed {
        started_at: DateTime<Utc>,
        /// `Running` leaves the run unfinished.
        status: RunStatus,
        retry_at: Option<DateTime<Utc>>,
        log_lines: usize,
    }

    fn finished(started_at: DateTime<Utc>, log_lines: usize) -> Seed {
        Seed {
            started_at,
            status: RunStatus::Succeeded,
            retry_at: None,
            log_lines,
        }
    }

    /// Saves jobs named `names` and returns their ids, in the same order.
    async fn jobs(store: &SharedStore, names: &[&str]) -> Vec<i64> {
        let settings: Vec<JobSettings> = names
            .iter()
            .map(|name| JobSettings {
                name: (*name).into(),
                handler: "prune_history".into(),
                every: Some("1d".into()),
                ..JobSettings::default()
            })
            .collect();
        let records = store
            .sync_jobs(&settings, now() - days(365))
            .await
            .expect("jobs are saved");
        names
            .iter()
            .map(|name| {
                records
                    .iter()
                    .find(|record| record.name == *name)
                    .expect("the job was saved")
                    .id
            })
            .collect()
    }

    /// Writes `seed` as a run of `job_id` the way the scheduler does (insert, then log
    /// lines and the finish), and returns its id.
    async fn seed_run(store: &SharedStore, job_id: i64, seed: Seed) -> i64 {
        let inserted = store
            .write_batch(&WriteBatch {
                inserts: vec![NewRun {
                    job_id,
                    trigger: Trigger::Schedule,
                    attempt: 1,
                    first_run_id: None,
                    status: RunStatus::Running,
                    scheduled_for: seed.started_at,
                    started_at: seed.started_at,
                    finished_at: None,
                    error_kind: None,
                    error_message: None,
                    instance_id: "test".into(),
                    exclusive: false,
                }],
                ..WriteBatch::default()
            })
            .await
            .expect("the run is inserted");
        let run_id = inserted.inserts[0]
            .run_id()
            .expect("no exclusive run is going");
        let logs = (0..seed.log_lines)
            .map(|line| LogLine {
                run_id,
                ts: seed.started_at,
                level: "INFO".into(),
                message: format!("line {line}"),
                fields: serde_json::json!({}),
            })
            .collect();
        let finishes = if seed.status == RunStatus::Running {
            Vec::new()
        } else {
            vec![RunFinish {
                run_id,
                status: seed.status,
                finished_at: seed.started_at + chrono::Duration::seconds(1),
                started_at: Some(seed.started_at),
                duration_ms: Some(1000),
                items_checked: 0,
                items_updated: 0,
                items_total: None,
                error_kind: None,
                error_message: None,
                summary: None,
                retry_at: seed.retry_at,
            }]
        };
        store
            .write_batch(&WriteBatch {
                logs,
                finishes,
                ..WriteBatch::default()
            })
            .await
            .expect("the run's logs and end are written");
        run_id
    }

    /// The ids of every stored run.
    async fn run_ids(store: &SharedStore) -> BTreeSet<i64> {
        store
            .runs(&RunFilter {
                limit: 10_000,
                ..RunFilter::default()
            })
            .await
            .expect("runs load")
            .into_iter()
            .map(|run| run.id)
            .collect()
    }

    async fn log_count(store: &SharedStore, run_id: i64) -> usize {
        store
            .run_logs(run_id, None, 10_000)
            .await
            .expect("logs load")
            .len()
    }

    #[tokio::test]
    async fn older_than_deletes_every_old_finished_run_and_its_logs_batch_by_batch() {
        let (_dir, store) = temp_store().await;
        let [job] = jobs(&store, &["orders"]).await[..] else {
            unreachable!("one job")
        };
        let mut old = Vec::new();
        for n in 0..7 {
            let started = now() - days(40) + chrono::Duration::minutes(n);
            old.push(seed_run(&store, job, finished(started, 3)).await);
        }
        let still_running = seed_run(
            &store,
            job,
            Seed {
                status: RunStatus::Running,
                ..finished(now() - days(50), 1)
            },
        )
        .await;
        let awaiting_retry = seed_run(
            &store,
            job,
            Seed {
                status: RunStatus::Retrying,
                retry_at: Some(now() + chrono::Duration::hours(1)),
                ..finished(now() - days(45), 1)
            },
        )
        .await;
        let recent = [
            seed_run(&store, job, finished(now() - days(1), 2)).await,
            seed_run(&store, job, finished(now() - days(2), 2)).await,
        ];

        for age in [days(40), days(31), days(3)] {
            let delivery = crate::store::NewDelivery {
                event: "dead".into(),
                target: "ops".into(),
                job: Some("orders".into()),
                run_id: None,
                payload: "{}".into(),
                created_at: now() - age,
            };
            store
                .alerts()
                .record_delivery(&delivery)
                .await
                .expect("recorded");
        }

        let handler = PruneHistoryHandler::new(Arc::clone(&store));
        let ctx = ctx(CancellationToken::new());
        // A batch of 2 cannot hold 7 runs: all of them going takes four batches.
        let params =
            params(serde_json::json!({ "older_than": "30d", "batch_size": 2 })).expect("valid");
        let outcome = handler.run(params, ctx.clone()).await.expect("pruned");

        assert_eq!(
            outcome.summary.as_deref(),
            Some("deleted 7 runs, 21 log lines and 2 alert deliveries")
        );
        let deliveries = store.alerts().deliveries(None, 10).await.expect("read");
        assert_eq!(deliveries.len(), 1, "the recent delivery stays");
        let progress = ctx.counters();
        assert_eq!((progress.checked, progress.updated), (7, 7));
        let kept: BTreeSet<i64> = [still_running, awaiting_retry, recent[0], recent[1]].into();
        assert_eq!(run_ids(&store).await, kept);
        for run_id in old {
            assert_eq!(log_count(&store, run_id).await, 0, "logs of run {run_id}");
        }
        assert_eq!(log_count(&store, still_running).await, 1);
        assert_eq!(log_count(&store, awaiting_retry).await, 1);
        assert_eq!(log_count(&store, recent[0]).await, 2);
        assert_eq!(log_count(&store, recent[1]).await, 2);
    }

    #[tokio::test]
    async fn older_than_is_counted_back_from_the_run_clock() {
        let (_dir, store) = temp_store().await;
        let [job] = jobs(&store, &["orders"]).await[..] else {
            unreachable!("one job")
        };
        let cutoff = now() - days(30);
        let just_older = seed_run(
            &store,
            job,
            finished(cutoff - chrono::Duration::seconds(1), 1),
        )
        .await;
        let at_cutoff = seed_run(&store, job, finished(cutoff, 1)).await;
        assert_eq!(run_ids(&store).await, [just_older, at_cutoff].into());
        let params = params(serde_json::json!({ "older_than": "30d" })).expect("valid");
        assert_eq!(params.older_than, Some(Duration::from_secs(30 * 24 * 3600)));
        let handler = PruneHistoryHandler::new(Arc::clone(&store));
        let outcome = handler
            .run(params, ctx(CancellationToken::new()))
            .await
            .expect("pruned");
        assert_eq!(
            outcome.summary.as_deref(),
            Some("deleted 1 runs, 1 log lines and 0 alert deliveries")
        );
        assert_eq!(
            run_ids(&store).await,
            [at_cutoff].into(),
            "a run exactly 30 days old stays"
        );
    }

    #[tokio::test]
    async fn keep_per_job_keeps_the_newest_runs_of_each_job() {
        let (_dir, store) = temp_store().await;
        let [a, b] = jobs(&store, &["a", "b"]).await[..] else {
            unreachable!("two jobs")
        };
        let mut runs_of_a = Vec::new();
        for n in 0..5 {
            let started = now() - chrono::Duration::hours(5 - n);
            runs_of_a.push(seed_run(&store, a, finished(started, 1)).await);
        }
        let mut runs_of_b = Vec::new();
        for n in 0..2 {
            let started = now() - days(100 + n);
            runs_of_b.push(seed_run(&store, b, finished(started, 1)).await);
        }
        let handler = PruneHistoryHandler::new(Arc::clone(&store));
        let params =
            params(serde_json::json!({ "keep_per_job": 3, "batch_size": 1 })).expect("valid");
        let outcome = handler
            .run(params, ctx(CancellationToken::new()))
            .await
            .expect("pruned");
        assert_eq!(
            outcome.summary.as_deref(),
            Some("deleted 2 runs, 2 log lines and 0 alert deliveries")
        );
        let kept: BTreeSet<i64> = runs_of_a[2..].iter().chain(&runs_of_b).copied().collect();
        assert_eq!(run_ids(&store).await, kept, "a's two oldest runs went");
    }

    #[tokio::test]
    async fn a_run_cancelled_before_it_starts_deletes_nothing() {
        let (_dir, store) = temp_store().await;
        let [job] = jobs(&store, &["orders"]).await[..] else {
            unreachable!("one job")
        };
        for n in 0..5 {
            seed_run(&store, job, finished(now() - days(40 + n), 1)).await;
        }
        let handler = PruneHistoryHandler::new(Arc::clone(&store));
        let cancel = CancellationToken::new();
        cancel.cancel();
        let params =
            params(serde_json::json!({ "keep_per_job": 1, "batch_size": 2 })).expect("valid");
        let result = handler.run(params, ctx(cancel)).await;
        assert!(matches!(result, Err(JobError::Cancelled)), "{result:?}");
        assert_eq!(run_ids(&store).await.len(), 5);
    }

    #[tokio::test]
    async fn a_run_cancelled_between_batches_stops_after_the_batch_it_finished() {
        let (_dir, store) = temp_store().await;
        let [job] = jobs(&store, &["orders"]).await[..] else {
            unreachable!("one job")
        };
        let mut old = Vec::new();
        for n in 0..6 {
            old.push(seed_run(&store, job, finished(now() - days(60 - n), 1)).await);
        }
        let handler = PruneHistoryHandler::new(Arc::clone(&store));
        let cancel = CancellationToken::new();
        let params =
            params(serde_json::json!({ "older_than": "30d", "batch_size": 2 })).expect("valid");
        // The handler only moves on when it is polled, so polling it by hand and looking
        // at the database in between catches it right after its first batch committed
        // and before it could begin a second one.
        let pruning = handler.run(params, ctx(cancel.clone()));
        let mut pruning = std::pin::pin!(pruning);
        loop {
            if let Poll::Ready(result) = futures::poll!(pruning.as_mut()) {
                panic!("pruning ended before it was cancelled: {result:?}");
            }
            if run_ids(&store).await.len() < old.len() {
                break;
            }
        }
        cancel.cancel();
        let result = pruning.await;
        assert!(matches!(result, Err(JobError::Cancelled)), "{result:?}");
        let remaining: BTreeSet<i64> = old[2..].iter().copied().collect();
        assert_eq!(
            run_ids(&store).await,
            remaining,
            "only the first batch (the two oldest runs) went"
        );
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
}
