use std::io;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tracing::instrument::WithSubscriber;
use tracing::subscriber::with_default;
use tracing::{Dispatch, Instrument, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

use super::*;
use crate::clock::ManualClock;
use crate::store::LogLine;

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
        .single()
        .expect("valid date")
}

/// A registry with only the run-log layer, as a test subscriber.
fn run_log_only() -> impl Subscriber + Send + Sync {
    tracing_subscriber::registry().with(RunLogLayer::filtered())
}

struct Run {
    sink: Arc<RunLogSink>,
    lines: UnboundedReceiver<LogLine>,
    clock: ManualClock,
}

impl Run {
    fn new(run_id: i64, policy: RunLogPolicy) -> Self {
        let (tx, lines) = unbounded_channel();
        let clock = ManualClock::new(start());
        let sink = Arc::new(RunLogSink::new(
            run_id,
            Arc::new(policy),
            tx,
            clock.shared(),
        ));
        Self { sink, lines, clock }
    }

    fn received(&mut self) -> Vec<LogLine> {
        let mut received = Vec::new();
        while let Ok(line) = self.lines.try_recv() {
            received.push(line);
        }
        received
    }
}

/// Stdout stand-in: what the fmt layer wrote.
#[derive(Clone, Default)]
struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl SharedBuffer {
    fn text(&self) -> String {
        let bytes = self.0.lock().expect("buffer lock not poisoned");
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl io::Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .expect("buffer lock not poisoned")
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for SharedBuffer {
    type Writer = SharedBuffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[test]
fn an_event_inside_a_run_span_is_captured_with_level_message_fields_and_clock_time() {
    let mut run = Run::new(7, RunLogPolicy::default());
    with_default(run_log_only(), || {
        let span = run_span(7, "inventory-sync");
        assert!(attach(&span, Arc::clone(&run.sink)));
        span.in_scope(|| {
            let failure = io::Error::other("disk full");
            tracing::info!(
                checked = 12_i64,
                total = 40_u64,
                ratio = 0.5,
                complete = false,
                supplier = "acme",
                shown = %"display text",
                items = ?vec![1, 2],
                failure = &failure as &(dyn std::error::Error + 'static),
                "checked {} of {}",
                12,
                40
            );
            run.clock.advance(chrono::Duration::seconds(3));
            tracing::debug!("a quieter line");
        });
    });

    let lines = run.received();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[0],
        LogLine {
            run_id: 7,
            ts: start(),
            level: "INFO".to_owned(),
            message: "checked 12 of 40".to_owned(),
            fields: json!({
                "checked": 12,
                "total": 40,
                "ratio": 0.5,
                "complete": false,
                "supplier": "acme",
                "shown": "display text",
                "items": "[1, 2]",
                "failure": "disk full",
            }),
        }
    );
    assert_eq!(lines[1].level, "DEBUG");
    assert_eq!(lines[1].ts, start() + chrono::Duration::seconds(3));
    assert_eq!(lines[1].fields, json!({}));
    assert_eq!(run.sink.lines_written(), 2);
}

#[test]
fn events_outside_any_run_or_in_other_spans_are_not_captured() {
    let mut run = Run::new(1, RunLogPolicy::default());
    with_default(run_log_only(), || {
        let span = run_span(1, "job");
        assert!(attach(&span, Arc::clone(&run.sink)));
        tracing::info!("before the run, outside any span");
        tracing::info_span!("http.request").in_scope(|| tracing::info!("in another span"));
        span.in_scope(|| {
            // An explicit root span started inside the run is not part of it.
            tracing::info_span!(parent: None, "detached")
                .in_scope(|| tracing::info!("detached from the run"));
        });
        tracing::info!("after the run");
    });
    assert!(run.received().is_empty());
    assert_eq!(run.sink.lines_written(), 0);
}

#[test]
fn fields_of_spans_made_inside_the_run_are_merged_and_nearer_fields_win() {
    let mut run = Run::new(3, RunLogPolicy::default());
    with_default(run_log_only(), || {
        let span = run_span(3, "job");
        assert!(attach(&span, Arc::clone(&run.sink)));
        span.in_scope(|| {
            let batch = tracing::info_span!(
                "batch",
                batch = 1,
                shard = "a",
                phase = tracing::field::Empty
            );
            batch.record("phase", "late");
            batch.in_scope(|| {
                tracing::debug_span!("item", item = 42, shard = "b", api_token = "s3cr3t")
                    .in_scope(|| tracing::info!(item = 43, "processing"));
            });
        });
    });

    let lines = run.received();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].message, "processing");
    assert_eq!(
        lines[0].fields,
        json!({
            "item": 43,
            "shard": "b",
            "api_token": "[redacted]",
            "batch": 1,
            "phase": "late",
        }),
        "the run span's own run_id and job are columns, not fields"
    );
}

#[test]
fn secret_looking_fields_are_redacted_but_the_message_and_other_fields_are_kept() {
    let policy = RunLogPolicy::new(DEFAULT_MAX_LINES, &["ssn".to_owned()]);
    let mut run = Run::new(4, policy);
    with_default(run_log_only(), || {
        let span = run_span(4, "job");
        assert!(attach(&span, Arc::clone(&run.sink)));
        span.in_scope(|| {
            tracing::warn!(
                password = "hunter2",
                api_key = "k-123",
                Authorization = "Bearer abc",
                "X-Auth-Token" = "t-456",
                user_secret = ?"debug secret",
                customer_ssn = 123_456_789_i64,
                user = "alice",
                attempts = 3_i64,
                "login with password {} refused",
                "hunter2"
            );
        });
    });

    let lines = run.received();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].message, "login with password hunter2 refused");
    assert_eq!(
        lines[0].fields,
        json!({
            "password": "[redacted]",
            "api_key": "[redacted]",
            "Authorization": "[redacted]",
            "X-Auth-Token": "[redacted]",
            "user_secret": "[redacted]",
            "customer_ssn": "[redacted]",
            "user": "alice",
            "attempts": 3,
        })
    );
}

