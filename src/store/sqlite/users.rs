//! Console users in SQLite.

use chrono::{DateTime, Utc};
use sqlx::SqlitePool;

use super::rows::{UserRow, micros};
use crate::store::rows::{USER_COLUMNS, conflict_on_duplicate};
use crate::store::{NewUser, Role, StoreError, StoreResult, User, UserUpdate};

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
        .map_err(conflict_on_duplicate)?;
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
