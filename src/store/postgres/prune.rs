//! Removing old history in small batches on PostgreSQL.
//!
//! The victims are locked as they are chosen (`FOR UPDATE SKIP LOCKED`): another
//! instance's prune skips them instead of waiting, and a row that a concurrent write
//! changes is re-checked against the conditions before it is taken.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::store::{PruneReport, StoreResult};

/// Deletes at most `batch_size` finished runs without a pending retry, with their log
/// lines, that started before `older_than` or are beyond the newest `keep_per_job` of
/// their job.
pub(super) async fn prune_runs(
    pool: &PgPool,
    older_than: Option<DateTime<Utc>>,
    keep_per_job: Option<u32>,
    batch_size: u32,
) -> StoreResult<PruneReport> {
    if batch_size == 0 || (older_than.is_none() && keep_per_job.is_none()) {
        return Ok(PruneReport::default());
    }
    let limit = i64::from(batch_size);
    let mut tx = pool.begin().await?;

    let mut victims: Vec<i64> = Vec::new();
    if let Some(older_than) = older_than {
        victims = sqlx::query_scalar(
            "SELECT id FROM runs WHERE started_at < $1 \
             AND status NOT IN ('queued', 'running') AND retry_at IS NULL \
             ORDER BY started_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(older_than)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let room = limit - i64::try_from(victims.len()).unwrap_or(limit);
        if room > 0 {
            // Runs that never started are aged by their slot (`runs_never_started`).
            let never_started: Vec<i64> = sqlx::query_scalar(
                "SELECT id FROM runs WHERE started_at IS NULL AND scheduled_for < $1 \
                 AND status NOT IN ('queued', 'running') AND retry_at IS NULL \
                 ORDER BY scheduled_for LIMIT $2 FOR UPDATE SKIP LOCKED",
            )
            .bind(older_than)
            .bind(room)
            .fetch_all(&mut *tx)
            .await?;
            victims.extend(never_started);
        }
    }
    if let Some(keep) = keep_per_job {
        let room = batch_size as usize - victims.len().min(batch_size as usize);
        if room > 0 {
            // Per job, `cutoff` is the id of its (keep + 1)-th newest run: that run and all
            // older ones are beyond the keep. Each cutoff is one walk down `runs_by_job`.
            let beyond: Vec<i64> = sqlx::query_scalar(
                "SELECT runs.id FROM jobs \
                 CROSS JOIN LATERAL (SELECT r.id AS cutoff FROM runs AS r \
                     WHERE r.job_id = jobs.id ORDER BY r.id DESC OFFSET $1 LIMIT 1) AS c \
                 JOIN runs ON runs.job_id = jobs.id AND runs.id <= c.cutoff \
                 WHERE runs.status NOT IN ('queued', 'running') AND runs.retry_at IS NULL \
                   AND runs.id <> ALL($3) \
                 LIMIT $2 FOR UPDATE OF runs SKIP LOCKED",
            )
            .bind(i64::from(keep))
            .bind(i64::try_from(room).unwrap_or(limit))
            .bind(&victims)
            .fetch_all(&mut *tx)
            .await?;
            let mut chosen: HashSet<i64> = victims.iter().copied().collect();
            victims.extend(beyond.into_iter().filter(|id| chosen.insert(*id)));
        }
    }
    if victims.is_empty() {
        return Ok(PruneReport::default());
    }

    // Log lines first, explicitly, so that they can be counted (the cascade would delete
    // them silently).
    let log_lines_deleted = sqlx::query("DELETE FROM run_logs WHERE run_id = ANY($1)")
        .bind(&victims)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let runs_deleted = sqlx::query("DELETE FROM runs WHERE id = ANY($1)")
        .bind(&victims)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(PruneReport {
        runs_deleted,
        log_lines_deleted,
    })
}
