//! Removing old history in small batches.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};

use super::rows::micros;
use crate::store::{PruneReport, StoreResult};

/// Ids per `IN (…)` list, well under SQLite's limit on bound parameters.
const IDS_PER_STATEMENT: usize = 10_000;

/// Deletes at most `batch_size` finished runs without a pending retry, with their log
/// lines, that started before `older_than` or are beyond the newest `keep_per_job` of
/// their job.
pub(super) async fn prune_runs(
    pool: &SqlitePool,
    older_than: Option<DateTime<Utc>>,
    keep_per_job: Option<u32>,
    batch_size: u32,
) -> StoreResult<PruneReport> {
    if batch_size == 0 || (older_than.is_none() && keep_per_job.is_none()) {
        return Ok(PruneReport::default());
    }
    let limit = i64::from(batch_size);
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;

    let mut victims: Vec<i64> = Vec::new();
    if let Some(older_than) = older_than {
        // Runs that never started are aged by their slot (`runs_never_started`).
        victims = sqlx::query_scalar(
            "SELECT id FROM (\
                 SELECT id FROM runs WHERE started_at < $1 \
                 AND status NOT IN ('queued', 'running') AND retry_at IS NULL \
                 ORDER BY started_at LIMIT $2) \
             UNION ALL SELECT id FROM (\
                 SELECT id FROM runs WHERE started_at IS NULL AND scheduled_for < $1 \
                 AND status NOT IN ('queued', 'running') AND retry_at IS NULL \
                 ORDER BY scheduled_for LIMIT $2) \
             LIMIT $2",
        )
        .bind(micros(older_than))
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
    }
    if let Some(keep) = keep_per_job {
        let room = batch_size as usize - victims.len().min(batch_size as usize);
        if room > 0 {
            // Per job, `cutoff` is the id of its (keep + 1)-th newest run: that run and all
            // older ones are beyond the keep. Each cutoff is one walk down `runs_by_job`.
            let beyond: Vec<i64> = sqlx::query_scalar(
                "WITH cutoffs(job_id, cutoff) AS (\
                     SELECT jobs.id, (SELECT r.id FROM runs AS r WHERE r.job_id = jobs.id \
                                      ORDER BY r.id DESC LIMIT 1 OFFSET $1) \
                     FROM jobs) \
                 SELECT runs.id FROM cutoffs \
                 JOIN runs ON runs.job_id = cutoffs.job_id AND runs.id <= cutoffs.cutoff \
                 WHERE runs.status NOT IN ('queued', 'running') AND runs.retry_at IS NULL \
                 LIMIT $2",
            )
            .bind(i64::from(keep))
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
            let mut chosen: HashSet<i64> = victims.iter().copied().collect();
            victims.extend(
                beyond
                    .into_iter()
                    .filter(|id| chosen.insert(*id))
                    .take(room),
            );
        }
    }

    let mut report = PruneReport::default();
    for ids in victims.chunks(IDS_PER_STATEMENT) {
        // Log lines first, explicitly, so that they can be counted (the cascade would
        // delete them silently).
        report.log_lines_deleted +=
            delete_in(&mut tx, "DELETE FROM run_logs WHERE run_id IN ", ids).await?;
        report.runs_deleted += delete_in(&mut tx, "DELETE FROM runs WHERE id IN ", ids).await?;
    }
    tx.commit().await?;
    Ok(report)
}

/// Runs `delete` (ending in `IN `) on `ids`; returns how many rows went.
async fn delete_in(tx: &mut SqliteConnection, delete: &str, ids: &[i64]) -> StoreResult<u64> {
    let mut sql = QueryBuilder::<Sqlite>::new(delete);
    sql.push("(");
    let mut list = sql.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    list.push_unseparated(")");
    Ok(sql
        .build()
        .persistent(false)
        .execute(&mut *tx)
        .await?
        .rows_affected())
}
