//! The instances table on PostgreSQL. Every time comes from the caller, who reads it
//! from the database first (`database_now`), so all instances are judged by one clock.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::store::{InstanceKind, InstanceRecord, NewInstance, StoreError, StoreResult};

#[derive(sqlx::FromRow)]
struct InstanceRow {
    id: String,
    kind: String,
    host: String,
    pid: i64,
    started_at: DateTime<Utc>,
    heartbeat_at: DateTime<Utc>,
    stopped_at: Option<DateTime<Utc>>,
    running_runs: i64,
}

impl TryFrom<InstanceRow> for InstanceRecord {
    type Error = StoreError;

    fn try_from(row: InstanceRow) -> StoreResult<Self> {
        Ok(InstanceRecord {
            kind: row
                .kind
                .parse::<InstanceKind>()
                .map_err(StoreError::Decode)?,
            started_at: row.started_at,
            heartbeat_at: row.heartbeat_at,
            stopped_at: row.stopped_at,
            running_runs: u64::try_from(row.running_runs).unwrap_or(0),
            id: row.id,
            host: row.host,
            pid: row.pid,
        })
    }
}

pub(super) async fn now(pool: &PgPool) -> StoreResult<DateTime<Utc>> {
    Ok(sqlx::query_scalar("SELECT now()").fetch_one(pool).await?)
}

pub(super) async fn register(
    pool: &PgPool,
    instance: &NewInstance,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO instances (id, kind, host, pid, started_at, heartbeat_at) \
         VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(&instance.id)
    .bind(instance.kind.as_str())
    .bind(&instance.host)
    .bind(i64::from(instance.pid))
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn heartbeat(pool: &PgPool, id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
    let renewed = sqlx::query(
        "UPDATE instances SET heartbeat_at = GREATEST(heartbeat_at, $2) \
         WHERE id = $1 AND stopped_at IS NULL",
    )
    .bind(id)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(renewed.rows_affected() > 0)
}

pub(super) async fn stop(pool: &PgPool, id: &str, now: DateTime<Utc>) -> StoreResult<()> {
    sqlx::query("UPDATE instances SET stopped_at = $2 WHERE id = $1 AND stopped_at IS NULL")
        .bind(id)
        .bind(now)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn stop_others(
    pool: &PgPool,
    kind: InstanceKind,
    except: &str,
    now: DateTime<Utc>,
) -> StoreResult<u64> {
    let stopped = sqlx::query(
        "UPDATE instances SET stopped_at = $3 \
         WHERE kind = $1 AND id <> $2 AND stopped_at IS NULL",
    )
    .bind(kind.as_str())
    .bind(except)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(stopped.rows_affected())
}

pub(super) async fn list(pool: &PgPool, since: DateTime<Utc>) -> StoreResult<Vec<InstanceRecord>> {
    let rows = sqlx::query_as::<_, InstanceRow>(
        "SELECT id, kind, host, pid, started_at, heartbeat_at, stopped_at, \
         (SELECT COUNT(*) FROM runs WHERE runs.instance_id = instances.id \
          AND runs.status IN ('queued', 'running')) AS running_runs \
         FROM instances WHERE stopped_at IS NULL OR stopped_at >= $1 \
         ORDER BY started_at DESC, id",
    )
    .bind(since)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(InstanceRecord::try_from).collect()
}
