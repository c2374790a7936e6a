//! Captures each run's tracing events into its log.
//!
//! The executor runs a handler inside a span named [`RUN_SPAN`] and attaches a
//! [`RunLogSink`] to that span with [`attach`]. [`RunLogLayer`], installed once in the
//! process's subscriber next to the usual stdout layer, sees every event; those inside a
//! span that carries a sink become [`LogLine`]s (secret-looking fields redacted) sent to
//! the store's writer, which commits them in batches.
//!
//! [`LogLine`]: crate::store::LogLine
