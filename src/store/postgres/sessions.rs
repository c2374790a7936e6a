//! The index of signed-in sessions by user on PostgreSQL (see
//! `migrations/postgres/0009_sessions.sql`). The sessions themselves are the session
//! layer's rows in [`SESSION_TABLE`], which that layer creates at start-up; the
//! functions that delete from it are only called once it exists.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::store::StoreResult;

/// The session layer's table: tower-sessions' `PostgresStore` defaults, which
/// `PgStore::session_rows` keeps (the store suite checks the two agree).
const SESSION_TABLE: &str = "\"tower_sessions\".\"session\"";

pub(super) async fn index_session(
    pool: &PgPool,
    session_id: &str,
    user_id: i64,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    // A replaced row can only be a session id reused after its session ended.
    sqlx::query(
        "INSERT INTO user_sessions (session_id, user_id, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (session_id) DO UPDATE SET user_id = excluded.user_id, \
         created_at = excluded.created_at",
    )
    .bind(session_id)
    .bind(user_id)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn end_sessions_of_user(
    pool: &PgPool,
    user_id: i64,
    keep: Option<&str>,
) -> StoreResult<u64> {
    // One statement: the index rows and the sessions they name go together, so no
    // session is left without its index row to find it by.
    let ended: i64 = sqlx::query_scalar(&format!(
        "WITH gone AS (DELETE FROM user_sessions \
             WHERE user_id = $1 AND session_id IS DISTINCT FROM $2::TEXT \
             RETURNING session_id), \
         ended AS (DELETE FROM {SESSION_TABLE} WHERE id IN (SELECT session_id FROM gone) \
             RETURNING 1) \
         SELECT COUNT(*) FROM ended"
    ))
    .bind(user_id)
    .bind(keep)
    .fetch_one(pool)
    .await?;
    Ok(u64::try_from(ended).unwrap_or(0))
}

pub(super) async fn prune_session_index(pool: &PgPool) -> StoreResult<u64> {
    let pruned = sqlx::query(&format!(
        "DELETE FROM user_sessions WHERE NOT EXISTS \
         (SELECT 1 FROM {SESSION_TABLE} AS s WHERE s.id = user_sessions.session_id)"
    ))
    .execute(pool)
    .await?
    .rows_affected();
    Ok(pruned)
}

pub(super) async fn delete_unindexed_sessions(pool: &PgPool) -> StoreResult<u64> {
    let deleted = sqlx::query(&format!(
        "DELETE FROM {SESSION_TABLE} AS s WHERE NOT EXISTS \
         (SELECT 1 FROM user_sessions AS u WHERE u.session_id = s.id)"
    ))
    .execute(pool)
    .await?
    .rows_affected();
    Ok(deleted)
}
