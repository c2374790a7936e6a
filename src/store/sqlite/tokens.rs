//! API tokens in SQLite.

use chrono::{DateTime, Utc};
use sqlx::SqlitePool;

use super::rows::{TokenRow, micros, opt_micros};
use crate::store::rows::{TOKEN_COLUMNS, conflict_on_duplicate};
use crate::store::{ApiToken, NewApiToken, StoreError, StoreResult, TokenRef};

pub(super) async fn create_token(
    pool: &SqlitePool,
    token: &NewApiToken,
    now: DateTime<Utc>,
) -> StoreResult<ApiToken> {
    let sql = format!(
        "INSERT INTO api_tokens (user_id, name, token_hash, role, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {TOKEN_COLUMNS}"
    );
    let row = sqlx::query_as::<_, TokenRow>(&sql)
        .bind(token.user_id)
        .bind(&token.name)
        .bind(&token.token_hash)
        .bind(token.role.as_str())
        .bind(micros(now))
        .bind(opt_micros(token.expires_at))
        .fetch_one(pool)
        .await
        .map_err(conflict_on_duplicate)?;
    row.try_into()
}

pub(super) async fn tokens_of_user(pool: &SqlitePool, user_id: i64) -> StoreResult<Vec<ApiToken>> {
    let sql = format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens \
         WHERE user_id = $1 AND revoked_at IS NULL ORDER BY name"
    );
    let rows = sqlx::query_as::<_, TokenRow>(&sql)
        .bind(user_id)
        .fetch_all(pool)
        .await?;
    rows.into_iter().map(ApiToken::try_from).collect()
}

pub(super) async fn token_by_hash(
    pool: &SqlitePool,
    token_hash: &str,
) -> StoreResult<Option<ApiToken>> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1");
    let row = sqlx::query_as::<_, TokenRow>(&sql)
        .bind(token_hash)
        .fetch_optional(pool)
        .await?;
    row.map(ApiToken::try_from).transpose()
}

pub(super) async fn revoke_token(
    pool: &SqlitePool,
    user_id: i64,
    token: TokenRef<'_>,
    now: DateTime<Utc>,
) -> StoreResult<ApiToken> {
    // The user's id is part of every match, so nobody revokes someone else's token by
    // guessing its id.
    let column = match token {
        TokenRef::Id(_) => "id",
        TokenRef::Name(_) => "name",
    };
    let sql = format!(
        "UPDATE api_tokens SET revoked_at = $3 \
         WHERE user_id = $1 AND {column} = $2 AND revoked_at IS NULL \
         RETURNING {TOKEN_COLUMNS}"
    );
    let query = sqlx::query_as::<_, TokenRow>(&sql).bind(user_id);
    let query = match token {
        TokenRef::Id(id) => query.bind(id),
        TokenRef::Name(name) => query.bind(name),
    };
    let row = query.bind(micros(now)).fetch_optional(pool).await?;
    row.ok_or(StoreError::NotFound)?.try_into()
}

pub(super) async fn touch_token(pool: &SqlitePool, id: i64, now: DateTime<Utc>) -> StoreResult<()> {
    sqlx::query(
        "UPDATE api_tokens SET last_used_at = $2 \
         WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
    )
    .bind(id)
    .bind(micros(now))
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn revoke_tokens_of_user(
    pool: &SqlitePool,
    user_id: i64,
    now: DateTime<Utc>,
) -> StoreResult<u64> {
    let revoked = sqlx::query(
        "UPDATE api_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .bind(micros(now))
    .execute(pool)
    .await?
    .rows_affected();
    Ok(revoked)
}
