//! Runs queued for any instance, on PostgreSQL: each instance claims what is due with
//! `FOR UPDATE SKIP LOCKED`, so instances claiming at once take disjoint runs without
//! waiting for each other.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::batch::announce_runs_queued;
use super::rows::{RUN_COLUMNS, RunRow};
use crate::store::{QueuedClaim, RunRecord, StoreResult, UNCLAIMED};

pub(super) async fn claim_queued(
    pool: &PgPool,
    instance_id: &str,
    claim: &QueuedClaim,
) -> StoreResult<Vec<RunRecord>> {
    if claim.due == 0 && claim.ahead == 0 {
        return Ok(Vec::new());
    }
    // Each pick is a CTE so that the planner cannot turn its `LIMIT` into an update of
    // more rows than asked for.
    let sql = format!(
        "WITH due AS ( \
             SELECT id FROM runs \
             WHERE status = 'queued' AND instance_id = $1 AND started_at <= $2 \
             ORDER BY started_at, id LIMIT $3 FOR UPDATE SKIP LOCKED), \
         ahead AS ( \
             SELECT id FROM runs \
             WHERE status = 'queued' AND instance_id = $1 \
               AND started_at > $2 AND started_at <= $4 \
             ORDER BY started_at, id LIMIT $5 FOR UPDATE SKIP LOCKED) \
         UPDATE runs SET status = 'running', instance_id = $6 \
         WHERE runs.id IN (SELECT id FROM due UNION ALL SELECT id FROM ahead) \
         RETURNING {RUN_COLUMNS}"
    );
    let rows: Vec<RunRow> = sqlx::query_as(&sql)
        .bind(UNCLAIMED)
        .bind(claim.now)
        .bind(i64::try_from(claim.due).unwrap_or(i64::MAX))
        .bind(claim.ahead_until)
        .bind(i64::try_from(claim.ahead).unwrap_or(i64::MAX))
        .bind(instance_id)
        .fetch_all(pool)
        .await?;
    let mut runs = rows
        .into_iter()
        .map(RunRecord::try_from)
        .collect::<StoreResult<Vec<_>>>()?;
    runs.sort_by_key(|run| (run.started_at, run.id));
    Ok(runs)
}

pub(super) async fn release_claimed(
    pool: &PgPool,
    instance_id: &str,
    run_ids: &[i64],
) -> StoreResult<u64> {
    let mut tx = pool.begin().await?;
    let released = sqlx::query(
        "UPDATE runs SET status = 'queued', instance_id = $1 \
         WHERE id = ANY($2) AND status = 'running' AND instance_id = $3",
    )
    .bind(UNCLAIMED)
    .bind(run_ids)
    .bind(instance_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if released > 0 {
        announce_runs_queued(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(released)
}

pub(super) async fn cancel_unclaimed(
    pool: &PgPool,
    run_id: i64,
    message: &str,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let cancelled = sqlx::query(
        "UPDATE runs SET status = 'cancelled', started_at = NULL, finished_at = $3, \
         error_kind = 'cancelled', error_message = $4 \
         WHERE id = $1 AND status = 'queued' AND instance_id = $2",
    )
    .bind(run_id)
    .bind(UNCLAIMED)
    .bind(now)
    .bind(message)
    .execute(pool)
    .await?;
    Ok(cancelled.rows_affected() > 0)
}
