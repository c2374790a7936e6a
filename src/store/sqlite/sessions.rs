//! The index of signed-in sessions by user, in SQLite (see
//! `migrations/sqlite/0009_sessions.sql`). The sessions themselves are the session
//! layer's rows in `tower_sessions`, a table that layer creates at start-up; the
//! functions that delete from it are only called once it exists.

use chrono::{DateTime, Utc};
use sqlx::SqlitePool;

use super::rows::micros;
use crate::store::StoreResult;

pub(super) async fn index_session(
    pool: &SqlitePool,
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
    .bind(micros(now))
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn end_sessions_of_user(
    pool: &SqlitePool,
    user_id: i64,
    keep: Option<&str>,
) -> StoreResult<u64> {
    // One transaction, so no session is left without its index row to find it by.
    let mut tx = pool.begin().await?;
    let ended = sqlx::query(
        "DELETE FROM tower_sessions WHERE id IN \
         (SELECT session_id FROM user_sessions WHERE user_id = $1 AND session_id IS NOT $2)",
    )
    .bind(user_id)
    .bind(keep)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query("DELETE FROM user_sessions WHERE user_id = $1 AND session_id IS NOT $2")
        .bind(user_id)
        .bind(keep)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(ended)
}

pub(super) async fn prune_session_index(pool: &SqlitePool) -> StoreResult<u64> {
    let pruned = sqlx::query(
        "DELETE FROM user_sessions WHERE session_id NOT IN (SELECT id FROM tower_sessions)",
    )
    .execute(pool)
    .await?
    .rows_affected();
    Ok(pruned)
}

pub(super) async fn delete_unindexed_sessions(pool: &SqlitePool) -> StoreResult<u64> {
    let deleted = sqlx::query(
        "DELETE FROM tower_sessions WHERE id NOT IN (SELECT session_id FROM user_sessions)",
    )
    .execute(pool)
    .await?
    .rows_affected();
    Ok(deleted)
}
