//! Where the scheduler publishes what happens, with a counter that moves on every event.
//!
//! The counter is bumped before the event is sent, by the task that makes the change, so
//! a reader who sees the same generation twice knows nothing happened in between. The
//! dashboard uses it to reuse a page it has just built.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::broadcast;

use super::SchedulerEvent;

#[derive(Clone)]
pub(crate) struct EventBus {
    sender: broadcast::Sender<SchedulerEvent>,
    generation: Arc<AtomicU64>,
}

impl EventBus {
    pub(crate) fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity);
        Self {
            sender,
            generation: Arc::new(AtomicU64::new(0)),
        }
    }

    pub(crate) fn send(&self, event: SchedulerEvent) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        // Nobody listening is fine: events are for whoever cares at the moment.
        let _ = self.sender.send(event);
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<SchedulerEvent> {
        self.sender.subscribe()
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}
