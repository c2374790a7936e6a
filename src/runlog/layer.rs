//! The tracing layer that turns events inside a run span into log lines, and the
//! per-layer filter that keeps it cheap for everything else.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::filter::{Filtered, LevelFilter};
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use super::fields::{EventFields, SpanFields};
use super::sink::RunLogSink;
use super::{RUN_SPAN, RUN_TARGET};
use crate::secrets::SecretMask;

/// The most verbose level captured inside runs, whatever `RUST_LOG` says for stdout.
pub const CAPTURE_LEVEL: Level = Level::DEBUG;

thread_local! {
    /// How many spans that belong to a run are entered on this thread. Zero means no
    /// event here can belong to a run, which lets [`RunScopeFilter`] turn everything
    /// else away without looking at any span.
    static RUN_SPANS_ENTERED: Cell<u32> = const { Cell::new(0) };

    /// The secrets of the run spans entered on this thread, innermost last, with the
    /// span's id: what [`current_run_secrets`] answers.
    static RUN_SECRETS_ENTERED: RefCell<Vec<(Id, Arc<SecretMask>)>> = const { RefCell::new(Vec::new()) };
}

/// The secrets of the run whose span is entered on this thread, if any, so that other
/// layers can mask its events as its log does. Kept by [`RunLogLayer`] as run spans are
/// entered and exited, because other layers (stdout) may filter the run span out of
/// the spans they see.
pub fn current_run_secrets() -> Option<Arc<SecretMask>> {
    RUN_SECRETS_ENTERED
        .try_with(|entered| {
            entered
                .borrow()
                .last()
                .map(|(_, secrets)| Arc::clone(secrets))
        })
        .ok()
        .flatten()
}

/// Marks a span as part of a run: the run span itself, or a span created inside one.
/// Decided once, when the span is created, from its parent.
#[derive(Debug)]
enum RunMember {
    Root,
    /// A span the handler made inside the run; its fields go into the run's lines.
    Inner(SpanFields),
}

/// The sink [`super::attach`] stores in a run span's extensions.
pub(super) struct AttachedSink(pub(super) Arc<RunLogSink>);

/// Captures events inside a run span (one carrying a sink, see [`super::attach`]) into
/// that run's [`RunLogSink`].
///
/// Install it with its filter, [`RunLogLayer::filtered`], so that it sees `DEBUG` and
/// above inside runs even when the stdout layer's `RUST_LOG` hides them. Without the
/// filter it still works, but only sees what the other layers enable.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunLogLayer;

impl RunLogLayer {
    /// This layer behind its own [`RunScopeFilter`].
    pub fn filtered<S>() -> Filtered<Self, RunScopeFilter, S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        Self.with_filter(RunScopeFilter)
    }
}

impl<S> Layer<S> for RunLogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let member = if is_run_span(attrs.metadata()) {
            RunMember::Root
        } else if span.parent().is_some_and(|parent| is_member(&parent)) {
            let mut fields = SpanFields::default();
            fields.record(attrs);
            RunMember::Inner(fields)
        } else {
            return;
        };
        span.extensions_mut().insert(member);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        if let Some(RunMember::Inner(fields)) = span.extensions_mut().get_mut::<RunMember>() {
            fields.record(values);
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        if is_member(&span) {
            // `try_with`: spans may still be exited while the thread is being torn down.
            let _ =
                RUN_SPANS_ENTERED.try_with(|entered| entered.set(entered.get().saturating_add(1)));
        }
        if let Some(AttachedSink(sink)) = span.extensions().get::<AttachedSink>() {
            let secrets = Arc::clone(sink.secrets());
            let _ = RUN_SECRETS_ENTERED
                .try_with(|entered| entered.borrow_mut().push((id.clone(), secrets)));
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        if is_member(&span) {
            let _ =
                RUN_SPANS_ENTERED.try_with(|entered| entered.set(entered.get().saturating_sub(1)));
        }
        // By id rather than "the last one": a sink attached while its span was entered
        // was never pushed, and must not pop another run's secrets.
        let _ = RUN_SECRETS_ENTERED.try_with(|entered| {
            let mut entered = entered.borrow_mut();
            if let Some(at) = entered.iter().rposition(|(entered_id, _)| entered_id == id) {
                entered.remove(at);
            }
        });
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(sink) = run_sink(event, &ctx) else {
            return;
        };
        if !sink.try_reserve_line() {
            return;
        }
        let mut line = EventFields::record(event, sink.policy());
        // Nearest span first, so that nearer fields win; stop at the run span, whose
        // own fields (run id, job) are already the line's columns.
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                let extensions = span.extensions();
                if extensions.get::<AttachedSink>().is_some() {
                    break;
                }
                if let Some(RunMember::Inner(fields)) = extensions.get::<RunMember>() {
                    line.merge_span(fields);
                }
            }
        }
        sink.send(
            event.metadata().level().as_str(),
            line.message,
            serde_json::Value::Object(line.fields),
        );
    }
}

