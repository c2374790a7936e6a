//! The end of the scheduler task: no new fires, a grace period for the runs going, then
//! cancellation of what is left.

use super::{Core, now_of};
use crate::scheduler::SchedulerEvent;
use crate::scheduler::live::StopReason;

impl Core {
    /// Stops firing, gives running runs the grace period, then cancels what is left
    /// (those runs end as `interrupted`, to be retried by the next process).
    pub(super) async fn shutdown(self) {
        self.tracker.close();
        self.events.send(SchedulerEvent::ShuttingDown);
        let running = self.live.len();
        if running > 0 {
            let grace =
                crate::schedule::format_duration(self.shutdown_grace.to_std().unwrap_or_default());
            tracing::info!(running, %grace, "waiting for running runs to finish");
        }
        let deadline = now_of(&self.clock) + self.shutdown_grace;
        tokio::select! {
            () = self.tracker.wait() => {}
            () = self.clock.sleep_until(deadline) => {
                tracing::warn!(running = self.live.len(), "grace period over; cancelling the runs still going");
                self.live.stop_all(&StopReason::Shutdown);
                // Dispatched runs that had not started yet see the token at once.
                for runs in self.active.values() {
                    for run in runs {
                        let _ = run.stop.set(StopReason::Shutdown);
                        run.cancel.cancel();
                    }
                }
                self.tracker.wait().await;
            }
        }
        tracing::info!("scheduler stopped");
    }
}
