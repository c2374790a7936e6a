//! Where the scheduler publishes what happens, with counters that move on every event.
//!
//! The counters are bumped before the event is sent, by the task that makes the change, so
//! a reader who sees the same generation twice knows nothing happened in between. The
//! dashboard uses it to reuse a page it has just built.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::broadcast;

use super::SchedulerEvent;

#[derive(Clone)]
pub(crate) struct EventBus {
    sender: broadcast::Sender<SchedulerEvent>,
    jobs: Arc<AtomicU64>,
    runs: Arc<AtomicU64>,
}

/// Where the scheduler's published state stands: `jobs` moves when a job changes
/// (an edit, pause, resume, reload), `runs` when a run starts or ends or a fire is
/// skipped. Equal values mean nothing of that kind happened in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Generation {
    pub jobs: u64,
    pub runs: u64,
}

impl EventBus {
    pub(crate) fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity);
        Self {
            sender,
            jobs: Arc::default(),
            runs: Arc::default(),
        }
    }

    pub(crate) fn send(&self, event: SchedulerEvent) {
        let counter = match event {
            SchedulerEvent::RunStarted { .. }
            | SchedulerEvent::RunFinished { .. }
            | SchedulerEvent::FireSkipped { .. }
            | SchedulerEvent::ClaimRefused { .. } => &self.runs,
            SchedulerEvent::JobChanged { .. } | SchedulerEvent::ShuttingDown => &self.jobs,
        };
        counter.fetch_add(1, Ordering::AcqRel);
        // Nobody listening is fine: events are for whoever cares at the moment.
        let _ = self.sender.send(event);
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<SchedulerEvent> {
        self.sender.subscribe()
    }

    pub(crate) fn generation(&self) -> Generation {
        Generation {
            jobs: self.jobs.load(Ordering::Acquire),
            runs: self.runs.load(Ordering::Acquire),
        }
    }
}
