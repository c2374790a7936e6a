//! Captures each run's tracing events into its log.
//!
//! The executor runs a handler inside the span made by [`run_span`] and attaches a
//! [`RunLogSink`] to that span with [`attach`]. [`RunLogLayer`], installed once in the
//! process's subscriber next to the usual stdout layer (see [`crate::telemetry`]), sees
//! every event; those inside a span that carries a sink become [`LogLine`]s (secret-looking
//! fields redacted, the run's secret values masked in the message and every field, at
//! most [`RunLogPolicy::max_lines`] per run) sent to the store's writer, which commits
//! them in batches. While a run span is entered, [`current_run_secrets`] lets the stdout
//! layer mask the same values.
//!
//! An event belongs to a run when the run span, or a span created inside it, is its
//! parent: the handler's future runs with the span entered (`Instrument`), and spans
//! the handler makes inside it add their fields to its lines. Work spawned without
//! `.in_current_span()` is outside the run and is not captured.
//!
//! The layer has its own filter ([`RunScopeFilter`]): inside runs it captures `DEBUG`
//! and above whatever `RUST_LOG` says for stdout; outside runs it turns events away with
//! one thread-local check. [`CaptureGate`], a global filter beside it, keeps `DEBUG`
//! callsites that stdout does not want disabled outside runs, so that enabling them
//! inside runs costs the rest of the process nothing.
//!
//! [`LogLine`]: crate::store::LogLine

mod fields;
mod layer;
mod level;
mod policy;
mod sink;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use tracing_subscriber::Registry;
use tracing_subscriber::registry::LookupSpan;

pub use crate::secrets::{BUILT_IN_REDACT_FRAGMENTS, REDACTED};
pub use layer::{CAPTURE_LEVEL, CaptureGate, RunLogLayer, RunScopeFilter, current_run_secrets};
pub use level::{LEVELS, level_rank};
pub use policy::{DEFAULT_MAX_LINES, RunLogPolicy};
pub use sink::RunLogSink;

/// The name of the span a run's handler runs in.
pub const RUN_SPAN: &str = "batchboard.run";

/// The target of the run span, so `RUST_LOG=batchboard::run=…` can pick it for stdout.
pub const RUN_TARGET: &str = "batchboard::run";

/// A new span for run `run_id` of `job`, the only way run spans should be made: the
/// layer recognises a run by this span's name and target.
pub fn run_span(run_id: i64, job: &str) -> tracing::Span {
    tracing::info_span!(target: RUN_TARGET, RUN_SPAN, run_id, job = %job)
}

/// Makes `span` capture into `sink`: events inside it from now on become lines of
/// `sink`'s run. Attaching again replaces the earlier sink.
///
/// Returns `false`, and captures nothing, when the span's subscriber has no
/// [`RunLogLayer`] over a [`Registry`] (or the span is disabled); the caller should warn
/// once, since every run will then have an empty log.
pub fn attach(span: &tracing::Span, sink: Arc<RunLogSink>) -> bool {
    span.with_subscriber(|(id, dispatch)| {
        // `downcast_ref` looks through `Layered` and per-layer `Filtered` wrappers, so
        // this finds both parts whatever order the stack was built in.
        if dispatch.downcast_ref::<RunLogLayer>().is_none() {
            return false;
        }
        let Some(registry) = dispatch.downcast_ref::<Registry>() else {
            return false;
        };
        let Some(span) = registry.span(id) else {
            return false;
        };
        span.extensions_mut().replace(layer::AttachedSink(sink));
        true
    })
    .unwrap_or(false)
}