#[test]
fn the_cap_keeps_exactly_max_lines_and_the_truncation_line_reports_the_rest() {
    let mut run = Run::new(5, RunLogPolicy::new(3, &[]));
    with_default(run_log_only(), || {
        let span = run_span(5, "chatty");
        assert!(attach(&span, Arc::clone(&run.sink)));
        span.in_scope(|| {
            for step in 0..10 {
                tracing::info!(step, "step");
            }
        });
    });

    let lines = run.received();
    let steps: Vec<_> = lines
        .iter()
        .map(|line| line.fields["step"].clone())
        .collect();
    assert_eq!(steps, vec![json!(0), json!(1), json!(2)]);
    assert_eq!(run.sink.lines_written(), 3);
    assert_eq!(run.sink.lines_dropped(), 7);

    run.clock.advance(chrono::Duration::seconds(1));
    let truncation = run.sink.truncation_line().expect("lines were dropped");
    assert_eq!(
        truncation,
        LogLine {
            run_id: 5,
            ts: start() + chrono::Duration::seconds(1),
            level: "WARN".to_owned(),
            message: "log truncated: 7 more lines were not kept (limit 3 per run)".to_owned(),
            fields: json!({ "dropped": 7 }),
        }
    );
}

#[test]
fn a_run_within_its_cap_has_no_truncation_line() {
    let run = Run::new(6, RunLogPolicy::new(3, &[]));
    with_default(run_log_only(), || {
        let span = run_span(6, "quiet");
        assert!(attach(&span, Arc::clone(&run.sink)));
        span.in_scope(|| tracing::info!("only line"));
    });
    assert_eq!(run.sink.lines_written(), 1);
    assert!(run.sink.truncation_line().is_none());
}

