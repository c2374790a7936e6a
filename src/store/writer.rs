//! Group commit: every write the scheduler makes goes through one task that gathers
//! whatever is waiting into a single transaction.
//!
//! While one batch is being committed, new requests queue up; the next batch takes them
//! all. Under load this turns thousands of tiny transactions a second into a few dozen
//! large ones, and when idle a lone request is written at once, with no timer to wait for.
//!
//! Where the database commits several transactions at once (PostgreSQL), there are two
//! such tasks, two lanes: one starts runs (fire and retry claims, inserts), the other ends
//! them (marks, log lines, finishes), so that a claim never waits behind a batch of
//! finishes and the database works on both on two connections. Nothing needs the lanes
//! ordered: a run's mark, lines and finish are sent once its start has committed, and the
//! scheduler hears that a run ended (and may start the next of its job) once its finish
//! has committed.
//!
//! A batch that fails is never dropped as a whole: a busy, unreachable or full database
//! is waited out with backoff (a lost finish would have its run executed again after the
//! next start), and a batch the database refuses is split until the refused write is
//! found, so that one bad request fails alone instead of taking everybody's claims and
//! finishes with it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{
    BatchResult, ClaimResult, FireClaim, LogLine, NewRun, RetryClaim, RunFinish, RunMark,
    SharedStore, StoreError, WriteBatch,
};

/// A batch could not be written. Shared by every request of that batch.
#[derive(Debug, Clone, thiserror::Error)]
#[error("writing to the database failed: {0}")]
pub struct WriteFailed(Arc<StoreError>);

/// How many requests one transaction takes at most; more wait for the next one.
const MAX_BATCH: usize = 8192;

/// The same on the lane that starts runs, where it is smaller: a run starts once its
/// claim has committed, so a burst of fires claimed in slices starts slice by slice
/// while the next is written, and its finishes go on the other lane meanwhile, instead
/// of every run waiting for the whole burst's transaction.
const MAX_START_BATCH: usize = 1024;

/// The wait after a batch failed on a transient error, doubled at each further failure
/// up to [`RETRY_WAIT_MAX`].
const RETRY_WAIT_FIRST: Duration = Duration::from_millis(100);
const RETRY_WAIT_MAX: Duration = Duration::from_secs(5);

/// Once every handle is dropped (the process is stopping), how long a failing batch is
/// still retried. Past it, what is left is given up with an error in the log: the runs
/// it would have ended stay `running` and are interrupted and retried at the next start.
const RETRY_WHILE_STOPPING: Duration = Duration::from_secs(30);

enum Request {
    Log(LogLine),
    Fire(FireClaim, oneshot::Sender<Result<ClaimResult, WriteFailed>>),
    Retry(
        RetryClaim,
        oneshot::Sender<Result<ClaimResult, WriteFailed>>,
    ),
    Insert(NewRun, oneshot::Sender<Result<ClaimResult, WriteFailed>>),
    Mark(RunMark, oneshot::Sender<Result<(), WriteFailed>>),
    Finish(RunFinish, oneshot::Sender<Result<(), WriteFailed>>),
}

/// A cloneable handle to the writer task. The task ends once every handle and every log
/// sender is dropped and what they sent is written.
#[derive(Clone)]
pub struct Writer {
    /// The lane of claims and inserts.
    starts: mpsc::UnboundedSender<Request>,
    /// The lane of marks and finishes (the same channel as `starts` with one lane).
    ends: mpsc::UnboundedSender<Request>,
    /// Log lines, written on the lane of `ends`.
    logs: mpsc::UnboundedSender<LogLine>,
}

