//! What the handler tests share: a context for one run, a collector of tracing events,
//! and real SQLite stores.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use tokio_util::sync::CancellationToken;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

use crate::clock::{SharedClock, SystemClock};
use crate::job::{JobContext, RunCounters};
use crate::store::SharedStore;

/// A context for run 1 of a job named `test-job`, on the system clock.
pub fn context(cancel: CancellationToken) -> JobContext {
    context_on(cancel, Arc::new(SystemClock))
}

/// A context for run 1 of a job named `test-job`, on `clock`.
pub fn context_on(cancel: CancellationToken, clock: SharedClock) -> JobContext {
    JobContext::new(
        "test-job".parse().expect("a valid name"),
        1,
        1,
        clock.now(),
        cancel,
        Arc::new(RunCounters::default()),
        clock,
    )
}

/// One captured tracing event.
#[derive(Debug, Clone)]
pub struct Event {
    pub level: tracing::Level,
    pub message: String,
    pub fields: BTreeMap<String, String>,
}

/// Collects the events of the current thread while the returned guard lives. Tests
/// using it run on tokio's default current-thread runtime, so the handler's events
/// are emitted on this thread.
pub fn collect_events() -> (Arc<Mutex<Vec<Event>>>, tracing::subscriber::DefaultGuard) {
    // tracing caches each callsite's interest globally. While only one dispatcher is
    // registered, a callsite first hit on another test's thread (which has no
    // subscriber) is cached as "never" and this collector would miss its events; a
    // second dispatcher that stays alive makes tracing ask every live one instead.
    static KEEP_INTEREST_SHARED: OnceLock<tracing::Dispatch> = OnceLock::new();
    KEEP_INTEREST_SHARED.get_or_init(|| tracing::Dispatch::new(tracing_subscriber::registry()));
    let events = Arc::new(Mutex::new(Vec::new()));
    let subscriber = tracing_subscriber::registry().with(Collector(Arc::clone(&events)));
    (events, tracing::subscriber::set_default(subscriber))
}

/// A copy of what was collected so far.
pub fn snapshot(events: &Mutex<Vec<Event>>) -> Vec<Event> {
    events.lock().expect("collector lock").clone()
}

struct Collector(Arc<Mutex<Vec<Event>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Collector {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut visitor = FieldVisitor::default();
        event.record(&mut visitor);
        self.0.lock().expect("collector lock").push(Event {
            level: *event.metadata().level(),
            message: visitor.message,
            fields: visitor.fields,
        });
    }
}

#[derive(Default)]
struct FieldVisitor {
    message: String,
    fields: BTreeMap<String, String>,
}

impl Visit for FieldVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.fields
                .insert(field.name().to_owned(), value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

/// A migrated store on a SQLite file in a fresh temporary directory; the directory (and
/// the file) lives as long as the returned guard.
pub async fn temp_store() -> (tempfile::TempDir, SharedStore) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    let store = crate::store::connect(&url)
        .await
        .expect("the database opens and migrates");
    (dir, store)
}

/// A store for building the registry in tests that never run `prune_history`: an
/// in-memory SQLite database that is never opened.
///
/// `store::open` starts the connection pool's upkeep task, which needs a tokio runtime
/// even though nothing connects; these tests are synchronous, so a runtime is entered
/// just for the call. Dropping it drops that task, which an unused store never misses.
pub fn unused_store() -> SharedStore {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let _entered = runtime.enter();
    crate::store::open("sqlite::memory:").expect("a valid URL")
}
