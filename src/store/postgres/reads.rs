//! The console's aggregate reads on PostgreSQL: the same answers as SQLite's, with job
//! lists passed as one array (`= ANY($1)`) instead of chunks of bound parameters.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, QueryBuilder};

use super::rows::{JOB_COLUMNS, JobRow, RUN_COLUMNS, RunRow, decode_all};
use crate::store::{
    JobQuery, JobRecord, OutcomeBucket, RunBar, RunFilter, RunRecord, RunStatus, StoreError,
    StoreResult,
};

/// Runs started at or after `since`, by status: one range of `runs_by_start`.
pub(super) async fn status_counts_since(
    pool: &PgPool,
    since: DateTime<Utc>,
) -> StoreResult<HashMap<RunStatus, u64>> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, COUNT(*) FROM runs WHERE started_at >= $1 GROUP BY status")
            .bind(since)
            .fetch_all(pool)
            .await?;
    rows.into_iter()
        .map(|(status, count)| {
            let status = status.parse::<RunStatus>().map_err(StoreError::Decode)?;
            Ok((status, u64::try_from(count).unwrap_or(0)))
        })
        .collect()
}

/// The runs of `job_ids` since `since`, counted per job, bucket and status.
pub(super) async fn outcome_buckets(
    pool: &PgPool,
    job_ids: &[i64],
    since: DateTime<Utc>,
    width: chrono::Duration,
) -> StoreResult<Vec<OutcomeBucket>> {
    if job_ids.is_empty() {
        return Ok(Vec::new());
    }
    let width_micros = width.num_microseconds().unwrap_or(i64::MAX).max(1);
    // Whole microseconds from the window's start, divided as integers: the same buckets
    // as SQLite's INTEGER arithmetic. As there, the window starts at the id of its first
    // run, so each job's runs are one range of `runs_by_job`.
    let rows: Vec<(i64, i64, String, i64)> = sqlx::query_as(
        "SELECT job_id, \
                (EXTRACT(EPOCH FROM started_at - $2) * 1000000)::BIGINT / $3 AS bucket, \
                status, COUNT(*) \
         FROM runs \
         WHERE job_id = ANY($1) AND started_at >= $2 \
           AND id >= (SELECT id FROM runs WHERE started_at >= $2 ORDER BY started_at LIMIT 1) \
         GROUP BY job_id, bucket, status",
    )
    .bind(job_ids)
    .bind(since)
    .bind(width_micros)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(job_id, bucket, status, runs)| {
            Ok(OutcomeBucket {
                job_id,
                bucket: u32::try_from(bucket).unwrap_or(u32::MAX),
                status: status.parse::<RunStatus>().map_err(StoreError::Decode)?,
                runs: u32::try_from(runs).unwrap_or(u32::MAX),
            })
        })
        .collect()
}

/// The first attempt and every later attempt pointing at it, oldest first.
pub(super) async fn run_chain(pool: &PgPool, first_run_id: i64) -> StoreResult<Vec<RunRecord>> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM runs WHERE runs.id = $1 \
         UNION ALL \
         SELECT {RUN_COLUMNS} FROM runs WHERE runs.first_run_id = $1 AND runs.id <> $1 \
         ORDER BY 1"
    );
    let rows = sqlx::query_as::<_, RunRow>(&sql)
        .bind(first_run_id)
        .fetch_all(pool)
        .await?;
    decode_all(rows)
}

pub(super) async fn jobs_matching(pool: &PgPool, query: &JobQuery) -> StoreResult<Vec<JobRecord>> {
    // `name` is UNIQUE, so its index serves both the keyset and the order (bytewise, as
    // on SQLite: the column is COLLATE "C").
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs \
         WHERE ($1::TEXT IS NULL OR name > $1) \
           AND ($2::TEXT IS NULL OR strpos(name, $2) > 0) \
           AND ($3::TEXT IS NULL OR defaults ->> 'handler' = $3) \
         ORDER BY name LIMIT $4"
    );
    let rows = sqlx::query_as::<_, JobRow>(&sql)
        .bind(query.after.as_deref())
        .bind(query.name_contains.as_deref().map(str::to_lowercase))
        .bind(query.handler.as_deref())
        .bind(i64::from(query.limit))
        .fetch_all(pool)
        .await?;
    decode_all(rows)
}

pub(super) async fn latest_runs_of(
    pool: &PgPool,
    job_ids: &[i64],
) -> StoreResult<HashMap<i64, RunRecord>> {
    if job_ids.is_empty() {
        return Ok(HashMap::new());
    }
    // One probe of `runs_by_job` per job.
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM runs WHERE runs.id IN \
         (SELECT (SELECT MAX(r.id) FROM runs AS r WHERE r.job_id = j.id) \
          FROM jobs AS j WHERE j.id = ANY($1))"
    );
    let rows = sqlx::query_as::<_, RunRow>(&sql)
        .bind(job_ids)
        .fetch_all(pool)
        .await?;
    Ok(decode_all(rows)?
        .into_iter()
        .map(|run: RunRecord| (run.job_id, run))
        .collect())
}

