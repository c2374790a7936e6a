//! What the handler tests share: a context for one run, a collector of tracing events,
//! and a store that only knows how to prune.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

use crate::clock::SystemClock;
use crate::job::{JobContext, JobSettings, RunCounters};
use crate::store::{
    BatchResult, JobRecord, LogLine, PruneReport, RunFilter, RunRecord, SharedStore, Store,
    StoreResult, WriteBatch,
};

/// A context for run 1 of a job named `test-job`, on the system clock.
pub fn context(cancel: CancellationToken) -> JobContext {
    JobContext::new(
        "test-job".parse().expect("a valid name"),
        1,
        1,
        Utc::now(),
        cancel,
        Arc::new(RunCounters::default()),
        Arc::new(SystemClock),
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

/// The arguments of one `prune_runs` call: cutoff, keep per job, batch size.
pub type PruneCall = (Option<DateTime<Utc>>, Option<u32>, u32);

/// A store holding `runs` finished runs of 10 log lines each, that prunes them in
/// batches and records each call; every other method is unreachable in these tests.
pub struct PruneOnlyStore {
    pub remaining: Mutex<u64>,
    pub calls: Mutex<Vec<PruneCall>>,
}

impl PruneOnlyStore {
    pub fn with_runs(runs: u64) -> Arc<Self> {
        Arc::new(Self {
            remaining: Mutex::new(runs),
            calls: Mutex::new(Vec::new()),
        })
    }
}

/// A store for building the registry in tests that never run `prune_history`.
pub fn unused_store() -> SharedStore {
    PruneOnlyStore::with_runs(0)
}

#[async_trait]
impl Store for PruneOnlyStore {
    fn backend(&self) -> &'static str {
        "prune-only"
    }

    async fn prune_runs(
        &self,
        older_than: Option<DateTime<Utc>>,
        keep_per_job: Option<u32>,
        batch_size: u32,
    ) -> StoreResult<PruneReport> {
        self.calls
            .lock()
            .expect("calls lock")
            .push((older_than, keep_per_job, batch_size));
        let mut remaining = self.remaining.lock().expect("remaining lock");
        let deleted = (*remaining).min(u64::from(batch_size));
        *remaining -= deleted;
        Ok(PruneReport {
            runs_deleted: deleted,
            log_lines_deleted: deleted * 10,
        })
    }

    async fn migrate(&self) -> StoreResult<()> {
        unreachable!("not used by handlers")
    }
    async fn sync_jobs(&self, _: &[JobSettings], _: DateTime<Utc>) -> StoreResult<Vec<JobRecord>> {
        unreachable!("not used by handlers")
    }
    async fn jobs(&self) -> StoreResult<Vec<JobRecord>> {
        unreachable!("not used by handlers")
    }
    async fn job_by_name(&self, _: &str) -> StoreResult<Option<JobRecord>> {
        unreachable!("not used by handlers")
    }
    async fn set_next_run(&self, _: i64, _: Option<DateTime<Utc>>) -> StoreResult<bool> {
        unreachable!("not used by handlers")
    }
    async fn set_paused(
        &self,
        _: i64,
        _: bool,
        _: Option<DateTime<Utc>>,
    ) -> StoreResult<JobRecord> {
        unreachable!("not used by handlers")
    }
    async fn write_batch(&self, _: WriteBatch) -> StoreResult<BatchResult> {
        unreachable!("not used by handlers")
    }
    async fn running_runs(&self) -> StoreResult<Vec<RunRecord>> {
        unreachable!("not used by handlers")
    }
    async fn pending_retries(&self) -> StoreResult<Vec<RunRecord>> {
        unreachable!("not used by handlers")
    }
    async fn run(&self, _: i64) -> StoreResult<Option<RunRecord>> {
        unreachable!("not used by handlers")
    }
    async fn runs(&self, _: &RunFilter) -> StoreResult<Vec<RunRecord>> {
        unreachable!("not used by handlers")
    }
    async fn latest_runs(&self) -> StoreResult<std::collections::HashMap<i64, RunRecord>> {
        unreachable!("not used by handlers")
    }
    async fn run_logs(&self, _: i64, _: Option<i64>, _: u32) -> StoreResult<Vec<(i64, LogLine)>> {
        unreachable!("not used by handlers")
    }
}
