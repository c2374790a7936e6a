//! The order of a write batch, the same on both backends: each backend writes the
//! statements ([`BatchWrites`]), this decides what goes in which and what each request
//! gets back.
//!
//! One transaction, in this order: fire claims, retry claims, the retries' runs, the
//! fires' and the manual runs' (which give way to an exclusive run of their job that is
//! going), the fires that gave way (given back when claimed ahead of their slot, recorded
//! as skipped at it), marks, log lines, finishes, and one announcement when runs were
//! queued for any instance.

use super::{
    BatchResult, ClaimResult, FireClaim, LogLine, NewRun, RetryClaim, RunFinish, RunMark,
    StoreResult, UNCLAIMED, WriteBatch,
};

/// How a compare-and-swap claim of a retry went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cas {
    Won,
    Lost,
    /// Not tried: an exclusive run of the job is going.
    Busy,
}

/// What an insert does with a row that would be a second exclusive run going (or a
/// second start of a fire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Conflicts {
    /// Leaves the row out.
    Yield,
    /// Fails the statement (and the batch, which the writer then splits).
    Fail,
}

/// The statements of a batch, on one backend's open transaction.
pub(crate) trait BatchWrites {
    /// The fire compare-and-swap; per claim, whether it won.
    async fn claim_fires(&mut self, claims: &[FireClaim]) -> StoreResult<Vec<bool>>;
    /// The retry compare-and-swap. A retry that would be an exclusive run waits while
    /// another exclusive run of its job is going: it stays pending and is [`Cas::Busy`].
    async fn claim_retries(&mut self, claims: &[RetryClaim]) -> StoreResult<Vec<Cas>>;
    /// Inserts `runs`; per run, its id, or `None` for a row left out by
    /// [`Conflicts::Yield`].
    async fn insert_runs(
        &mut self,
        runs: &[&NewRun],
        conflicts: Conflicts,
    ) -> StoreResult<Vec<Option<i64>>>;
    /// Undoes the compare-and-swap of fires claimed ahead of their slot that gave way:
    /// each job's next fire is the claimed slot again.
    async fn give_back(&mut self, claims: &[&FireClaim]) -> StoreResult<()>;
    async fn mark_runs(&mut self, marks: &[RunMark]) -> StoreResult<()>;
    async fn insert_logs(&mut self, logs: &[LogLine]) -> StoreResult<()>;
    async fn finish_runs(&mut self, finishes: &[RunFinish]) -> StoreResult<()>;
    /// Tells the other instances that runs were queued for any of them (once a batch).
    async fn announce_queued(&mut self) -> StoreResult<()>;
}

/// Writes `batch` through `writes`; the caller commits.
pub(crate) async fn write<W: BatchWrites>(
    writes: &mut W,
    batch: &WriteBatch,
) -> StoreResult<BatchResult> {
    let fires_won = writes.claim_fires(&batch.fires).await?;
    let retries_won = writes.claim_retries(&batch.retries).await?;

    // Retries first: each checked in its claim that no exclusive run of its job is going,
    // so a fire of the same job in this batch gives way to it, not the reverse.
    let retry_runs: Vec<&NewRun> = batch
        .retries
        .iter()
        .zip(&retries_won)
        .filter(|(_, won)| **won == Cas::Won)
        .filter_map(|(claim, _)| claim.run.as_ref())
        .collect();
    let mut retry_ids = writes
        .insert_runs(&retry_runs, Conflicts::Fail)
        .await?
        .into_iter();
    // Fires and manual runs give way to an exclusive run of their job that is going
    // (on another instance, or a `batchboard run` beside the server).
    let fire_runs: Vec<Option<&NewRun>> = batch
        .fires
        .iter()
        .zip(&fires_won)
        .map(|(claim, won)| claim.run.as_ref().filter(|_| *won))
        .collect();
    let yielding: Vec<&NewRun> = fire_runs
        .iter()
        .flatten()
        .copied()
        .chain(&batch.inserts)
        .collect();
    let mut yielded = writes
        .insert_runs(&yielding, Conflicts::Yield)
        .await?
        .into_iter();

    // A fire that gave way at its slot used the slot up: it is recorded as skipped (and
    // if even that is left out, the slot's run exists already and the fire was lost).
    // One claimed ahead of its slot is given back, to be decided at the slot.
    let fire_ids: Vec<Option<i64>> = fire_runs
        .iter()
        .map(|run| run.and_then(|_| yielded.next().flatten()))
        .collect();
    let gave_way = |index: usize| fire_runs[index].is_some() && fire_ids[index].is_none();
    let given_back: Vec<&FireClaim> = (0..fire_runs.len())
        .filter(|&index| gave_way(index) && batch.fires[index].early)
        .map(|index| &batch.fires[index])
        .collect();
    writes.give_back(&given_back).await?;
    let skips: Vec<NewRun> = (0..fire_runs.len())
        .filter(|&index| gave_way(index) && !batch.fires[index].early)
        .filter_map(|index| fire_runs[index])
        .map(|run| run.clone().skipped_by_overlap(run.started_at))
        .collect();
    let skip_refs: Vec<&NewRun> = skips.iter().collect();
    let mut skip_ids = writes
        .insert_runs(&skip_refs, Conflicts::Yield)
        .await?
        .into_iter();

    writes.mark_runs(&batch.marks).await?;
    writes.insert_logs(&batch.logs).await?;
    writes.finish_runs(&batch.finishes).await?;
    let queued_for_anyone = fire_runs
        .iter()
        .zip(&fire_ids)
        .any(|(run, id)| id.is_some() && run.is_some_and(|run| run.instance_id == UNCLAIMED));
    if queued_for_anyone {
        writes.announce_queued().await?;
    }

    let fires = batch
        .fires
        .iter()
        .zip(fires_won)
        .zip(fire_ids)
        .map(|((claim, won), id)| match (won, &claim.run, id) {
            (false, _, _) => ClaimResult::Lost,
            (true, None, _) => ClaimResult::Claimed,
            (true, Some(_), Some(id)) => ClaimResult::Run(id),
            (true, Some(_), None) if claim.early => ClaimResult::Busy,
            (true, Some(_), None) => skip_ids
                .next()
                .flatten()
                .map_or(ClaimResult::Lost, ClaimResult::Skipped),
        })
        .collect();
    let retries = batch
        .retries
        .iter()
        .zip(retries_won)
        .map(|(claim, won)| match (won, &claim.run) {
            (Cas::Lost, _) => ClaimResult::Lost,
            (Cas::Busy, _) => ClaimResult::Busy,
            (Cas::Won, None) => ClaimResult::Claimed,
            (Cas::Won, Some(_)) => retry_ids
                .next()
                .flatten()
                .map_or(ClaimResult::Lost, ClaimResult::Run),
        })
        .collect();
    let inserts = batch
        .inserts
        .iter()
        .map(|_| {
            yielded
                .next()
                .flatten()
                .map_or(ClaimResult::Busy, ClaimResult::Run)
        })
        .collect();
    Ok(BatchResult {
        fires,
        retries,
        inserts,
    })
}
