//! Operator edits of jobs and their audit trail (`job_changes`).
//!
//! An edit is a compare-and-swap on `jobs.version` (with the new overrides, paused state
//! and next fire) plus the rows saying what changed, written in one transaction: either
//! both land or neither does, so the history never shows a change that was refused, nor
//! misses one that was saved.

use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};

use super::rows::{ChangeRow, JOB_COLUMNS, JobRow, micros, opt_micros, to_json};
use crate::store::{
    ChangeFilter, JobChange, JobChangeRecord, JobEdit, JobRecord, StoreError, StoreResult,
};

/// See [`crate::store::Store::update_job_overrides`].
pub(super) async fn update_job_overrides(
    pool: &SqlitePool,
    job_id: i64,
    expected_version: i64,
    edit: &JobEdit,
    now: DateTime<Utc>,
) -> StoreResult<JobRecord> {
    let overrides = to_json("jobs.overrides", &edit.overrides)?;
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let sql = format!(
        "UPDATE jobs SET overrides = $1, paused = $2, next_run_at = $3, \
         version = version + 1, updated_at = $4 \
         WHERE id = $5 AND version = $6 RETURNING {JOB_COLUMNS}"
    );
    let row = sqlx::query_as::<_, JobRow>(&sql)
        .bind(&overrides)
        .bind(edit.paused)
        .bind(opt_micros(edit.next_run_at))
        .bind(micros(now))
        .bind(job_id)
        .bind(expected_version)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = row else {
        // Dropping the transaction rolls it back; tell a missing job from a stale version.
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM jobs WHERE id = $1")
            .bind(job_id)
            .fetch_optional(&mut *tx)
            .await?;
        return Err(match exists {
            Some(_) => StoreError::Conflict,
            None => StoreError::NotFound,
        });
    };
    insert_changes(&mut tx, job_id, &edit.changes, now).await?;
    tx.commit().await?;
    JobRecord::try_from(row)
}

/// See [`crate::store::Store::set_paused_by`].
pub(super) async fn set_paused_by(
    pool: &SqlitePool,
    job_id: i64,
    paused: bool,
    next: Option<DateTime<Utc>>,
    actor: &str,
    now: DateTime<Utc>,
) -> StoreResult<JobRecord> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let was_paused: bool = sqlx::query_scalar("SELECT paused FROM jobs WHERE id = $1")
        .bind(job_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
    let sql = format!(
        "UPDATE jobs SET paused = $1, next_run_at = $2, version = version + 1, \
         updated_at = $3 WHERE id = $4 RETURNING {JOB_COLUMNS}"
    );
    let row = sqlx::query_as::<_, JobRow>(&sql)
        .bind(paused)
        .bind(opt_micros(next))
        .bind(micros(now))
        .bind(job_id)
        .fetch_one(&mut *tx)
        .await?;
    if was_paused != paused {
        let change = JobChange {
            actor: actor.to_owned(),
            field: "paused".into(),
            old_value: Some(was_paused.into()),
            new_value: Some(paused.into()),
        };
        insert_changes(&mut tx, job_id, &[change], now).await?;
    }
    tx.commit().await?;
    JobRecord::try_from(row)
}

async fn insert_changes(
    conn: &mut SqliteConnection,
    job_id: i64,
    changes: &[JobChange],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    for change in changes {
        let old_value = change
            .old_value
            .as_ref()
            .map(|value| to_json("job_changes.old_value", value))
            .transpose()?;
        let new_value = change
            .new_value
            .as_ref()
            .map(|value| to_json("job_changes.new_value", value))
            .transpose()?;
        sqlx::query(
            "INSERT INTO job_changes (job_id, actor, field, old_value, new_value, changed_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(job_id)
        .bind(&change.actor)
        .bind(&change.field)
        .bind(old_value)
        .bind(new_value)
        .bind(micros(now))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// See [`crate::store::Store::job_changes`].
pub(super) async fn job_changes(
    pool: &SqlitePool,
    filter: &ChangeFilter,
) -> StoreResult<Vec<JobChangeRecord>> {
    // The job's name by a correlated lookup, so that `job_changes` drives the query and
    // its primary key (or `job_changes_by_job`) gives the order without a sort.
    let mut sql = QueryBuilder::<Sqlite>::new(
        "SELECT job_changes.id, job_changes.job_id, \
         (SELECT jobs.name FROM jobs WHERE jobs.id = job_changes.job_id) AS job_name, \
         job_changes.actor, job_changes.field, job_changes.old_value, \
         job_changes.new_value, job_changes.changed_at FROM job_changes WHERE 1 = 1",
    );
    if let Some(job_id) = filter.job_id {
        sql.push(" AND job_changes.job_id = ").push_bind(job_id);
    }
    if let Some(before) = filter.before {
        sql.push(" AND job_changes.id < ").push_bind(before);
    }
    sql.push(" ORDER BY job_changes.id DESC LIMIT ")
        .push_bind(i64::from(filter.limit));
    let rows = sql.build_query_as::<ChangeRow>().fetch_all(pool).await?;
    rows.into_iter().map(JobChangeRecord::try_from).collect()
}
