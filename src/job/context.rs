use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::JobName;
use crate::clock::SharedClock;
use crate::secrets::SecretMask;

/// Everything a handler gets besides its params: who it is, a cancellation token,
/// counters that the console shows live and the run row keeps, and the run's secrets.
#[derive(Clone)]
pub struct JobContext {
    job: JobName,
    run_id: i64,
    attempt: u32,
    scheduled_for: DateTime<Utc>,
    cancel: CancellationToken,
    counters: Arc<RunCounters>,
    clock: SharedClock,
    secrets: Arc<SecretMask>,
}

impl JobContext {
    /// A context for one run. The scheduler builds these; tests of a handler may too.
    pub fn new(
        job: JobName,
        run_id: i64,
        attempt: u32,
        scheduled_for: DateTime<Utc>,
        cancel: CancellationToken,
        counters: Arc<RunCounters>,
        clock: SharedClock,
    ) -> Self {
        Self {
            job,
            run_id,
            attempt,
            scheduled_for,
            cancel,
            counters,
            clock,
            secrets: Arc::default(),
        }
    }

    /// This context with `secrets` as the run's mask: the one its log is masked with.
    pub fn with_secrets(mut self, secrets: Arc<SecretMask>) -> Self {
        self.secrets = secrets;
        self
    }

    /// The job's name.
    pub fn job(&self) -> &JobName {
        &self.job
    }

    /// This run's id.
    pub fn run_id(&self) -> i64 {
        self.run_id
    }

    /// 1 for the first attempt, 2 for the first retry, and so on.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The time this run was due.
    pub fn scheduled_for(&self) -> DateTime<Utc> {
        self.scheduled_for
    }

    /// The current time, from the scheduler's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The token that fires when the run is cancelled, times out or the process stops.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Completes when the run should stop.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// Whether the run should stop.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Waits `duration` on the scheduler's clock, or returns [`super::JobError::Cancelled`]
    /// early if the run is cancelled.
    pub async fn sleep(&self, duration: std::time::Duration) -> Result<(), super::JobError> {
        let deadline = self.clock.now()
            + chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX);
        tokio::select! {
            () = self.clock.sleep_until(deadline) => Ok(()),
            () = self.cancel.cancelled() => Err(super::JobError::Cancelled),
        }
    }

    /// Adds to the number of items checked.
    pub fn add_checked(&self, n: u64) {
        self.counters.checked.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds to the number of items updated.
    pub fn add_updated(&self, n: u64) {
        self.counters.updated.fetch_add(n, Ordering::Relaxed);
    }

    /// Reports progress: `done` of `total` items.
    pub fn progress(&self, done: u64, total: u64) {
        self.counters.done.store(done, Ordering::Relaxed);
        self.counters.total.store(total, Ordering::Relaxed);
    }

    /// Registers `value` as a secret of this run: from now on every occurrence of it in
    /// the run's log lines, error message and summary reads `[redacted]`. The job's
    /// declared secrets (the values its params hide, such as `env` and `headers`) are
    /// registered before the handler starts; call this for secrets the handler comes
    /// by itself, such as a token it fetched. Values under 4 characters are ignored.
    pub fn mask_secret(&self, value: &str) {
        self.secrets.register(value);
    }

    /// The run's secrets, to mask text the handler builds itself.
    pub fn secrets(&self) -> &SecretMask {
        &self.secrets
    }

    /// The counters as they stand.
    pub fn counters(&self) -> Progress {
        self.counters.snapshot()
    }
}

/// Live counters of one run, shared between the handler and whoever watches it.
#[derive(Debug)]
pub struct RunCounters {
    checked: AtomicU64,
    updated: AtomicU64,
    done: AtomicU64,
    // u64::MAX means "no total reported": progress is then unknown, not 0 %.
    total: AtomicU64,
}

impl Default for RunCounters {
    fn default() -> Self {
        Self {
            checked: AtomicU64::new(0),
            updated: AtomicU64::new(0),
            done: AtomicU64::new(0),
            total: AtomicU64::new(u64::MAX),
        }
    }
}

impl RunCounters {
    /// A consistent-enough copy for display and for the run row.
    pub fn snapshot(&self) -> Progress {
        let total = self.total.load(Ordering::Relaxed);
        Progress {
            checked: self.checked.load(Ordering::Relaxed),
            updated: self.updated.load(Ordering::Relaxed),
            done: self.done.load(Ordering::Relaxed),
            total: (total != u64::MAX).then_some(total),
        }
    }
}

/// A copy of a run's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Progress {
    pub checked: u64,
    pub updated: u64,
    pub done: u64,
    pub total: Option<u64>,
}
