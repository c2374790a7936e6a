//! The runs going on in this process, shared between the executor (which adds and
//! removes them), the scheduler (which cancels them for `replace` and at shutdown) and
//! the web layer (which shows their progress).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::job::{Progress, RunCounters};
use crate::store::Trigger;

/// Why a run was asked to stop before it finished by itself. The first reason given
/// wins: a run cancelled by an operator and then caught by shutdown stays "cancelled".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    Cancelled { by: Option<String> },
    Replaced,
    Timeout,
    Shutdown,
}

/// One run in progress: waiting for a free slot (queued) or running.
#[derive(Debug, Clone)]
pub struct LiveRun {
    pub run_id: i64,
    pub job_id: i64,
    pub job: String,
    pub trigger: Trigger,
    pub attempt: u32,
    /// When its handler was due to start; a queued run has waited since then.
    pub due_at: DateTime<Utc>,
    /// When its handler started; set once, by the executor, when it gets a slot.
    pub(crate) started: Arc<OnceLock<DateTime<Utc>>>,
    pub(crate) cancel: CancellationToken,
    pub(crate) stop: Arc<OnceLock<StopReason>>,
    pub(crate) counters: Arc<RunCounters>,
}

impl LiveRun {
    /// When its handler started; `None` while it waits for a slot.
    pub fn started_at(&self) -> Option<DateTime<Utc>> {
        self.started.get().copied()
    }

    /// Whether it is still waiting for a free slot.
    pub fn is_queued(&self) -> bool {
        self.started.get().is_none()
    }

    /// The counters as they stand.
    pub fn progress(&self) -> Progress {
        self.counters.snapshot()
    }

    /// Asks the run to stop for `reason`; returns false if it was already asked.
    pub(crate) fn stop(&self, reason: StopReason) -> bool {
        let first = self.stop.set(reason).is_ok();
        self.cancel.cancel();
        first
    }
}

/// The table of runs in progress.
#[derive(Debug, Clone, Default)]
pub struct LiveRuns {
    // A std Mutex: every critical section is a map insert, remove or copy, never an await.
    runs: Arc<Mutex<HashMap<i64, LiveRun>>>,
}

impl LiveRuns {
    pub(crate) fn insert(&self, run: LiveRun) {
        self.lock().insert(run.run_id, run);
    }

    pub(crate) fn remove(&self, run_id: i64) {
        self.lock().remove(&run_id);
    }

    /// Asks run `run_id` to stop; false if it is not running here.
    pub(crate) fn stop(&self, run_id: i64, reason: StopReason) -> bool {
        let run = self.lock().get(&run_id).cloned();
        run.map(|run| run.stop(reason)).is_some()
    }

    /// Asks every run to stop.
    pub(crate) fn stop_all(&self, reason: &StopReason) {
        let runs: Vec<LiveRun> = self.lock().values().cloned().collect();
        for run in runs {
            run.stop(reason.clone());
        }
    }

    /// One run in progress.
    pub fn get(&self, run_id: i64) -> Option<LiveRun> {
        self.lock().get(&run_id).cloned()
    }

    /// Every run in progress, oldest first.
    pub fn all(&self) -> Vec<LiveRun> {
        let mut runs: Vec<LiveRun> = self.lock().values().cloned().collect();
        runs.sort_by_key(|run| run.run_id);
        runs
    }

    /// How many runs are in progress (queued ones included).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is running.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, LiveRun>> {
        // The map stays consistent even if a holder panicked: every update is one call.
        self.runs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