#[test]
fn events_that_rust_log_hides_from_stdout_are_still_captured() {
    let mut run = Run::new(8, RunLogPolicy::default());
    let stdout = SharedBuffer::default();
    let stack = crate::telemetry::subscriber(EnvFilter::new("warn"), stdout.clone(), false);
    with_default(stack, || {
        let span = run_span(8, "job");
        assert!(
            attach(&span, Arc::clone(&run.sink)),
            "attach finds the layer and the registry through the layered, filtered stack"
        );
        span.in_scope(|| {
            tracing::info!("hidden from stdout");
            tracing::debug!("also hidden from stdout");
            tracing::trace!("too verbose for the run log");
            tracing::warn!("shown everywhere");
        });
        tracing::warn!("outside the run, on stdout only");
    });

    let levels_and_messages: Vec<_> = run
        .received()
        .into_iter()
        .map(|line| (line.level, line.message))
        .collect();
    assert_eq!(
        levels_and_messages,
        vec![
            ("INFO".to_owned(), "hidden from stdout".to_owned()),
            ("DEBUG".to_owned(), "also hidden from stdout".to_owned()),
            ("WARN".to_owned(), "shown everywhere".to_owned()),
        ]
    );
    let stdout = stdout.text();
    assert!(stdout.contains("shown everywhere"), "{stdout}");
    assert!(
        stdout.contains("outside the run, on stdout only"),
        "{stdout}"
    );
    assert!(!stdout.contains("hidden from stdout"), "{stdout}");
}

#[test]
fn debug_events_outside_runs_stay_disabled_when_stdout_does_not_want_them() {
    let run = Run::new(9, RunLogPolicy::default());
    let stack = crate::telemetry::subscriber(EnvFilter::new("info"), io::sink, false);
    with_default(stack, || {
        assert!(!tracing::enabled!(Level::DEBUG));
        assert!(tracing::debug_span!("request").is_disabled());
        let span = run_span(9, "job");
        assert!(attach(&span, Arc::clone(&run.sink)));
        span.in_scope(|| {
            assert!(tracing::enabled!(Level::DEBUG));
            assert!(!tracing::enabled!(Level::TRACE));
        });
        assert!(!tracing::enabled!(Level::DEBUG));
    });
}

