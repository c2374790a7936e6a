//! Where one run's captured lines go, and how many of them were kept.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use tokio::sync::mpsc::UnboundedSender;

use super::policy::RunLogPolicy;
use crate::clock::SharedClock;
use crate::secrets::SecretMask;
use crate::store::LogLine;

/// The destination of one run's log: lines go to the store's writer over `tx`, stamped
/// by `clock` and masked with the run's secrets, until the policy's cap is reached;
/// after that they are only counted.
///
/// Create one per run and [`attach`](super::attach) it to the run's span; keep an `Arc`
/// to append [`truncation_line`](Self::truncation_line) when the run ends.
pub struct RunLogSink {
    run_id: i64,
    policy: Arc<RunLogPolicy>,
    tx: UnboundedSender<LogLine>,
    clock: SharedClock,
    secrets: Arc<SecretMask>,
    written: AtomicU32,
    dropped: AtomicU64,
}

impl RunLogSink {
    /// A sink for run `run_id` that sends its lines on `tx`.
    pub fn new(
        run_id: i64,
        policy: Arc<RunLogPolicy>,
        tx: UnboundedSender<LogLine>,
        clock: SharedClock,
    ) -> Self {
        Self {
            run_id,
            policy,
            tx,
            clock,
            secrets: Arc::default(),
            written: AtomicU32::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// The run's secrets, which every line's message and field values are masked
    /// with. Share it with the run's [`JobContext`](crate::job::JobContext), so that
    /// secrets registered during the run are masked from then on.
    pub fn secrets(&self) -> &Arc<SecretMask> {
        &self.secrets
    }

    /// The run this sink writes for.
    pub fn run_id(&self) -> i64 {
        self.run_id
    }

    /// The policy lines are kept and redacted by.
    pub fn policy(&self) -> &RunLogPolicy {
        &self.policy
    }

    /// Lines kept so far (at most the policy's `max_lines`).
    pub fn lines_written(&self) -> u32 {
        self.written.load(Ordering::Relaxed)
    }

    /// Lines not kept because the cap was reached.
    pub fn lines_dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The line to append when the run ends, if lines were dropped over the cap.
    ///
    /// It is not counted against the cap: the reader must learn that the log is
    /// incomplete even when it is full.
    pub fn truncation_line(&self) -> Option<LogLine> {
        let dropped = self.lines_dropped();
        if dropped == 0 {
            return None;
        }
        Some(LogLine {
            run_id: self.run_id,
            ts: self.clock.now(),
            level: "WARN".to_owned(),
            message: format!(
                "log truncated: {dropped} more lines were not kept (limit {} per run)",
                self.policy.max_lines
            ),
            fields: serde_json::json!({ "dropped": dropped }),
        })
    }

    /// Takes one of the run's remaining line slots, or counts a dropped line and
    /// returns `false` when none is left. Called before the line is built, so a run
    /// past its cap costs almost nothing per event.
    pub(super) fn try_reserve_line(&self) -> bool {
        let max = self.policy.max_lines;
        let reserved = self
            .written
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok();
        if !reserved {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        reserved
    }

    /// Sends a line whose slot was reserved with [`try_reserve_line`](Self::try_reserve_line).
    pub(super) fn send(&self, level: &str, message: String, mut fields: serde_json::Value) {
        let message = self.secrets.mask_owned(message);
        self.secrets.mask_json(&mut fields);
        let line = LogLine {
            run_id: self.run_id,
            ts: self.clock.now(),
            level: level.to_owned(),
            message,
            fields,
        };
        // The writer is gone only during shutdown; the line has nowhere to go then, and
        // logging about it from inside the logging layer would recurse.
        let _ = self.tx.send(line);
    }
}

impl fmt::Debug for RunLogSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunLogSink")
            .field("run_id", &self.run_id)
            .field("policy", &self.policy)
            .field("lines_written", &self.lines_written())
            .field("lines_dropped", &self.lines_dropped())
            .finish_non_exhaustive()
    }
}