impl Writer {
    /// Starts the writer on `store`, with as many lanes as it takes
    /// ([`Store::write_lanes`](super::Store::write_lanes)); the task ends once every lane
    /// has.
    pub fn start(store: SharedStore) -> (Writer, JoinHandle<()>) {
        let (starts, start_rx) = mpsc::unbounded_channel();
        let (logs, log_rx) = mpsc::unbounded_channel();
        if store.write_lanes() < 2 {
            let task = tokio::spawn(run(store, start_rx, Some(log_rx), MAX_BATCH));
            let ends = starts.clone();
            return (Writer { starts, ends, logs }, task);
        }
        let (ends, end_rx) = mpsc::unbounded_channel();
        let start_lane = tokio::spawn(run(store.clone(), start_rx, None, MAX_START_BATCH));
        let end_lane = tokio::spawn(run(store, end_rx, Some(log_rx), MAX_BATCH));
        let task = tokio::spawn(async move {
            for lane in [start_lane, end_lane] {
                if let Err(error) = lane.await {
                    tracing::error!(%error, "a writer lane failed");
                }
            }
        });
        (Writer { starts, ends, logs }, task)
    }

    /// Claims a scheduled fire (compare-and-swap on `next_run_at`).
    pub async fn claim_fire(&self, claim: FireClaim) -> Result<ClaimResult, WriteFailed> {
        self.ask(|reply| Request::Fire(claim, reply)).await
    }

    /// Claims a due retry (compare-and-swap on the failed run's `retry_at`).
    pub async fn claim_retry(&self, claim: RetryClaim) -> Result<ClaimResult, WriteFailed> {
        self.ask(|reply| Request::Retry(claim, reply)).await
    }

    /// Inserts a run; once committed, returns [`ClaimResult::Run`] with its id, or
    /// [`ClaimResult::Busy`] when it is exclusive and an exclusive run of its job is
    /// going.
    pub async fn insert_run(&self, run: NewRun) -> Result<ClaimResult, WriteFailed> {
        self.ask(|reply| Request::Insert(run, reply)).await
    }

    /// Records that a run waits for a slot, or has started after waiting; returns once
    /// committed.
    pub async fn mark_run(&self, mark: RunMark) -> Result<(), WriteFailed> {
        self.ask(|reply| Request::Mark(mark, reply)).await
    }

    /// Records the end of a run; returns once committed.
    pub async fn finish_run(&self, finish: RunFinish) -> Result<(), WriteFailed> {
        self.ask(|reply| Request::Finish(finish, reply)).await
    }

    /// Queues a log line; it is committed with the next batch.
    pub fn log(&self, line: LogLine) {
        // A closed channel means the process is shutting down and the writer is gone;
        // a line logged that late has nowhere to go.
        let _ = self.logs.send(line);
    }

    /// A sender for the run-log sinks.
    pub fn log_sender(&self) -> mpsc::UnboundedSender<LogLine> {
        self.logs.clone()
    }

