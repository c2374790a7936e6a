//! Console users in SQLite.

use chrono::{DateTime, Utc};
use sqlx::SqlitePool;

use super::rows::micros;
use crate::store::{NewUser, Role, StoreError, StoreResult, User, UserUpdate};

const USER_COLUMNS: &str =
    "id, name, password_hash, role, disabled, must_change_password, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct UserRow {
    id: i64,
    name: String,
    password_hash: String,
    role: String,
    disabled: bool,
    must_change_password: bool,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(row: UserRow) -> StoreResult<Self> {
        let time = |stored: i64| {
            DateTime::from_timestamp_micros(stored)
                .ok_or_else(|| StoreError::Decode(format!("time {stored} µs is out of range")))
        };
        Ok(User {
            role: row
                .role
                .parse::<Role>()
                .map_err(|e| StoreError::Decode(format!("user role: {e}")))?,
            created_at: time(row.created_at)?,
            updated_at: time(row.updated_at)?,
            id: row.id,
            name: row.name,
            password_hash: row.password_hash,
            disabled: row.disabled,
            must_change_password: row.must_change_password,
        })
    }
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

pub(super) async fn create_user(
    pool: &SqlitePool,
    user: &NewUser,
    now: DateTime<Utc>,
) -> StoreResult<User> {
    let sql = format!(
        "INSERT INTO users (name, password_hash, role, disabled, must_change_password, \
         created_at, updated_at) VALUES ($1, $2, $3, 0, $5, $4, $4) RETURNING {USER_COLUMNS}"
    );
    let row = sqlx::query_as::<_, UserRow>(&sql)
        .bind(&user.name)
        .bind(&user.password_hash)
        .bind(user.role.as_str())
        .bind(micros(now))
        .bind(user.must_change_password)
        .fetch_one(pool)
        .await
        .map_err(|error| {
            if is_unique_violation(&error) {
                StoreError::Conflict
            } else {
                error.into()
            }
        })?;
    row.try_into()
}

pub(super) async fn user_by_name(pool: &SqlitePool, name: &str) -> StoreResult<Option<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE name = $1");
    let row = sqlx::query_as::<_, UserRow>(&sql)
        .bind(name)
        .fetch_optional(pool)
        .await?;
    row.map(User::try_from).transpose()
}

pub(super) async fn user_by_id(pool: &SqlitePool, id: i64) -> StoreResult<Option<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
    let row = sqlx::query_as::<_, UserRow>(&sql)
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.map(User::try_from).transpose()
}

pub(super) async fn users(pool: &SqlitePool) -> StoreResult<Vec<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY name");
    let rows = sqlx::query_as::<_, UserRow>(&sql).fetch_all(pool).await?;
    rows.into_iter().map(User::try_from).collect()
}

pub(super) async fn update_user(
    pool: &SqlitePool,
    id: i64,
    update: &UserUpdate,
    now: DateTime<Utc>,
) -> StoreResult<User> {
    // COALESCE keeps a column whose new value is not given (NULL).
    let sql = format!(
        "UPDATE users SET role = COALESCE($2, role), disabled = COALESCE($3, disabled), \
         password_hash = COALESCE($4, password_hash), \
         must_change_password = COALESCE($6, must_change_password), updated_at = $5 \
         WHERE id = $1 RETURNING {USER_COLUMNS}"
    );
    let row = sqlx::query_as::<_, UserRow>(&sql)
        .bind(id)
        .bind(update.role.map(Role::as_str))
        .bind(update.disabled)
        .bind(update.password_hash.as_deref())
        .bind(micros(now))
        .bind(update.must_change_password)
        .fetch_optional(pool)
        .await?;
    row.ok_or(StoreError::NotFound)?.try_into()
}

pub(super) async fn count_users(pool: &SqlitePool) -> StoreResult<u64> {
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(pool)
        .await?;
    u64::try_from(count).map_err(|e| StoreError::Decode(format!("user count: {e}")))
}
