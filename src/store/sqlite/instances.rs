//! The instances table in SQLite.

use chrono::{DateTime, Utc};
use sqlx::SqlitePool;

use super::rows::{micros, opt_micros};
use crate::store::{InstanceKind, InstanceRecord, LeaderTerm, NewInstance, StoreResult};

type InstanceRow = crate::store::rows::InstanceRow<i64>;
type TermRow = crate::store::rows::TermRow<i64>;

pub(super) async fn register(
    pool: &SqlitePool,
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
    .bind(micros(now))
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn heartbeat(
    pool: &SqlitePool,
    id: &str,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let renewed = sqlx::query(
        "UPDATE instances SET heartbeat_at = MAX(heartbeat_at, $2) \
         WHERE id = $1 AND stopped_at IS NULL",
    )
    .bind(id)
    .bind(micros(now))
    .execute(pool)
    .await?;
    Ok(renewed.rows_affected() > 0)
}

pub(super) async fn stop(pool: &SqlitePool, id: &str, now: DateTime<Utc>) -> StoreResult<()> {
    sqlx::query("UPDATE instances SET stopped_at = $2 WHERE id = $1 AND stopped_at IS NULL")
        .bind(id)
        .bind(micros(now))
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn stop_others(
    pool: &SqlitePool,
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
    .bind(micros(now))
    .execute(pool)
    .await?;
    Ok(stopped.rows_affected())
}

pub(super) async fn list(
    pool: &SqlitePool,
    since: DateTime<Utc>,
) -> StoreResult<Vec<InstanceRecord>> {
    let rows = sqlx::query_as::<_, InstanceRow>(
        "SELECT id, kind, host, pid, started_at, heartbeat_at, stopped_at, \
         (SELECT COUNT(*) FROM runs WHERE runs.instance_id = instances.id \
          AND runs.status IN ('queued', 'running')) AS running_runs \
         FROM instances WHERE stopped_at IS NULL OR stopped_at >= $1 \
         ORDER BY started_at DESC, id",
    )
    .bind(opt_micros(Some(since)))
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(InstanceRecord::try_from).collect()
}

pub(super) async fn claim_leadership(
    pool: &SqlitePool,
    name: &str,
    candidate: &str,
    ttl: chrono::Duration,
    now: DateTime<Utc>,
) -> StoreResult<Option<LeaderTerm>> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    // A live term of the candidate is renewed (same term); a free or expired lease is
    // taken with a new term; a live term of someone else is left alone.
    sqlx::query(
        "INSERT INTO leadership (name, holder, elected_at, expires_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (name) DO UPDATE SET \
             elected_at = CASE WHEN leadership.holder = excluded.holder \
                 AND leadership.expires_at > $3 THEN leadership.elected_at \
                 ELSE excluded.elected_at END, \
             holder = excluded.holder, \
             expires_at = excluded.expires_at \
         WHERE (leadership.holder = excluded.holder AND leadership.expires_at > $3) \
            OR leadership.expires_at <= $3",
    )
    .bind(name)
    .bind(candidate)
    .bind(micros(now))
    .bind(micros(now + ttl))
    .execute(&mut *tx)
    .await?;
    let term = sqlx::query_as::<_, TermRow>(
        "SELECT holder, elected_at, expires_at FROM leadership WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    term.map(LeaderTerm::try_from).transpose()
}

pub(super) async fn resign_leadership(
    pool: &SqlitePool,
    name: &str,
    holder: &str,
    elected_at: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM leadership WHERE name = $1 AND holder = $2 AND elected_at = $3")
        .bind(name)
        .bind(holder)
        .bind(micros(elected_at))
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn leadership(pool: &SqlitePool, name: &str) -> StoreResult<Option<LeaderTerm>> {
    let term = sqlx::query_as::<_, TermRow>(
        "SELECT holder, elected_at, expires_at FROM leadership WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(pool)
    .await?;
    term.map(LeaderTerm::try_from).transpose()
}
