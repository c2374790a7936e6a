//! Operator edits of jobs and their audit trail (`job_changes`) on PostgreSQL.
//!
//! As on SQLite: the compare-and-swap on `jobs.version` and the rows saying what changed
//! are written in one transaction, so the history never shows a refused change nor
//! misses a saved one. The changes of one edit are one `INSERT … SELECT FROM UNNEST`.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};

use super::rows::{ChangeRow, JOB_COLUMNS, JobRow, json, text};
use crate::store::{
    ChangeFilter, JobChange, JobChangeRecord, JobEdit, JobRecord, StoreError, StoreResult,
};

/// See [`crate::store::Store::update_job_overrides`].
pub(super) async fn update_job_overrides(
    pool: &PgPool,
    job_id: i64,
    expected_version: i64,
    edit: &JobEdit,
    now: DateTime<Utc>,
) -> StoreResult<JobRecord> {
    let overrides = serde_json::Value::Object(edit.overrides.clone());
    let mut tx = pool.begin().await?;
    let sql = format!(
        "UPDATE jobs SET overrides = $1, paused = $2, next_run_at = $3, \
         version = version + 1, updated_at = $4 \
         WHERE id = $5 AND version = $6 RETURNING {JOB_COLUMNS}"
    );
    let row = sqlx::query_as::<_, JobRow>(&sql)
        .bind(json(&overrides).as_ref())
        .bind(edit.paused)
        .bind(edit.next_run_at)
        .bind(now)
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
    let record = JobRecord::try_from(row)?;
    announce(&mut tx, &record.name).await?;
    tx.commit().await?;
    Ok(record)
}

/// Tells the other instances that job `name` changed. Sent inside the transaction, so
/// it is delivered when (and only if) the change commits.
async fn announce(tx: &mut sqlx::PgConnection, name: &str) -> StoreResult<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(crate::store::JOB_CHANGES_CHANNEL)
        .bind(name)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// See [`crate::store::Store::set_paused_by`].
pub(super) async fn set_paused_by(
    pool: &PgPool,
    job_id: i64,
    paused: bool,
    next: Option<DateTime<Utc>>,
    actor: &str,
    now: DateTime<Utc>,
) -> StoreResult<JobRecord> {
    let mut tx = pool.begin().await?;
    // Locked, so a concurrent pause cannot make both record the same change.
    let was_paused: bool = sqlx::query_scalar("SELECT paused FROM jobs WHERE id = $1 FOR UPDATE")
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
        .bind(next)
        .bind(now)
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
    let record = JobRecord::try_from(row)?;
    announce(&mut tx, &record.name).await?;
    tx.commit().await?;
    Ok(record)
}

async fn insert_changes(
    conn: &mut PgConnection,
    job_id: i64,
    changes: &[JobChange],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let actors: Vec<String> = changes
        .iter()
        .map(|c| text(&c.actor).into_owned())
        .collect();
    let fields: Vec<String> = changes
        .iter()
        .map(|c| text(&c.field).into_owned())
        .collect();
    let value = |v: &Option<serde_json::Value>| v.as_ref().map(|v| json(v).into_owned());
    let old: Vec<Option<serde_json::Value>> = changes.iter().map(|c| value(&c.old_value)).collect();
    let new: Vec<Option<serde_json::Value>> = changes.iter().map(|c| value(&c.new_value)).collect();
    // `ORDER BY n`: the changes' ids follow their order, which is the order they are read in.
    sqlx::query(
        "INSERT INTO job_changes (job_id, actor, field, old_value, new_value, changed_at) \
         SELECT $1, actor, field, old_value, new_value, $2 \
         FROM UNNEST($3::TEXT[], $4::TEXT[], $5::JSONB[], $6::JSONB[]) \
              WITH ORDINALITY AS v(actor, field, old_value, new_value, n) \
         ORDER BY n",
    )
    .bind(job_id)
    .bind(now)
    .bind(&actors)
    .bind(&fields)
    .bind(&old)
    .bind(&new)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// See [`crate::store::Store::job_changes`].
pub(super) async fn job_changes(
    pool: &PgPool,
    filter: &ChangeFilter,
) -> StoreResult<Vec<JobChangeRecord>> {
    let mut sql = QueryBuilder::<Postgres>::new(
        "SELECT job_changes.id, job_changes.job_id, \
         (SELECT jobs.name FROM jobs WHERE jobs.id = job_changes.job_id) AS job_name, \
         job_changes.actor, job_changes.field, job_changes.old_value, \
         job_changes.new_value, job_changes.changed_at FROM job_changes WHERE TRUE",
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
