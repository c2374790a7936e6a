//! Group commit: every write the scheduler makes goes through one task that gathers
//! whatever is waiting into a single transaction.
//!
//! While one batch is being committed, new requests queue up; the next batch takes them
//! all. Under load this turns thousands of tiny transactions a second into a few dozen
//! large ones, and when idle a lone request is written at once, with no timer to wait for.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{
    ClaimResult, FireClaim, LogLine, NewRun, RetryClaim, RunFinish, RunMark, SharedStore,
    StoreError, WriteBatch,
};

/// A batch could not be written. Shared by every request of that batch.
#[derive(Debug, Clone, thiserror::Error)]
#[error("writing to the database failed: {0}")]
pub struct WriteFailed(Arc<StoreError>);

/// How many requests one transaction takes at most; more wait for the next one.
const MAX_BATCH: usize = 8192;

enum Request {
    Fire(FireClaim, oneshot::Sender<Result<ClaimResult, WriteFailed>>),
    Retry(
        RetryClaim,
        oneshot::Sender<Result<ClaimResult, WriteFailed>>,
    ),
    Insert(NewRun, oneshot::Sender<Result<i64, WriteFailed>>),
    Mark(RunMark, oneshot::Sender<Result<(), WriteFailed>>),
    Finish(RunFinish, oneshot::Sender<Result<(), WriteFailed>>),
}

/// A cloneable handle to the writer task. The task ends once every handle and every log
/// sender is dropped and what they sent is written.
#[derive(Clone)]
pub struct Writer {
    requests: mpsc::UnboundedSender<Request>,
    logs: mpsc::UnboundedSender<LogLine>,
}

impl Writer {
    /// Starts the writer task on `store`.
    pub fn start(store: SharedStore) -> (Writer, JoinHandle<()>) {
        let (requests, request_rx) = mpsc::unbounded_channel();
        let (logs, log_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(store, request_rx, log_rx));
        (Writer { requests, logs }, task)
    }

    /// Claims a scheduled fire (compare-and-swap on `next_run_at`).
    pub async fn claim_fire(&self, claim: FireClaim) -> Result<ClaimResult, WriteFailed> {
        self.ask(|reply| Request::Fire(claim, reply)).await
    }

    /// Claims a due retry (compare-and-swap on the failed run's `retry_at`).
    pub async fn claim_retry(&self, claim: RetryClaim) -> Result<ClaimResult, WriteFailed> {
        self.ask(|reply| Request::Retry(claim, reply)).await
    }

    /// Inserts a run and returns its id once committed.
    pub async fn insert_run(&self, run: NewRun) -> Result<i64, WriteFailed> {
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
        self.requests.send(request(reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

#[derive(Default)]
struct Replies {
    fires: Vec<oneshot::Sender<Result<ClaimResult, WriteFailed>>>,
    retries: Vec<oneshot::Sender<Result<ClaimResult, WriteFailed>>>,
    inserts: Vec<oneshot::Sender<Result<i64, WriteFailed>>>,
    marks: Vec<oneshot::Sender<Result<(), WriteFailed>>>,
    finishes: Vec<oneshot::Sender<Result<(), WriteFailed>>>,
}

async fn run(
    store: SharedStore,
    mut requests: mpsc::UnboundedReceiver<Request>,
    mut logs: mpsc::UnboundedReceiver<LogLine>,
) {
    let mut requests_open = true;
    let mut logs_open = true;
    while requests_open || logs_open {
        let mut batch = WriteBatch::default();
        let mut replies = Replies::default();
        // Wait for the first piece of work, then take everything else already waiting.
        tokio::select! {
            request = requests.recv(), if requests_open => match request {
                Some(request) => add(&mut batch, &mut replies, request),
                None => requests_open = false,
            },
            line = logs.recv(), if logs_open => match line {
                Some(line) => batch.logs.push(line),
                None => logs_open = false,
            },
        }
        let mut taken = 1;
        while taken < MAX_BATCH {
            let Ok(request) = requests.try_recv() else {
                break;
            };
            add(&mut batch, &mut replies, request);
            taken += 1;
        }
        // Logs are taken after requests so that a run's lines, sent before its finish,
        // are always in the same batch as the finish or an earlier one.
        while taken < MAX_BATCH * 2 {
            let Ok(line) = logs.try_recv() else { break };
            batch.logs.push(line);
            taken += 1;
        }
        if batch.is_empty() {
            continue;
        }
        commit(&store, batch, replies).await;
    }
}

fn add(batch: &mut WriteBatch, replies: &mut Replies, request: Request) {
    match request {
        Request::Fire(claim, reply) => {
            batch.fires.push(claim);
            replies.fires.push(reply);
        }
        Request::Retry(claim, reply) => {
            batch.retries.push(claim);
            replies.retries.push(reply);
        }
        Request::Insert(run, reply) => {
            batch.inserts.push(run);
            replies.inserts.push(reply);
        }
        Request::Mark(mark, reply) => {
            batch.marks.push(mark);
            replies.marks.push(reply);
        }
        Request::Finish(finish, reply) => {
            batch.finishes.push(finish);
            replies.finishes.push(reply);
        }
    }
}

async fn commit(store: &SharedStore, batch: WriteBatch, replies: Replies) {
    let lines = batch.logs.len();
    let sizes = [
        batch.fires.len(),
        batch.retries.len(),
        batch.inserts.len(),
        batch.marks.len(),
        lines,
        batch.finishes.len(),
    ];
    let started = std::time::Instant::now();
    let written = store.write_batch(batch).await;
    tracing::debug!(
        fires = sizes[0],
        retries = sizes[1],
        inserts = sizes[2],
        marks = sizes[3],
        logs = sizes[4],
        finishes = sizes[5],
        elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        "batch committed"
    );
    match written {
        Ok(result) => {
            // A receiver that is gone stopped caring (its task ended); nothing to do.
            for (reply, claim) in replies.fires.into_iter().zip(result.fires) {
                let _ = reply.send(Ok(claim));
            }
            for (reply, claim) in replies.retries.into_iter().zip(result.retries) {
                let _ = reply.send(Ok(claim));
            }
            for (reply, id) in replies.inserts.into_iter().zip(result.inserts) {
                let _ = reply.send(Ok(id));
            }
            for reply in replies.marks.into_iter().chain(replies.finishes) {
                let _ = reply.send(Ok(()));
            }
        }
        Err(error) => {
            tracing::error!(%error, log_lines_lost = lines, "a batch of scheduler writes failed");
            let failed = WriteFailed(Arc::new(error));
            for reply in replies.fires.into_iter().chain(replies.retries) {
                let _ = reply.send(Err(failed.clone()));
            }
            for reply in replies.inserts {
                let _ = reply.send(Err(failed.clone()));
            }
            for reply in replies.marks.into_iter().chain(replies.finishes) {
                let _ = reply.send(Err(failed.clone()));
            }
        }
    }
}
