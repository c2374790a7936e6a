//! [`WriteBatch`] on PostgreSQL: the scheduler's hot path.
//!
//! One transaction per batch, and one statement per kind of write: each column travels
//! as one array parameter and `UNNEST` turns the arrays back into rows, so a statement's
//! text (and its prepared plan) is the same whatever the batch's size.
//!
//! Claims are compare-and-swaps that stay exact with several instances on one database:
//! under READ COMMITTED an `UPDATE` that waited for another transaction's row lock
//! re-checks its `WHERE` against the row as committed, so of two instances claiming the
//! same fire, one updates the row and the other finds it changed and loses. Within one
//! batch, claims go in rounds (see [`crate::store::batch_order`]).
//!
//! New runs get their ids from the `runs` sequence before they are inserted, sorted, and
//! handed out in batch order: so each id maps to its claim or insert without relying on
//! the order of `RETURNING` rows, which PostgreSQL does not promise.
//!
//! `forbid` is held here, across instances: at most one exclusive run of a job is going
//! (a unique index). A fire or a manual run that would be a second one is left out by
//! `ON CONFLICT DO NOTHING` (the fire is then given back or recorded as skipped, see
//! [`crate::store::batch_plan`]); a retry claim checks first and stays pending while one
//! is going.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use super::rows::{json, opt_text, text};
use crate::store::batch_order::{last_per_run, rounds};
use crate::store::batch_plan::{self, BatchWrites, Cas, Conflicts};
use crate::store::{
    BatchResult, FireClaim, LogLine, NewRun, RUNS_QUEUED_CHANNEL, RetryClaim, RunFinish, RunMark,
    StoreResult, WriteBatch,
};

/// Applies `batch` in one transaction, in the order [`batch_plan`] gives.
pub(super) async fn write_batch(pool: &PgPool, batch: &WriteBatch) -> StoreResult<BatchResult> {
    if batch.is_empty() {
        return Ok(BatchResult::default());
    }
    let mut tx = pool.begin().await?;
    let result = batch_plan::write(&mut Statements(&mut tx), batch).await?;
    tx.commit().await?;
    Ok(result)
}

/// Tells every instance listening that runs were queued, with the transaction's commit.
pub(super) async fn announce_runs_queued(tx: &mut PgConnection) -> StoreResult<()> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(RUNS_QUEUED_CHANNEL)
        .execute(tx)
        .await?;
    Ok(())
}

/// This backend's statements, on the batch's transaction.
struct Statements<'c>(&'c mut PgConnection);

impl BatchWrites for Statements<'_> {
    async fn claim_fires(&mut self, claims: &[FireClaim]) -> StoreResult<Vec<bool>> {
        claim_fires(self.0, claims).await
    }

    async fn claim_retries(&mut self, claims: &[RetryClaim]) -> StoreResult<Vec<Cas>> {
        claim_retries(self.0, claims).await
    }

    async fn insert_runs(
        &mut self,
        runs: &[&NewRun],
        conflicts: Conflicts,
    ) -> StoreResult<Vec<Option<i64>>> {
        insert_runs(self.0, runs, conflicts).await
    }

    async fn give_back(&mut self, claims: &[&FireClaim]) -> StoreResult<()> {
        give_back(self.0, claims).await
    }

    async fn mark_runs(&mut self, marks: &[RunMark]) -> StoreResult<()> {
        mark_runs(self.0, marks).await
    }

    async fn insert_logs(&mut self, logs: &[LogLine]) -> StoreResult<()> {
        insert_logs(self.0, logs).await
    }

    async fn finish_runs(&mut self, finishes: &[RunFinish]) -> StoreResult<()> {
        finish_runs(self.0, finishes).await
    }

    async fn announce_queued(&mut self) -> StoreResult<()> {
        // One wake-up per batch, not per run: NOTIFY serialises commits database-wide.
        announce_runs_queued(self.0).await
    }
}

/// The fire compare-and-swap; returns, per claim, whether it won.
async fn claim_fires(tx: &mut PgConnection, claims: &[FireClaim]) -> StoreResult<Vec<bool>> {
    let mut won = vec![false; claims.len()];
    for round in rounds(claims.iter().map(|c| c.job_id)) {
        let job_ids: Vec<i64> = round.iter().map(|&i| claims[i].job_id).collect();
        let expected: Vec<DateTime<Utc>> = round.iter().map(|&i| claims[i].expected).collect();
        let next: Vec<Option<DateTime<Utc>>> = round.iter().map(|&i| claims[i].next).collect();
        let changed: HashSet<i64> = sqlx::query_scalar(
            "UPDATE jobs SET next_run_at = v.next \
             FROM UNNEST($1::BIGINT[], $2::TIMESTAMPTZ[], $3::TIMESTAMPTZ[]) \
                  AS v(job_id, expected, next) \
             WHERE jobs.id = v.job_id AND jobs.next_run_at = v.expected RETURNING jobs.id",
        )
        .bind(&job_ids)
        .bind(&expected)
        .bind(&next)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        for &index in &round {
            won[index] = changed.contains(&claims[index].job_id);
        }
    }
    Ok(won)
}