    async fn ask<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<Result<T, WriteFailed>>) -> Request,
    ) -> Result<T, WriteFailed> {
        let (reply, answer) = oneshot::channel();
        let stopped = || {
            WriteFailed(Arc::new(StoreError::Decode(
                "the writer has stopped".into(),
            )))
        };
        let request = request(reply);
        let lane = match request {
            Request::Fire(..) | Request::Retry(..) | Request::Insert(..) => &self.starts,
            Request::Mark(..) | Request::Finish(..) | Request::Log(_) => &self.ends,
        };
        lane.send(request).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Who waits for each write of a batch, in the order the writes came.
enum Reply {
    Fire(oneshot::Sender<Result<ClaimResult, WriteFailed>>),
    Retry(oneshot::Sender<Result<ClaimResult, WriteFailed>>),
    Insert(oneshot::Sender<Result<ClaimResult, WriteFailed>>),
    Mark(oneshot::Sender<Result<(), WriteFailed>>),
    Finish(oneshot::Sender<Result<(), WriteFailed>>),
    /// A log line: nobody waits for it.
    Log,
}

/// Writes gathered into one batch, and who waits for each.
#[derive(Default)]
struct Pending {
    batch: WriteBatch,
    replies: Vec<Reply>,
}

impl Pending {
    fn push(&mut self, request: Request) {
        let batch = &mut self.batch;
        let reply = match request {
            Request::Fire(claim, reply) => {
                batch.fires.push(claim);
                Reply::Fire(reply)
            }
            Request::Retry(claim, reply) => {
                batch.retries.push(claim);
                Reply::Retry(reply)
            }
            Request::Insert(run, reply) => {
                batch.inserts.push(run);
                Reply::Insert(reply)
            }
            Request::Mark(mark, reply) => {
                batch.marks.push(mark);
                Reply::Mark(reply)
            }
            Request::Finish(finish, reply) => {
                batch.finishes.push(finish);
                Reply::Finish(reply)
            }
            Request::Log(line) => {
                batch.logs.push(line);
                Reply::Log
            }
        };
        self.replies.push(reply);
    }

    fn len(&self) -> usize {
        self.replies.len()
    }

    /// The requests again, in the order they came: only on the rare path where a batch
    /// is split.
    fn into_requests(self) -> Vec<Request> {
        let WriteBatch {
            fires,
            retries,
            inserts,
            marks,
            logs,
            finishes,
        } = self.batch;
        let (mut fires, mut retries, mut inserts) =
            (fires.into_iter(), retries.into_iter(), inserts.into_iter());
        let (mut marks, mut logs, mut finishes) =
            (marks.into_iter(), logs.into_iter(), finishes.into_iter());
        self.replies
            .into_iter()
            .filter_map(|reply| match reply {
                Reply::Fire(reply) => fires.next().map(|claim| Request::Fire(claim, reply)),
                Reply::Retry(reply) => retries.next().map(|claim| Request::Retry(claim, reply)),
                Reply::Insert(reply) => inserts.next().map(|run| Request::Insert(run, reply)),
                Reply::Mark(reply) => marks.next().map(|mark| Request::Mark(mark, reply)),
                Reply::Finish(reply) => finishes.next().map(|end| Request::Finish(end, reply)),
                Reply::Log => logs.next().map(Request::Log),
            })
            .collect()
    }

    fn of(requests: Vec<Request>) -> Self {
        let mut pending = Pending::default();
        for request in requests {
            pending.push(request);
        }
        pending
    }
}

/// One lane: batches what `requests` (and `logs`, on the lane that writes them) bring,
/// up to `max_batch` requests a transaction.
async fn run(
    store: SharedStore,
    mut requests: mpsc::UnboundedReceiver<Request>,
    mut logs: Option<mpsc::UnboundedReceiver<LogLine>>,
    max_batch: usize,
) {
    let mut requests_open = true;
    let mut logs_open = logs.is_some();
    while requests_open || logs_open {
        let mut pending = Pending::default();
        // Wait for the first piece of work, then take everything else already waiting.
        tokio::select! {
            request = requests.recv(), if requests_open => match request {
                Some(request) => pending.push(request),
                None => requests_open = false,
            },
            line = next_line(&mut logs), if logs_open => match line {
                Some(line) => pending.push(Request::Log(line)),
                None => logs_open = false,
            },
        }
        while pending.len() < max_batch {
            let Ok(request) = requests.try_recv() else {
                break;
            };
            pending.push(request);
        }
        // Logs are taken after requests so that a run's lines, sent before its finish,
        // are always in the same batch as the finish or an earlier one.
        if let Some(logs) = logs.as_mut() {
            while pending.len() < max_batch * 2 {
                let Ok(line) = logs.try_recv() else { break };
                pending.push(Request::Log(line));
            }
        }
        if pending.len() == 0 {
            continue;
        }
        commit(&store, pending, !requests_open).await;
    }
}

async fn next_line(logs: &mut Option<mpsc::UnboundedReceiver<LogLine>>) -> Option<LogLine> {
    logs.as_mut()?.recv().await
}

/// Writes `pending`, splitting it around writes the database refuses; see the module
/// documentation.
async fn commit(store: &SharedStore, pending: Pending, stopping: bool) {
    // Halves still to write, the next one last; applying the first half before the
    // second does what the whole batch would have done, as each kind of write keeps its
    // order.
    let mut halves = vec![pending];
    while let Some(pending) = halves.pop() {
        match write_until_done(store, &pending.batch, stopping).await {
            Ok(result) => answer(pending.replies, result),
            Err(error) if pending.len() > 1 => {
                tracing::warn!(%error, writes = pending.len(), "the database refused a batch; writing it in halves to find the refused write");
                let mut first = pending.into_requests();
                let second = first.split_off(first.len() / 2);
                halves.push(Pending::of(second));
                halves.push(Pending::of(first));
            }
            Err(error) => refuse(pending.into_requests(), error),
        }
    }
}

/// Writes `batch`, waiting out transient errors with backoff. Returns the first error
/// that is not transient (or any error, once stopping has lasted too long).
async fn write_until_done(
    store: &SharedStore,
    batch: &WriteBatch,
    stopping: bool,
) -> Result<BatchResult, StoreError> {
    let started = std::time::Instant::now();
    let mut wait = RETRY_WAIT_FIRST;
    let mut failures: u32 = 0;
    loop {
        let attempt_started = std::time::Instant::now();
        let written = store.write_batch(batch).await;
        tracing::debug!(
            fires = batch.fires.len(),
            retries = batch.retries.len(),
            inserts = batch.inserts.len(),
            marks = batch.marks.len(),
            logs = batch.logs.len(),
            finishes = batch.finishes.len(),
            elapsed_us = u64::try_from(attempt_started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "batch written"
        );
        let error = match written {
            Ok(result) => {
                if failures > 0 {
                    tracing::info!(failures, "writes go through again");
                }
                return Ok(result);
            }
            Err(error) => error,
        };
        if !error.is_transient() || (stopping && started.elapsed() > RETRY_WHILE_STOPPING) {
            return Err(error);
        }
        failures += 1;
        // Loud at first, then at each doubling: an outage of an hour logs a dozen lines.
        if failures.is_power_of_two() {
            tracing::error!(%error, failures, retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), "writing to the database failed; retrying");
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(RETRY_WAIT_MAX);
    }
}

fn answer(replies: Vec<Reply>, result: BatchResult) {
    let mut fires = result.fires.into_iter();
    let mut retries = result.retries.into_iter();
    let mut inserts = result.inserts.into_iter();
    let missing = || {
        WriteFailed(Arc::new(StoreError::Decode(
            "the store answered fewer writes than it was sent".into(),
        )))
    };
    // A receiver that is gone stopped caring (its task ended); nothing to do.
    for reply in replies {
        match reply {
            Reply::Fire(reply) => {
                let _ = reply.send(fires.next().ok_or_else(missing));
            }
            Reply::Retry(reply) => {
                let _ = reply.send(retries.next().ok_or_else(missing));
            }
            Reply::Insert(reply) => {
                let _ = reply.send(inserts.next().ok_or_else(missing));
            }
            Reply::Mark(reply) | Reply::Finish(reply) => {
                let _ = reply.send(Ok(()));
            }
            Reply::Log => {}
        }
    }
}

/// Tells the one write the database refused (or, when stopping, every write left)
/// that it failed.
fn refuse(pending: Vec<Request>, error: StoreError) {
    let failed = WriteFailed(Arc::new(error));
    for request in pending {
        match request {
            Request::Fire(_, reply) | Request::Retry(_, reply) => {
                tracing::error!(error = %failed, "a claim could not be written");
                let _ = reply.send(Err(failed.clone()));
            }
            Request::Insert(_, reply) => {
                tracing::error!(error = %failed, "a run could not be inserted");
                let _ = reply.send(Err(failed.clone()));
            }
            Request::Mark(mark, reply) => {
                tracing::error!(error = %failed, run_id = mark.run_id, "a run's start could not be recorded");
                let _ = reply.send(Err(failed.clone()));
            }
            Request::Finish(finish, reply) => {
                tracing::error!(error = %failed, run_id = finish.run_id, "a run's end could not be recorded");
                let _ = reply.send(Err(failed.clone()));
            }
            Request::Log(line) => {
                tracing::warn!(error = %failed, run_id = line.run_id, "a run's log line was dropped");
            }
        }
    }
}