/// The sink of the run `event` belongs to, if any: the nearest enclosing span with one.
/// The walk stops at the first span that is not part of a run, since no run can
/// enclose it.
fn run_sink<S>(event: &Event<'_>, ctx: &Context<'_, S>) -> Option<Arc<RunLogSink>>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    for span in ctx.event_scope(event)? {
        let extensions = span.extensions();
        if let Some(AttachedSink(sink)) = extensions.get::<AttachedSink>() {
            return Some(Arc::clone(sink));
        }
        extensions.get::<RunMember>()?;
    }
    None
}

fn is_member<S>(span: &SpanRef<'_, S>) -> bool
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    span.extensions().get::<RunMember>().is_some()
}

/// Whether `metadata` is the run span's (see [`super::run_span`]).
fn is_run_span(metadata: &Metadata<'_>) -> bool {
    metadata.is_span() && metadata.name() == RUN_SPAN && metadata.target() == RUN_TARGET
}

fn run_span_entered_on_this_thread() -> bool {
    RUN_SPANS_ENTERED
        .try_with(|entered| entered.get() > 0)
        .unwrap_or(false)
}

/// Libraries whose debug output is about their own plumbing (connection pools, SQL
/// statements, HTTP frames), not about the job: inside a run they are captured from
/// `INFO` up only, so a handler that uses the database or HTTP keeps a readable log.
const PLUMBING_TARGETS: [&str; 9] = [
    "sqlx",
    "hyper",
    "hyper_util",
    "reqwest",
    "h2",
    "rustls",
    "tower",
    "mio",
    "tokio",
];

/// Whether events and spans like `metadata` are ever captured inside a run.
fn capturable(metadata: &Metadata<'_>) -> bool {
    let level = *metadata.level();
    if level > CAPTURE_LEVEL {
        return false;
    }
    if level < Level::DEBUG {
        return true;
    }
    let target = metadata.target();
    let crate_name = target.split("::").next().unwrap_or(target);
    !PLUMBING_TARGETS.contains(&crate_name)
}

/// The per-layer filter of [`RunLogLayer`]: enables the run span always, and spans and
/// events at [`CAPTURE_LEVEL`] or above while a run's span is entered on this thread.
///
/// Everything else is turned away by a thread-local check, before any span is looked
/// at; `TRACE` callsites are turned away once and for all.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunScopeFilter;

impl<S> Filter<S> for RunScopeFilter
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn enabled(&self, metadata: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        is_run_span(metadata) || (capturable(metadata) && run_span_entered_on_this_thread())
    }

    fn callsite_enabled(&self, metadata: &'static Metadata<'static>) -> Interest {
        if is_run_span(metadata) {
            Interest::always()
        } else if capturable(metadata) {
            // Whether this callsite is in a run depends on where it is hit.
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::from_level(CAPTURE_LEVEL))
    }
}

/// A global filter to install beside [`RunLogLayer`]: it disables, for every layer at
/// once, what neither a run nor any other layer can want.
///
/// Per-layer filters alone never disable anything globally while one of them answers
/// "it depends" (as [`RunScopeFilter`] must for every `DEBUG` callsite): such spans
/// and events would be built, and their spans registered, everywhere in the process
/// just to be dropped. This gate turns those away with the same thread-local check
/// when they are more verbose than the other layers' maximum level.
#[derive(Debug, Clone, Copy)]
pub struct CaptureGate {
    others_max: LevelFilter,
}

impl CaptureGate {
    /// A gate letting through what runs capture, and whatever is at or below
    /// `others_max`: the most verbose level the other layers may want, such as the
    /// stdout filter's `max_level_hint()` (`None` means they may want anything).
    pub fn new(others_max: Option<LevelFilter>) -> Self {
        Self {
            others_max: others_max.unwrap_or(LevelFilter::TRACE),
        }
    }

    fn wanted_elsewhere(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= self.others_max
    }
}

impl<S: Subscriber> Layer<S> for CaptureGate {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if is_run_span(metadata) || self.wanted_elsewhere(metadata) {
            Interest::always()
        } else if capturable(metadata) {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
        is_run_span(metadata)
            || self.wanted_elsewhere(metadata)
            || (capturable(metadata) && run_span_entered_on_this_thread())
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.others_max.max(LevelFilter::from_level(CAPTURE_LEVEL)))
    }
}