/// Undoes the compare-and-swap of fires claimed ahead of their slot that gave way to a
/// run of their job going: each job's next fire is the claimed slot again.
async fn give_back(tx: &mut PgConnection, claims: &[&FireClaim]) -> StoreResult<()> {
    if claims.is_empty() {
        return Ok(());
    }
    let job_ids: Vec<i64> = claims.iter().map(|c| c.job_id).collect();
    let expected: Vec<DateTime<Utc>> = claims.iter().map(|c| c.expected).collect();
    let next: Vec<Option<DateTime<Utc>>> = claims.iter().map(|c| c.next).collect();
    sqlx::query(
        "UPDATE jobs SET next_run_at = v.expected \
         FROM UNNEST($1::BIGINT[], $2::TIMESTAMPTZ[], $3::TIMESTAMPTZ[]) \
              AS v(job_id, expected, next) \
         WHERE jobs.id = v.job_id AND jobs.next_run_at IS NOT DISTINCT FROM v.next",
    )
    .bind(&job_ids)
    .bind(&expected)
    .bind(&next)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The retry compare-and-swap. A retry that would be an exclusive run waits while
/// another exclusive run of its job is going: it stays pending and is [`Cas::Busy`].
async fn claim_retries(tx: &mut PgConnection, claims: &[RetryClaim]) -> StoreResult<Vec<Cas>> {
    let mut won = vec![Cas::Lost; claims.len()];
    for round in rounds(claims.iter().map(|c| c.failed_run_id)) {
        let run_ids: Vec<i64> = round.iter().map(|&i| claims[i].failed_run_id).collect();
        let expected: Vec<DateTime<Utc>> = round.iter().map(|&i| claims[i].expected).collect();
        let exclusive: Vec<bool> = round
            .iter()
            .map(|&i| claims[i].run.as_ref().is_some_and(|run| run.exclusive))
            .collect();
        // The failed attempt stops reading `retrying` once its retry has started.
        let changed: HashSet<i64> = sqlx::query_scalar(
            "UPDATE runs SET retry_at = NULL, \
             status = CASE runs.status WHEN 'retrying' THEN 'failed' ELSE runs.status END \
             FROM UNNEST($1::BIGINT[], $2::TIMESTAMPTZ[], $3::BOOLEAN[]) \
                  AS v(run_id, expected, exclusive) \
             WHERE runs.id = v.run_id AND runs.retry_at = v.expected \
               AND NOT (v.exclusive AND EXISTS (SELECT 1 FROM runs going \
                   WHERE going.job_id = runs.job_id AND going.exclusive \
                     AND going.status IN ('queued', 'running'))) \
             RETURNING runs.id",
        )
        .bind(&run_ids)
        .bind(&expected)
        .bind(&exclusive)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        let missed: Vec<usize> = round
            .iter()
            .copied()
            .filter(|&i| !changed.contains(&claims[i].failed_run_id))
            .collect();
        let still_pending = still_pending(tx, claims, &missed).await?;
        for &index in &round {
            let run_id = claims[index].failed_run_id;
            won[index] = if changed.contains(&run_id) {
                Cas::Won
            } else if still_pending.contains(&run_id) {
                Cas::Busy
            } else {
                Cas::Lost
            };
        }
    }
    Ok(won)
}

/// Of the retry claims at `indexes`, which ones' failed runs still wait for that retry.
async fn still_pending(
    tx: &mut PgConnection,
    claims: &[RetryClaim],
    indexes: &[usize],
) -> StoreResult<HashSet<i64>> {
    if indexes.is_empty() {
        return Ok(HashSet::new());
    }
    let run_ids: Vec<i64> = indexes.iter().map(|&i| claims[i].failed_run_id).collect();
    let expected: Vec<DateTime<Utc>> = indexes.iter().map(|&i| claims[i].expected).collect();
    let pending = sqlx::query_scalar(
        "SELECT runs.id FROM runs \
         JOIN UNNEST($1::BIGINT[], $2::TIMESTAMPTZ[]) AS v(run_id, expected) \
           ON runs.id = v.run_id AND runs.retry_at = v.expected",
    )
    .bind(&run_ids)
    .bind(&expected)
    .fetch_all(&mut *tx)
    .await?;
    Ok(pending.into_iter().collect())
}

/// Inserts `runs`; returns, in order, each one's id, or `None` for a row left out by
/// [`Conflicts::Yield`].
async fn insert_runs(
    tx: &mut PgConnection,
    runs: &[&NewRun],
    conflicts: Conflicts,
) -> StoreResult<Vec<Option<i64>>> {
    if runs.is_empty() {
        return Ok(Vec::new());
    }
    let count = i64::try_from(runs.len()).unwrap_or(i64::MAX);
    let mut ids: Vec<i64> = sqlx::query_scalar(
        "SELECT nextval(sequence) \
         FROM pg_get_serial_sequence('runs', 'id') AS sequence, generate_series(1, $1)",
    )
    .bind(count)
    .fetch_all(&mut *tx)
    .await?;
    ids.sort_unstable();

    let job_ids: Vec<i64> = runs.iter().map(|r| r.job_id).collect();
    let triggers: Vec<&str> = runs.iter().map(|r| r.trigger.as_str()).collect();
    let attempts: Vec<i64> = runs.iter().map(|r| i64::from(r.attempt)).collect();
    let first_run_ids: Vec<Option<i64>> = runs.iter().map(|r| r.first_run_id).collect();
    let statuses: Vec<&str> = runs.iter().map(|r| r.status.as_str()).collect();
    let scheduled: Vec<DateTime<Utc>> = runs.iter().map(|r| r.scheduled_for).collect();
    let started: Vec<DateTime<Utc>> = runs.iter().map(|r| r.started_at).collect();
    let finished: Vec<Option<DateTime<Utc>>> = runs.iter().map(|r| r.finished_at).collect();
    let error_kinds: Vec<Option<String>> = runs
        .iter()
        .map(|r| opt_text(r.error_kind.as_deref()))
        .collect();
    let error_messages: Vec<Option<String>> = runs
        .iter()
        .map(|r| opt_text(r.error_message.as_deref()))
        .collect();
    let instances: Vec<String> = runs
        .iter()
        .map(|r| text(&r.instance_id).into_owned())
        .collect();
    let exclusive: Vec<bool> = runs.iter().map(|r| r.exclusive).collect();
    let on_conflict = match conflicts {
        Conflicts::Yield => " ON CONFLICT DO NOTHING",
        Conflicts::Fail => "",
    };
    let sql = format!(
        "INSERT INTO runs (id, job_id, trigger, attempt, first_run_id, status, \
         scheduled_for, started_at, finished_at, error_kind, error_message, instance_id, \
         exclusive) \
         SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::BIGINT[]::INTEGER[], \
             $5::BIGINT[], $6::TEXT[], $7::TIMESTAMPTZ[], $8::TIMESTAMPTZ[], \
             $9::TIMESTAMPTZ[], $10::TEXT[], $11::TEXT[], $12::TEXT[], $13::BOOLEAN[]) \
         {on_conflict}"
    );
    let written = sqlx::query(&sql)
        .bind(&ids)
        .bind(&job_ids)
        .bind(&triggers)
        .bind(&attempts)
        .bind(&first_run_ids)
        .bind(&statuses)
        .bind(&scheduled)
        .bind(&started)
        .bind(&finished)
        .bind(&error_kinds)
        .bind(&error_messages)
        .bind(&instances)
        .bind(&exclusive)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if written == ids.len() as u64 {
        return Ok(ids.into_iter().map(Some).collect());
    }
    // Rows are left out rarely; only then is it worth asking which.
    let present: HashSet<i64> = sqlx::query_scalar("SELECT id FROM runs WHERE id = ANY($1)")
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
    Ok(ids
        .into_iter()
        .map(|id| present.contains(&id).then_some(id))
        .collect())
}

/// Applies the marks of runs that waited for a slot. Marks of one run are applied in
/// order (the later wins), as row by row; a mark never touches a run that has ended,
/// so a mark that arrives after the finish cannot revive it.
async fn mark_runs(tx: &mut PgConnection, marks: &[RunMark]) -> StoreResult<()> {
    let latest = last_per_run(marks, |mark| mark.run_id);
    if latest.is_empty() {
        return Ok(());
    }
    let run_ids: Vec<i64> = latest.iter().map(|m| m.run_id).collect();
    let statuses: Vec<&str> = latest.iter().map(|m| m.status.as_str()).collect();
    let started: Vec<Option<DateTime<Utc>>> = latest.iter().map(|m| m.started_at).collect();
    sqlx::query(
        "UPDATE runs SET status = v.status, started_at = v.started_at \
         FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TIMESTAMPTZ[]) AS v(run_id, status, started_at) \
         WHERE runs.id = v.run_id AND runs.status IN ('queued', 'running')",
    )
    .bind(&run_ids)
    .bind(&statuses)
    .bind(&started)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Appends log lines; their ids follow batch order, which is the order they are read in.
/// Lines of a run that is gone (pruned while a task it spawned still logged) are left
/// out rather than failing the batch on the foreign key.
async fn insert_logs(tx: &mut PgConnection, logs: &[LogLine]) -> StoreResult<()> {
    if logs.is_empty() {
        return Ok(());
    }
    let run_ids: Vec<i64> = logs.iter().map(|l| l.run_id).collect();
    let times: Vec<DateTime<Utc>> = logs.iter().map(|l| l.ts).collect();
    let levels: Vec<String> = logs.iter().map(|l| text(&l.level).into_owned()).collect();
    let messages: Vec<String> = logs.iter().map(|l| text(&l.message).into_owned()).collect();
    let fields: Vec<serde_json::Value> =
        logs.iter().map(|l| json(&l.fields).into_owned()).collect();
    // `ORDER BY n` makes the serial ids follow the arrays' order.
    let written = sqlx::query(
        "INSERT INTO run_logs (run_id, ts, level, message, fields) \
         SELECT run_id, ts, level, message, fields \
         FROM UNNEST($1::BIGINT[], $2::TIMESTAMPTZ[], $3::TEXT[], $4::TEXT[], $5::JSONB[]) \
              WITH ORDINALITY AS v(run_id, ts, level, message, fields, n) \
         WHERE EXISTS (SELECT 1 FROM runs WHERE runs.id = v.run_id) \
         ORDER BY n",
    )
    .bind(&run_ids)
    .bind(&times)
    .bind(&levels)
    .bind(&messages)
    .bind(&fields)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let dropped = logs.len() as u64 - written;
    if dropped > 0 {
        tracing::warn!(
            dropped,
            "log lines of runs that no longer exist were dropped"
        );
    }
    Ok(())
}

/// Records the ends of runs. When one run is finished twice in a batch, the later finish
/// wins, as it would row by row.
async fn finish_runs(tx: &mut PgConnection, finishes: &[RunFinish]) -> StoreResult<()> {
    let unique = last_per_run(finishes, |finish| finish.run_id);
    if unique.is_empty() {
        return Ok(());
    }
    let run_ids: Vec<i64> = unique.iter().map(|f| f.run_id).collect();
    let statuses: Vec<&str> = unique.iter().map(|f| f.status.as_str()).collect();
    let started: Vec<Option<DateTime<Utc>>> = unique.iter().map(|f| f.started_at).collect();
    let finished: Vec<DateTime<Utc>> = unique.iter().map(|f| f.finished_at).collect();
    let durations: Vec<Option<i64>> = unique.iter().map(|f| f.duration_ms).collect();
    let checked: Vec<i64> = unique.iter().map(|f| f.items_checked).collect();
    let updated: Vec<i64> = unique.iter().map(|f| f.items_updated).collect();
    let totals: Vec<Option<i64>> = unique.iter().map(|f| f.items_total).collect();
    let kinds: Vec<Option<String>> = unique
        .iter()
        .map(|f| opt_text(f.error_kind.as_deref()))
        .collect();
    let messages: Vec<Option<String>> = unique
        .iter()
        .map(|f| opt_text(f.error_message.as_deref()))
        .collect();
    let summaries: Vec<Option<String>> = unique
        .iter()
        .map(|f| opt_text(f.summary.as_deref()))
        .collect();
    let retries: Vec<Option<DateTime<Utc>>> = unique.iter().map(|f| f.retry_at).collect();
    sqlx::query(
        "UPDATE runs SET status = v.status, started_at = v.started_at, \
         finished_at = v.finished_at, duration_ms = v.duration_ms, \
         items_checked = v.items_checked, items_updated = v.items_updated, \
         items_total = v.items_total, error_kind = v.error_kind, \
         error_message = v.error_message, summary = v.summary, retry_at = v.retry_at \
         FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TIMESTAMPTZ[], $4::TIMESTAMPTZ[], \
              $5::BIGINT[], $6::BIGINT[], $7::BIGINT[], $8::BIGINT[], $9::TEXT[], \
              $10::TEXT[], $11::TEXT[], $12::TIMESTAMPTZ[]) \
              AS v(run_id, status, started_at, finished_at, duration_ms, items_checked, \
                   items_updated, items_total, error_kind, error_message, summary, retry_at) \
         WHERE runs.id = v.run_id",
    )
    .bind(&run_ids)
    .bind(&statuses)
    .bind(&started)
    .bind(&finished)
    .bind(&durations)
    .bind(&checked)
    .bind(&updated)
    .bind(&totals)
    .bind(&kinds)
    .bind(&messages)
    .bind(&summaries)
    .bind(&retries)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