#[test]
fn attach_reports_false_when_the_subscriber_cannot_capture() {
    let run = Run::new(10, RunLogPolicy::default());
    let stdout_only =
        tracing_subscriber::registry().with(tracing_subscriber::fmt::layer().with_writer(io::sink));
    with_default(stdout_only, || {
        assert!(!attach(&run_span(10, "job"), Arc::clone(&run.sink)));
    });
    with_default(tracing::subscriber::NoSubscriber::default(), || {
        assert!(!attach(&run_span(10, "job"), Arc::clone(&run.sink)));
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_runs_on_a_multi_thread_runtime_capture_only_their_own_events() {
    const STEPS: i64 = 200;
    const HELPER_EVERY: i64 = 10;
    let dispatch = Dispatch::new(run_log_only());
    let mut runs = Vec::new();
    for run_id in [21, 22] {
        let mut run = Run::new(run_id, RunLogPolicy::default());
        let sink = Arc::clone(&run.sink);
        let task = tokio::spawn(
            async move {
                let span = run_span(run_id, "job");
                assert!(attach(&span, sink));
                async move {
                    for step in 0..STEPS {
                        tracing::info!(owner = run_id, step, "step");
                        if step % HELPER_EVERY == 0 {
                            // Work the handler spawns joins the run through its span.
                            tokio::spawn(
                                async move { tracing::debug!(owner = run_id, step, "helper") }
                                    .in_current_span()
                                    .with_current_subscriber(),
                            )
                            .await
                            .expect("helper task finished");
                        }
                        tokio::task::yield_now().await;
                    }
                }
                .instrument(span)
                .await;
                tracing::info!(owner = run_id, "after the run");
            }
            .with_subscriber(dispatch.clone()),
        );
        runs.push((run_id, task, run.lines));
        run.lines = unbounded_channel().1;
    }

    for (run_id, task, mut lines) in runs {
        task.await.expect("run task finished");
        let mut received = Vec::new();
        while let Ok(line) = lines.try_recv() {
            received.push(line);
        }
        assert_eq!(received.len() as i64, STEPS + STEPS / HELPER_EVERY);
        for line in &received {
            assert_eq!(line.run_id, run_id);
            assert_eq!(line.fields["owner"], json!(run_id), "{line:?}");
        }
    }
}

#[test]
fn stdout_hides_secret_looking_fields_too() {
    let stdout = SharedBuffer::default();
    let stack = crate::telemetry::subscriber(EnvFilter::new("info"), stdout.clone(), false);
    with_default(stack, || {
        tracing::info!(authorization = "Bearer abc123", sku = "A-1", "delivering");
    });
    let stdout = stdout.text();
    assert!(stdout.contains("authorization=[redacted]"), "{stdout}");
    assert!(stdout.contains("sku=\"A-1\""), "{stdout}");
    assert!(stdout.contains("delivering"), "{stdout}");
    assert!(!stdout.contains("abc123"), "{stdout}");
}

#[test]
fn library_plumbing_is_captured_from_info_up_only() {
    let mut run = Run::new(9, RunLogPolicy::default());
    with_default(run_log_only(), || {
        let span = run_span(9, "job");
        assert!(attach(&span, Arc::clone(&run.sink)));
        span.in_scope(|| {
            tracing::debug!(target: "sqlx::query", "SELECT 1");
            tracing::info!(target: "sqlx::query", "slow statement");
            tracing::debug!("the handler's own detail");
        });
    });
    let messages: Vec<_> = run
        .received()
        .into_iter()
        .map(|line| line.message)
        .collect();
    assert_eq!(messages, ["slow statement", "the handler's own detail"]);
}

#[test]
fn stdout_follows_the_configured_extra_redactions() {
    crate::telemetry::redact_on_stdout(Arc::new(RunLogPolicy::new(10, &["ssn".to_owned()])));
    let stdout = SharedBuffer::default();
    let stack = crate::telemetry::subscriber(EnvFilter::new("info"), stdout.clone(), false);
    with_default(stack, || {
        tracing::info!(
            customer_ssn = "123-45-6789",
            password = "hunter2",
            "looked up"
        );
    });
    let stdout = stdout.text();
    assert!(stdout.contains("customer_ssn=[redacted]"), "{stdout}");
    assert!(stdout.contains("password=[redacted]"), "{stdout}");
    assert!(
        // The whole value: a fragment of it can appear in the line's timestamp.
        !stdout.contains("123-45-6789") && !stdout.contains("hunter2"),
        "{stdout}"
    );
}

#[test]
fn the_runs_secrets_are_masked_in_its_lines_and_on_stdout_even_when_registered_mid_run() {
    let mut run = Run::new(12, RunLogPolicy::default());
    run.sink.secrets().register("declared-s3cret");
    let stdout = SharedBuffer::default();
    let stack = crate::telemetry::subscriber(EnvFilter::new("warn"), stdout.clone(), false);
    with_default(stack, || {
        let span = run_span(12, "job");
        assert!(attach(&span, Arc::clone(&run.sink)));
        span.in_scope(|| {
            let inner = tracing::info_span!("step", target_url = "https://x/?k=declared-s3cret");
            inner.in_scope(|| {
                tracing::warn!(detail = "got declared-s3cret back", "using declared-s3cret");
            });
            run.sink.secrets().register("fetched-s3cret");
            tracing::warn!(args = ?["-c", "fetched-s3cret"], "then fetched-s3cret");
        });
        tracing::warn!("outside any run: declared-s3cret is not masked here");
    });

    let lines = run.received();
    let captured = format!("{lines:?}");
    assert!(!captured.contains("declared-s3cret"), "{captured}");
    assert!(!captured.contains("fetched-s3cret"), "{captured}");
    assert_eq!(lines[0].message, "using [redacted]");
    assert_eq!(lines[0].fields["detail"], "got [redacted] back");
    assert_eq!(lines[0].fields["target_url"], "https://x/?k=[redacted]");
    assert_eq!(lines[1].message, "then [redacted]");
    assert_eq!(lines[1].fields["args"], r#"["-c", "[redacted]"]"#);

    let stdout = stdout.text();
    assert!(stdout.contains("using [redacted]"), "{stdout}");
    assert!(stdout.contains("then [redacted]"), "{stdout}");
    assert!(!stdout.contains("fetched-s3cret"), "{stdout}");
    assert_eq!(stdout.matches("declared-s3cret").count(), 1, "{stdout}");
    assert!(
        stdout.contains("outside any run: declared-s3cret"),
        "{stdout}"
    );
}
