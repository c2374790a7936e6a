//! [`WriteBatch`] on SQLite: the scheduler's hot path.
//!
//! One `BEGIN IMMEDIATE` transaction per batch, and a handful of multi-row statements per
//! kind of write instead of one statement per row: with sqlx every statement is a round
//! trip to the connection's worker thread, so row-at-a-time writes could not keep up with
//! thousands of fires a second.
//!
//! Two things make the multi-row form exact rather than merely fast:
//!
//! - A claim's result must be the one sequential `UPDATE`s would give: claims go in
//!   rounds (see [`crate::store::batch_order`]), as on PostgreSQL.
//! - SQLite does not promise the order of `RETURNING` rows, so new runs get their ids from
//!   the store: the transaction holds the write lock, so the ids after the current maximum
//!   are free, and handing them out in batch order maps each id to its claim or insert.

use std::collections::HashSet;

use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};

use super::rows::{micros, opt_micros, to_json};
use crate::store::batch_order::{last_per_run, rounds};
use crate::store::batch_plan::{self, BatchWrites, Cas, Conflicts};
use crate::store::{
    BatchResult, FireClaim, LogLine, NewRun, RetryClaim, RunFinish, RunMark, StoreResult,
    WriteBatch,
};

/// The most rows one statement carries. Compiling a long `VALUES` list costs about as
/// much as executing it, so statements come in a few fixed sizes (see [`chunks`]) that
/// each connection prepares once and then reuses from its statement cache. 256 rows of
/// the widest statement (13 columns) stay far below SQLite's 32,766 bound parameters.
const MAX_ROWS: usize = 256;
const _: () = assert!(MAX_ROWS * 13 <= 32_766);

/// Splits `rows` into chunks of `MAX_ROWS`, then powers of two for the rest, so that
/// every statement has one of nine shapes and is served from the statement cache.
fn chunks<T>(rows: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        // The largest power of two that fits (MAX_ROWS is one).
        let size = MAX_ROWS.min(1 << rest.len().ilog2());
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        Some(chunk)
    })
}

/// Applies `batch` in one transaction, in the order [`batch_plan`] gives.
pub(super) async fn write_batch(pool: &SqlitePool, batch: &WriteBatch) -> StoreResult<BatchResult> {
    if batch.is_empty() {
        return Ok(BatchResult::default());
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let result = batch_plan::write(&mut Statements(&mut tx), batch).await?;
    tx.commit().await?;
    Ok(result)
}

/// This backend's statements, on the batch's transaction.
struct Statements<'c>(&'c mut SqliteConnection);

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
        // One server per file: nobody else to tell.
        Ok(())
    }
}

/// The fire compare-and-swap; returns, per claim, whether it won.
async fn claim_fires(tx: &mut SqliteConnection, claims: &[FireClaim]) -> StoreResult<Vec<bool>> {
    let mut won = vec![false; claims.len()];
    for round in rounds(claims.iter().map(|c| c.job_id)) {
        for chunk in chunks(&round) {
            let mut sql = QueryBuilder::<Sqlite>::new("WITH v(job_id, expected, next) AS (");
            sql.push_values(chunk, |mut row, &index| {
                let claim = &claims[index];
                row.push_bind(claim.job_id)
                    .push_bind(micros(claim.expected))
                    .push_bind(opt_micros(claim.next));
            });
            sql.push(
                ") UPDATE jobs SET next_run_at = v.next FROM v \
                 WHERE jobs.id = v.job_id AND jobs.next_run_at = v.expected RETURNING id",
            );
            let changed: HashSet<i64> = sql
                .build_query_scalar::<i64>()
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect();
            for &index in chunk {
                won[index] = changed.contains(&claims[index].job_id);
            }
        }
    }
    Ok(won)
}

