//! API tokens in SQLite.

use chrono::{DateTime, Utc};
use sqlx::SqlitePool;

use super::rows::{micros, opt_micros};
use crate::store::{ApiToken, NewApiToken, Role, StoreError, StoreResult, TokenRef};

const TOKEN_COLUMNS: &str =
    "id, user_id, name, token_hash, role, created_at, expires_at, last_used_at, revoked_at";

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: i64,
    user_id: i64,
    name: String,
    token_hash: String,
    role: String,
    created_at: i64,
    expires_at: Option<i64>,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl TryFrom<TokenRow> for ApiToken {
    type Error = StoreError;

    fn try_from(row: TokenRow) -> StoreResult<Self> {
        let time = |stored: i64| {
            DateTime::from_timestamp_micros(stored)
                .ok_or_else(|| StoreError::Decode(format!("time {stored} µs is out of range")))
        };
        let opt_time = |stored: Option<i64>| stored.map(time).transpose();
        Ok(ApiToken {
            role: row
                .role
                .parse::<Role>()
                .map_err(|e| StoreError::Decode(format!("token role: {e}")))?,
            created_at: time(row.created_at)?,
            expires_at: opt_time(row.expires_at)?,
            last_used_at: opt_time(row.last_used_at)?,
            revoked_at: opt_time(row.revoked_at)?,
            id: row.id,
            user_id: row.user_id,
            name: row.name,
            token_hash: row.token_hash,
        })
    }
}

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
        .map_err(|error| match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
            _ => error.into(),
        })?;
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
