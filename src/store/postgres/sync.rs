//! [`Store::sync_jobs`](crate::store::Store::sync_jobs) on PostgreSQL: the shared plan
//! (`store::sync`), written as one statement per kind of change.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::rows::{JOB_COLUMNS, JobRow, decode_all, json};
use crate::job::JobSettings;
use crate::store::sync::{StoredJob, plan_sync};
use crate::store::{JobRecord, StoreError, StoreResult};

/// The key of the transaction-scoped advisory lock that serialises syncs: instances
/// starting together would otherwise both insert a new job and one would fail on its
/// name. Transaction-scoped, so it is released at commit even behind a pooler.
const SYNC_LOCK: i64 = 0x6261_7463_6873_796e; // "batchsyn"

fn defaults(settings: &JobSettings) -> StoreResult<serde_json::Value> {
    let value = serde_json::to_value(settings)
        .map_err(|e| StoreError::Decode(format!("jobs.defaults: {e}")))?;
    Ok(json(&value).into_owned())
}

pub(super) async fn sync_jobs(
    pool: &PgPool,
    jobs: &[JobSettings],
    now: DateTime<Utc>,
) -> StoreResult<Vec<JobRecord>> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SYNC_LOCK)
        .execute(&mut *tx)
        .await?;
    let rows: Vec<(i64, String, serde_json::Value, Option<DateTime<Utc>>)> =
        sqlx::query_as("SELECT id, name, defaults, removed_at FROM jobs")
            .fetch_all(&mut *tx)
            .await?;
    let stored = rows
        .into_iter()
        .map(|(id, name, defaults, removed_at)| StoredJob {
            id,
            name,
            defaults: serde_json::from_value(defaults).ok(),
            removed: removed_at.is_some(),
        })
        .collect();
    let plan = plan_sync(stored, jobs);

    if !plan.insert.is_empty() {
        let names: Vec<&str> = plan.insert.iter().map(|s| s.name.as_str()).collect();
        let values = plan
            .insert
            .iter()
            .map(|s| defaults(s))
            .collect::<StoreResult<Vec<_>>>()?;
        // `ORDER BY n`: new jobs get their ids in the file's order, as on SQLite.
        sqlx::query(
            "INSERT INTO jobs (name, defaults, created_at, updated_at) \
             SELECT name, defaults, $3, $3 \
             FROM UNNEST($1::TEXT[], $2::JSONB[]) WITH ORDINALITY AS v(name, defaults, n) \
             ORDER BY n",
        )
        .bind(&names)
        .bind(&values)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    if !plan.update.is_empty() {
        let ids: Vec<i64> = plan.update.iter().map(|(id, _)| *id).collect();
        let values = plan
            .update
            .iter()
            .map(|(_, s)| defaults(s))
            .collect::<StoreResult<Vec<_>>>()?;
        sqlx::query(
            "UPDATE jobs SET defaults = v.defaults, removed_at = NULL, \
             version = version + 1, updated_at = $3 \
             FROM UNNEST($1::BIGINT[], $2::JSONB[]) AS v(id, defaults) WHERE jobs.id = v.id",
        )
        .bind(&ids)
        .bind(&values)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    if !plan.remove.is_empty() {
        sqlx::query(
            "UPDATE jobs SET removed_at = $1, next_run_at = NULL, \
             version = version + 1, updated_at = $1 WHERE id = ANY($2)",
        )
        .bind(now)
        .bind(&plan.remove)
        .execute(&mut *tx)
        .await?;
    }

    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs ORDER BY name");
    let rows = sqlx::query_as::<_, JobRow>(&sql)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    decode_all(rows)
}