/// Undoes the compare-and-swap of fires claimed ahead of their slot that gave way to a
/// run of their job going: each job's next fire is the claimed slot again.
async fn give_back(tx: &mut SqliteConnection, claims: &[&FireClaim]) -> StoreResult<()> {
    for claim in claims {
        sqlx::query("UPDATE jobs SET next_run_at = $2 WHERE id = $1 AND next_run_at IS $3")
            .bind(claim.job_id)
            .bind(micros(claim.expected))
            .bind(opt_micros(claim.next))
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// The retry compare-and-swap. A retry that would be an exclusive run waits while
/// another exclusive run of its job is going: it stays pending and is [`Cas::Busy`].
async fn claim_retries(tx: &mut SqliteConnection, claims: &[RetryClaim]) -> StoreResult<Vec<Cas>> {
    let mut won = vec![Cas::Lost; claims.len()];
    for round in rounds(claims.iter().map(|c| c.failed_run_id)) {
        for chunk in chunks(&round) {
            let mut sql = QueryBuilder::<Sqlite>::new("WITH v(run_id, expected, exclusive) AS (");
            sql.push_values(chunk, |mut row, &index| {
                let claim = &claims[index];
                row.push_bind(claim.failed_run_id)
                    .push_bind(micros(claim.expected))
                    .push_bind(claim.run.as_ref().is_some_and(|run| run.exclusive));
            });
            // The failed attempt stops reading `retrying` once its retry has started.
            sql.push(
                ") UPDATE runs SET retry_at = NULL, \
                 status = CASE runs.status WHEN 'retrying' THEN 'failed' ELSE runs.status END \
                 FROM v WHERE runs.id = v.run_id AND runs.retry_at = v.expected \
                 AND NOT (v.exclusive AND EXISTS (SELECT 1 FROM runs AS going \
                     WHERE going.job_id = runs.job_id AND going.exclusive = 1 \
                       AND going.status IN ('queued', 'running'))) \
                 RETURNING id",
            );
            let changed: HashSet<i64> = sql
                .build_query_scalar::<i64>()
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect();
            for &index in chunk {
                won[index] = if changed.contains(&claims[index].failed_run_id) {
                    Cas::Won
                } else if still_pending(tx, &claims[index]).await? {
                    Cas::Busy
                } else {
                    Cas::Lost
                };
            }
        }
    }
    Ok(won)
}

/// Whether the failed run of `claim` still waits for that retry. Asked only of claims
/// that missed, which are rare.
async fn still_pending(tx: &mut SqliteConnection, claim: &RetryClaim) -> StoreResult<bool> {
    let pending: Option<i64> =
        sqlx::query_scalar("SELECT id FROM runs WHERE id = $1 AND retry_at = $2")
            .bind(claim.failed_run_id)
            .bind(micros(claim.expected))
            .fetch_optional(&mut *tx)
            .await?;
    Ok(pending.is_some())
}

/// Inserts `runs` with consecutive ids; returns, in order, each one's id, or `None`
/// for a row left out by [`Conflicts::Yield`].
async fn insert_runs(
    tx: &mut SqliteConnection,
    runs: &[&NewRun],
    conflicts: Conflicts,
) -> StoreResult<Vec<Option<i64>>> {
    if runs.is_empty() {
        return Ok(Vec::new());
    }
    // `runs` is AUTOINCREMENT, so the next id is past both the highest id ever handed out
    // (sqlite_sequence) and the highest present; inserting explicit ids moves the sequence.
    let first_id: i64 = sqlx::query_scalar(
        "SELECT MAX(\
            COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'runs'), 0), \
            COALESCE((SELECT MAX(id) FROM runs), 0)) + 1",
    )
    .fetch_one(&mut *tx)
    .await?;
    let mut id = first_id;
    let mut left_out = HashSet::new();
    for chunk in chunks(runs) {
        let chunk_first = id;
        let mut sql = QueryBuilder::<Sqlite>::new(
            "INSERT INTO runs (id, job_id, trigger, attempt, first_run_id, status, \
             scheduled_for, started_at, finished_at, error_kind, error_message, instance_id, \
             exclusive) ",
        );
        sql.push_values(chunk, |mut row, run| {
            row.push_bind(id)
                .push_bind(run.job_id)
                .push_bind(run.trigger.as_str())
                .push_bind(i64::from(run.attempt))
                .push_bind(run.first_run_id)
                .push_bind(run.status.as_str())
                .push_bind(micros(run.scheduled_for))
                .push_bind(micros(run.started_at))
                .push_bind(opt_micros(run.finished_at))
                .push_bind(run.error_kind.as_deref())
                .push_bind(run.error_message.as_deref())
                .push_bind(run.instance_id.as_str())
                .push_bind(run.exclusive);
            id += 1;
        });
        if conflicts == Conflicts::Yield {
            sql.push(" ON CONFLICT DO NOTHING");
        }
        let written = sql.build().execute(&mut *tx).await?.rows_affected();
        // Rows are left out rarely; only then is it worth asking which.
        if written < chunk.len() as u64 {
            let present: HashSet<i64> =
                sqlx::query_scalar("SELECT id FROM runs WHERE id >= $1 AND id < $2")
                    .bind(chunk_first)
                    .bind(id)
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .collect();
            left_out.extend((chunk_first..id).filter(|id| !present.contains(id)));
        }
    }
    Ok((first_id..id)
        .map(|id| (!left_out.contains(&id)).then_some(id))
        .collect())
}

/// Applies the marks of runs that waited for a slot. Marks of one run are applied in
/// order (the later wins), as row by row; a mark never touches a run that has ended,
/// so a mark that arrives after the finish cannot revive it.
async fn mark_runs(tx: &mut SqliteConnection, marks: &[RunMark]) -> StoreResult<()> {
    let latest = last_per_run(marks, |mark| mark.run_id);
    for chunk in chunks(&latest) {
        let mut sql = QueryBuilder::<Sqlite>::new("WITH v(run_id, status, started_at) AS (");
        sql.push_values(chunk, |mut row, mark| {
            row.push_bind(mark.run_id)
                .push_bind(mark.status.as_str())
                .push_bind(opt_micros(mark.started_at));
        });
        sql.push(
            ") UPDATE runs SET status = v.status, started_at = v.started_at FROM v \
             WHERE runs.id = v.run_id AND runs.status IN ('queued', 'running')",
        );
        sql.build().execute(&mut *tx).await?;
    }
    Ok(())
}

/// Appends log lines; their ids follow batch order, which is the order they are read in.
/// Lines of a run that is gone (pruned while a task it spawned still logged) are left
/// out rather than failing the batch on the foreign key.
async fn insert_logs(tx: &mut SqliteConnection, logs: &[LogLine]) -> StoreResult<()> {
    let fields = logs
        .iter()
        .map(|line| to_json("run_logs.fields", &line.fields))
        .collect::<StoreResult<Vec<_>>>()?;
    let rows: Vec<(&LogLine, &String)> = logs.iter().zip(&fields).collect();
    let mut written = 0;
    for chunk in chunks(&rows) {
        let mut sql =
            QueryBuilder::<Sqlite>::new("WITH v(run_id, ts, level, message, fields) AS (");
        sql.push_values(chunk, |mut row, (line, fields)| {
            row.push_bind(line.run_id)
                .push_bind(micros(line.ts))
                .push_bind(line.level.as_str())
                .push_bind(line.message.as_str())
                .push_bind(fields.as_str());
        });
        sql.push(
            ") INSERT INTO run_logs (run_id, ts, level, message, fields) \
             SELECT run_id, ts, level, message, fields FROM v \
             WHERE run_id IN (SELECT id FROM runs)",
        );
        written += sql.build().execute(&mut *tx).await?.rows_affected();
    }
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
async fn finish_runs(tx: &mut SqliteConnection, finishes: &[RunFinish]) -> StoreResult<()> {
    let unique = last_per_run(finishes, |finish| finish.run_id);
    for chunk in chunks(&unique) {
        let mut sql = QueryBuilder::<Sqlite>::new(
            "WITH v(run_id, status, started_at, finished_at, duration_ms, items_checked, \
             items_updated, items_total, error_kind, error_message, summary, retry_at) AS (",
        );
        sql.push_values(chunk, |mut row, finish| {
            row.push_bind(finish.run_id)
                .push_bind(finish.status.as_str())
                .push_bind(opt_micros(finish.started_at))
                .push_bind(micros(finish.finished_at))
                .push_bind(finish.duration_ms)
                .push_bind(finish.items_checked)
                .push_bind(finish.items_updated)
                .push_bind(finish.items_total)
                .push_bind(finish.error_kind.as_deref())
                .push_bind(finish.error_message.as_deref())
                .push_bind(finish.summary.as_deref())
                .push_bind(opt_micros(finish.retry_at));
        });
        sql.push(
            ") UPDATE runs SET status = v.status, started_at = v.started_at, \
             finished_at = v.finished_at, duration_ms = v.duration_ms, items_checked = v.items_checked, \
             items_updated = v.items_updated, items_total = v.items_total, \
             error_kind = v.error_kind, error_message = v.error_message, \
             summary = v.summary, retry_at = v.retry_at \
             FROM v WHERE runs.id = v.run_id",
        );
        sql.build().execute(&mut *tx).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{MAX_ROWS, chunks};

    #[test]
    fn chunks_cover_every_row_in_order_with_few_distinct_sizes() {
        let rows: Vec<usize> = (0..MAX_ROWS * 2 + 100).collect();
        let sizes: Vec<usize> = chunks(&rows).map(<[usize]>::len).collect();
        assert_eq!(sizes, [MAX_ROWS, MAX_ROWS, 64, 32, 4]);
        let joined: Vec<usize> = chunks(&rows).flatten().copied().collect();
        assert_eq!(joined, rows);
        assert_eq!(chunks::<u8>(&[]).count(), 0);
    }
}
