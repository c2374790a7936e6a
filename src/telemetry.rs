//! The process's tracing subscriber: human-readable lines on stdout, filtered by
//! `RUST_LOG`, plus the [`runlog`](crate::runlog) layer that captures each run's events
//! into its log whatever `RUST_LOG` says.

use std::io::IsTerminal;
use std::sync::{Arc, Once, RwLock};

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use tracing_subscriber::fmt::format::{Format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::runlog::{CaptureGate, REDACTED, RunLogLayer, RunLogPolicy, current_run_secrets};

/// What stdout shows when `RUST_LOG` is unset: our own `info`, and only sqlx's
/// warnings (its `info` lines report every slow statement).
pub const DEFAULT_STDOUT_FILTER: &str = "info,sqlx=warn";

/// Installs the global subscriber: stdout filtered by `RUST_LOG` (default
/// [`DEFAULT_STDOUT_FILTER`]) plus run-log capture. `log` records are bridged too.
///
/// Only the first call does anything, so tests and `main` may all call it. If another
/// global subscriber was installed first, that one stays and run logs stay empty
/// ([`runlog::attach`](crate::runlog::attach) reports it).
pub fn init() {
    init_with_default_filter(DEFAULT_STDOUT_FILTER);
}

/// [`init`] with another stdout filter for when `RUST_LOG` is unset, e.g. `"warn"` for
/// a benchmark whose runs would otherwise print a line each.
pub fn init_with_default_filter(default: &'static str) {
    INIT.call_once(|| install(std::io::stdout, std::io::stdout().is_terminal(), default));
}

/// [`init`] for tests: the same stack, but stdout's lines go through the test
/// harness's capture instead of straight to the terminal. Whichever of the two runs
/// first wins.
pub fn init_for_tests() {
    INIT.call_once(|| {
        install(
            tracing_subscriber::fmt::TestWriter::new(),
            false,
            DEFAULT_STDOUT_FILTER,
        )
    });
}

static INIT: Once = Once::new();

fn install<W>(writer: W, ansi: bool, default_filter: &str)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let (filter, bad_rust_log) = stdout_filter_from_env(default_filter);
    let installed = subscriber(filter, writer, ansi).try_init().is_ok();
    if let (true, Some(error)) = (installed, bad_rust_log) {
        tracing::warn!(%error, default = default_filter, "RUST_LOG is invalid; using the default");
    }
}

/// The subscriber [`init`] installs, writing stdout's lines to `writer` instead, so that
/// tests can build the very same stack and set it as a local default.
pub fn subscriber<W>(
    stdout_filter: EnvFilter,
    writer: W,
    ansi: bool,
) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let stdout_max = stdout_filter.max_level_hint();
    let stdout = tracing_subscriber::fmt::layer()
        .fmt_fields(redacting_fields())
        .event_format(MaskingFormat(Format::default().with_ansi(ansi)))
        .with_writer(writer)
        .with_ansi(ansi)
        .with_filter(stdout_filter);
    tracing_subscriber::registry()
        .with(stdout)
        .with(RunLogLayer::filtered())
        .with(CaptureGate::new(stdout_max))
}

/// The redaction rules stdout follows; the built-in ones until the settings are read.
static STDOUT_REDACTION: RwLock<Option<Arc<RunLogPolicy>>> = RwLock::new(None);

/// Makes stdout hide the settings' extra secret-looking field names (`[runlog] redact`)
/// as well as the built-in ones, as the run logs do.
pub fn redact_on_stdout(policy: Arc<RunLogPolicy>) {
    let mut current = STDOUT_REDACTION
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    *current = Some(policy);
}

/// Field formatting for stdout that hides secret-looking fields the way run logs do,
/// so a token a handler logs never reaches the terminal or a log collector either.
fn redacting_fields()
-> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static {
    use tracing_subscriber::field::MakeExt as _;
    let built_in = Arc::new(RunLogPolicy::default());
    tracing_subscriber::fmt::format::debug_fn(move |writer, field, value| {
        if field.name() == "message" {
            return write!(writer, "{value:?}");
        }
        let policy = STDOUT_REDACTION
            .read()
            .ok()
            .and_then(|current| current.clone())
            .unwrap_or_else(|| Arc::clone(&built_in));
        if policy.redacts(field.name()) {
            write!(writer, "{field}={REDACTED}")
        } else {
            write!(writer, "{field}={value:?}")
        }
    })
    .delimited(" ")
}

/// An event format that masks the secrets of the run an event belongs to (see
/// [`crate::secrets::SecretMask`]), as the run's own log does: a job's token printed by
/// its program must not reach the terminal or a log collector either.
struct MaskingFormat(Format);

impl<S, N> FormatEvent<S, N> for MaskingFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let secrets = current_run_secrets().filter(|secrets| !secrets.is_empty());
        let Some(secrets) = secrets else {
            return self.0.format_event(ctx, writer, event);
        };
        // Whole line first, then masked: a secret may span the message and a field.
        // The inner format was told whether to colour, since this buffer cannot say.
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        writer.write_str(&secrets.mask(&line))
    }
}

/// The stdout filter from `RUST_LOG`, or the default when it is unset, blank or invalid
/// (then with the parse error, to be reported once logging works).
fn stdout_filter_from_env(default_filter: &str) -> (EnvFilter, Option<String>) {
    let default = || EnvFilter::new(default_filter);
    match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(directives) if !directives.trim().is_empty() => match EnvFilter::try_new(&directives) {
            Ok(filter) => (filter, None),
            Err(error) => (default(), Some(error.to_string())),
        },
        _ => (default(), None),
    }
}
