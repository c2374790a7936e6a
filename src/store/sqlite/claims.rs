//! Runs queued for any instance, on SQLite. One `serve` uses a file, and it runs its
//! fires itself, so nothing is queued so in practice; the claim is here so that both
//! stores answer the same contract (one writer at a time makes it exact without row
//! locks).

use chrono::{DateTime, Utc};
use sqlx::SqlitePool;

use super::rows::{RUN_COLUMNS, RunRow, micros};
use crate::store::{QueuedClaim, RunRecord, StoreResult, UNCLAIMED};

pub(super) async fn claim_queued(
    pool: &SqlitePool,
    instance_id: &str,
    claim: &QueuedClaim,
) -> StoreResult<Vec<RunRecord>> {
    if claim.due == 0 && claim.ahead == 0 {
        return Ok(Vec::new());
    }
    let sql = format!(
        "UPDATE runs SET status = 'running', instance_id = $6 WHERE id IN ( \
             SELECT id FROM runs \
             WHERE status = 'queued' AND instance_id = $1 AND started_at <= $2 \
             ORDER BY started_at, id LIMIT $3) \
         OR id IN ( \
             SELECT id FROM runs \
             WHERE status = 'queued' AND instance_id = $1 \
               AND started_at > $2 AND started_at <= $4 \
             ORDER BY started_at, id LIMIT $5) \
         RETURNING {RUN_COLUMNS}"
    );
    let rows: Vec<RunRow> = sqlx::query_as(&sql)
        .bind(UNCLAIMED)
        .bind(micros(claim.now))
        .bind(i64::try_from(claim.due).unwrap_or(i64::MAX))
        .bind(micros(claim.ahead_until))
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
    pool: &SqlitePool,
    instance_id: &str,
    run_ids: &[i64],
) -> StoreResult<u64> {
    let mut released = 0;
    // One statement per run: a stopping instance gives back one claim's worth at most.
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    for run_id in run_ids {
        released += sqlx::query(
            "UPDATE runs SET status = 'queued', instance_id = $1 \
             WHERE id = $2 AND status = 'running' AND instance_id = $3",
        )
        .bind(UNCLAIMED)
        .bind(run_id)
        .bind(instance_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    tx.commit().await?;
    Ok(released)
}

pub(super) async fn cancel_unclaimed(
    pool: &SqlitePool,
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
    .bind(micros(now))
    .bind(message)
    .execute(pool)
    .await?;
    Ok(cancelled.rows_affected() > 0)
}