pub(super) async fn job_handlers(pool: &PgPool) -> StoreResult<Vec<String>> {
    let handlers: Vec<(Option<String>,)> = sqlx::query_as(
        // Bytewise, as on SQLite.
        "SELECT DISTINCT (defaults ->> 'handler') COLLATE \"C\" AS handler FROM jobs \
         ORDER BY handler",
    )
    .fetch_all(pool)
    .await?;
    Ok(handlers
        .into_iter()
        .filter_map(|(handler,)| handler)
        .collect())
}

pub(super) async fn count_needing_attention(pool: &PgPool) -> StoreResult<u64> {
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM jobs WHERE removed_at IS NULL AND \
         (SELECT status FROM runs WHERE runs.job_id = jobs.id ORDER BY runs.id DESC LIMIT 1) \
         = 'dead'",
    )
    .fetch_one(pool)
    .await?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// See [`Store::upstream_succeeded`](crate::store::Store::upstream_succeeded).
pub(super) async fn upstream_succeeded(
    pool: &PgPool,
    job_id: i64,
    upstream: &[i64],
) -> StoreResult<Option<DateTime<Utc>>> {
    use crate::store::upstream::{NEWEST_RUN, made_due};
    let sql = format!("SELECT {RUN_COLUMNS} FROM runs {NEWEST_RUN}");
    let mut newest = Vec::with_capacity(upstream.len() + 1);
    for &of_job in upstream.iter().chain([&job_id]) {
        let run = sqlx::query_as::<_, RunRow>(&sql)
            .bind(of_job)
            .fetch_optional(pool)
            .await?
            .map(RunRecord::try_from)
            .transpose()?;
        newest.push(run);
    }
    let follower = newest.pop().flatten();
    Ok(made_due(&newest, follower.as_ref()))
}

/// See [`Store::runs`](crate::store::Store::runs).
pub(super) async fn runs(pool: &PgPool, filter: &RunFilter) -> StoreResult<Vec<RunRecord>> {
    let mut sql =
        QueryBuilder::<Postgres>::new(format!("SELECT {RUN_COLUMNS} FROM runs WHERE TRUE"));
    if let Some(job_id) = filter.job_id {
        sql.push(" AND runs.job_id = ").push_bind(job_id);
    }
    if let Some(status) = filter.status {
        sql.push(" AND runs.status = ").push_bind(status.as_str());
    }
    if let Some(trigger) = filter.trigger {
        sql.push(" AND runs.trigger = ").push_bind(trigger.as_str());
    }
    if !filter.any_status.is_empty() {
        sql.push(" AND runs.status IN (");
        let mut statuses = sql.separated(", ");
        for status in &filter.any_status {
            statuses.push_bind(status.as_str());
        }
        sql.push(")");
    }
    if let Some(from) = filter.started_from {
        sql.push(" AND runs.started_at >= ").push_bind(from);
    }
    if let Some(until) = filter.started_before {
        sql.push(" AND runs.started_at < ").push_bind(until);
    }
    if let Some(text) = &filter.error_contains {
        sql.push(" AND strpos(lower(runs.error_message), lower(")
            .push_bind(text.clone())
            .push(")) > 0");
    }
    if let Some(before) = filter.before {
        sql.push(" AND runs.id < ").push_bind(before);
    }
    sql.push(" ORDER BY runs.id DESC LIMIT ")
        .push_bind(i64::from(filter.limit));
    let rows = sql.build_query_as::<RunRow>().fetch_all(pool).await?;
    decode_all(rows)
}

pub(super) async fn run_bars(pool: &PgPool, job_id: i64, limit: u32) -> StoreResult<Vec<RunBar>> {
    // Times go over as whole microseconds, as SQLite stores them, so that one decoder
    // reads both.
    let json: String = sqlx::query_scalar(
        "SELECT COALESCE(json_agg(json_build_array(id, status, duration_ms, \
                    (EXTRACT(EPOCH FROM scheduled_for) * 1000000)::BIGINT))::TEXT, '[]') \
         FROM (SELECT id, status, duration_ms, scheduled_for FROM runs \
               WHERE job_id = $1 ORDER BY id DESC LIMIT $2) AS newest",
    )
    .bind(job_id)
    .bind(i64::from(limit))
    .fetch_one(pool)
    .await?;
    crate::store::rows::run_bars(&json)
}

pub(super) async fn latest_runs(pool: &PgPool) -> StoreResult<HashMap<i64, RunRecord>> {
    // One probe of `runs_by_job` per job; a GROUP BY would read the whole index.
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM runs WHERE runs.id IN \
         (SELECT (SELECT MAX(r.id) FROM runs AS r WHERE r.job_id = jobs.id) FROM jobs)"
    );
    let rows: Vec<RunRow> = sqlx::query_as(&sql).fetch_all(pool).await?;
    let runs: Vec<RunRecord> = decode_all(rows)?;
    Ok(runs.into_iter().map(|run| (run.job_id, run)).collect())
}
