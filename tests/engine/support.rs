//! A scheduler on a real SQLite file with a manual clock, and handlers whose behaviour
//! each test picks through params.

use std::sync::Arc;
use std::time::Duration;

use batchboard::clock::{Clock, ManualClock};
use batchboard::job::{JobContext, JobError, JobHandler, JobSettings, Outcome, Registry};
use batchboard::runlog::RunLogPolicy;
use batchboard::scheduler::{
    self, SchedulerConfig, SchedulerEvent, SchedulerHandle, SchedulerParts,
};
use batchboard::store::writer::Writer;
use batchboard::store::{self, RunFilter, RunRecord, RunStatus, SharedStore};
use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

#[path = "../common/postgres.rs"]
mod postgres;
pub use postgres::PgDatabase;

/// What a `scripted` run does.
#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Script {
    /// Logs one line, counts one item checked, succeeds.
    Ok,
    /// Waits this long on the scheduler's clock (cancellable), then succeeds.
    Sleep {
        secs: u64,
    },
    /// Never returns and ignores cancellation.
    Hang,
    Fail,
    /// Fails (retryably) its first `attempts` attempts, then succeeds.
    FailFirst {
        attempts: u32,
    },
    Fatal,
    RateLimited {
        retry_after_secs: u64,
    },
    Panic,
    /// Logs `lines` lines, each with a secret-looking field.
    Log {
        lines: u32,
    },
}

/// The `scripted` handler. It notes the runs whose `sleep` has fixed its wake-up time
/// on the clock, so that a test moves the clock past it only once the handler will see
/// the move (a handler that starts after the move would sleep past it).
#[derive(Clone, Default)]
pub struct Scripted {
    asleep: Arc<std::sync::Mutex<std::collections::HashSet<i64>>>,
}

impl Scripted {
    fn is_asleep(&self, run_id: i64) -> bool {
        self.asleep
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&run_id)
    }
}

impl JobHandler for Scripted {
    type Params = Script;

    async fn run(&self, script: Script, ctx: JobContext) -> Result<Outcome, JobError> {
        match script {
            Script::Ok => {
                tracing::info!(attempt = ctx.attempt(), "checked one item");
                ctx.add_checked(1);
                Ok(Outcome::summary("fine"))
            }
            Script::Sleep { secs } => {
                // Polled once first: that reads the clock and fixes the wake-up time.
                let mut sleep = std::pin::pin!(ctx.sleep(Duration::from_secs(secs)));
                let first = futures::poll!(sleep.as_mut());
                self.asleep
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(ctx.run_id());
                match first {
                    std::task::Poll::Ready(slept) => slept?,
                    std::task::Poll::Pending => sleep.await?,
                }
                Ok(Outcome::default())
            }
            Script::Hang => std::future::pending().await,
            Script::Fail => Err(JobError::retryable("upstream timed out")),
            Script::FailFirst { attempts } if ctx.attempt() <= attempts => {
                Err(JobError::retryable("not yet"))
            }
            Script::FailFirst { .. } => Ok(Outcome::summary("fine")),
            Script::Fatal => Err(JobError::fatal("the file is gone")),
            Script::RateLimited { retry_after_secs } => Err(JobError::RateLimited {
                retry_after: Duration::from_secs(retry_after_secs),
                message: "slow down".into(),
            }),
            Script::Panic => panic!("scripted panic"),
            Script::Log { lines } => {
                for line in 0..lines {
                    tracing::info!(line, password = "hunter2", sku = "A-1", "line {line}");
                }
                Ok(Outcome::default())
            }
        }
    }
}

/// The clock's start: a fixed, round instant.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
        .single()
        .expect("a valid instant")
}

/// A job for the `scripted` handler.
pub fn job(name: &str, every: &str, script: serde_json::Value) -> JobSettings {
    JobSettings {
        name: name.into(),
        handler: "scripted".into(),
        every: Some(every.into()),
        params: Some(script),
        ..JobSettings::default()
    }
}

pub struct Engine {
    pub dir: Arc<tempfile::TempDir>,
    pub store: SharedStore,
    pub clock: ManualClock,
    pub handle: SchedulerHandle,
    pub events: broadcast::Receiver<SchedulerEvent>,
    scripted: Scripted,
    task: JoinHandle<()>,
    writer_task: JoinHandle<()>,
}

/// Settings tests often change.
pub fn config() -> SchedulerConfig {
    SchedulerConfig {
        max_concurrent_runs: 16,
        shutdown_grace: Duration::from_secs(30),
        timeout_grace: Duration::from_secs(2),
        instance_id: "test".into(),
        shared_execution: false,
        runlog: Arc::new(RunLogPolicy::new(100, &[])),
    }
}

impl Engine {
    /// A fresh database with `jobs`, and the scheduler started at [`t0`].
    pub async fn start(jobs: &[JobSettings]) -> Engine {
        Self::start_with(jobs, config()).await
    }

    pub async fn start_with(jobs: &[JobSettings], config: SchedulerConfig) -> Engine {
        let dir = Arc::new(tempfile::tempdir().expect("a temporary directory"));
        let clock = ManualClock::new(t0());
        Self::boot(dir, clock, jobs, config).await
    }

    /// A fresh database with `jobs`, and a scheduler at [`t0`] that fires scheduled runs
    /// only while `leading` says it leads.
    pub async fn start_following(
        jobs: &[JobSettings],
        leading: batchboard::instance::Leading,
    ) -> Engine {
        let dir = Arc::new(tempfile::tempdir().expect("a temporary directory"));
        let clock = ManualClock::new(t0());
        Self::boot_following(dir, clock, jobs, config(), Some(leading)).await
    }

    /// Starts a scheduler on an existing database directory, as a new process would.
    pub async fn boot(
        dir: Arc<tempfile::TempDir>,
        clock: ManualClock,
        jobs: &[JobSettings],
        config: SchedulerConfig,
    ) -> Engine {
        Self::boot_following(dir, clock, jobs, config, None).await
    }

    pub async fn boot_following(
        dir: Arc<tempfile::TempDir>,
        clock: ManualClock,
        jobs: &[JobSettings],
        config: SchedulerConfig,
        leading: Option<batchboard::instance::Leading>,
    ) -> Engine {
        batchboard::telemetry::init_for_tests();
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let store = store::connect(&url).await.expect("the database opens");
        store
            .sync_jobs(jobs, clock.now())
            .await
            .expect("jobs are saved");
        let (writer, writer_task) = Writer::start(store.clone());
        let scripted = Scripted::default();
        let registry = Registry::builder()
            .handler("scripted", scripted.clone())
            .build();
        let parts = SchedulerParts {
            store: store.clone(),
            writer,
            registry,
            clock: clock.shared(),
            config,
            leading,
        };
        let (handle, task) = scheduler::start(parts).await.expect("the scheduler starts");
        let events = handle.subscribe();
        Engine {
            dir,
            store,
            clock,
            handle,
            events,
            scripted,
            task,
            writer_task,
        }
    }

    /// Waits (10 real seconds at most) until run `run_id`'s scripted `sleep` has fixed
    /// its wake-up time.
    pub async fn until_asleep(&self, run_id: i64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !self.scripted.is_asleep(run_id) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "run {run_id} never went to sleep"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Moves the clock and waits until everything due by then has been dispatched.
    pub async fn advance(&self, secs: i64) {
        self.clock.advance(chrono::Duration::seconds(secs));
        self.handle.sync().await;
    }

    /// The next event that matches, within 10 real seconds.
    pub async fn wait_for(
        &mut self,
        mut wanted: impl FnMut(&SchedulerEvent) -> bool,
    ) -> SchedulerEvent {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .expect("the event came within 10 s")
                .expect("the event stream is open");
            if wanted(&event) {
                return event;
            }
        }
    }

    /// Waits for the next run of `job` to finish; returns its id and status.
    pub async fn finished(&mut self, job: &str) -> (i64, RunStatus) {
        match self
            .wait_for(
                |event| matches!(event, SchedulerEvent::RunFinished { job: j, .. } if j == job),
            )
            .await
        {
            SchedulerEvent::RunFinished { run_id, status, .. } => (run_id, status),
            _ => unreachable!("filtered above"),
        }
    }

    /// Waits for the next run of `job` to start; returns its id.
    pub async fn started(&mut self, job: &str) -> i64 {
        match self
            .wait_for(
                |event| matches!(event, SchedulerEvent::RunStarted { job: j, .. } if j == job),
            )
            .await
        {
            SchedulerEvent::RunStarted { run_id, .. } => run_id,
            _ => unreachable!("filtered above"),
        }
    }

    /// Every run of `job`, oldest first.
    pub async fn runs(&self, job: &str) -> Vec<RunRecord> {
        let record = self
            .store
            .job_by_name(job)
            .await
            .expect("jobs load")
            .expect("the job exists");
        let mut runs = self
            .store
            .runs(&RunFilter {
                job_id: Some(record.id),
                limit: 1000,
                ..RunFilter::default()
            })
            .await
            .expect("runs load");
        runs.reverse();
        runs
    }

    pub async fn run(&self, id: i64) -> RunRecord {
        self.store
            .run(id)
            .await
            .expect("the run loads")
            .expect("the run exists")
    }

    /// Stops the scheduler (advancing the clock past the grace period if runs are still
    /// going) and the writer.
    pub async fn stop(self) -> (Arc<tempfile::TempDir>, ManualClock) {
        self.handle.shutdown();
        let mut task = self.task;
        loop {
            tokio::select! {
                result = &mut task => { result.expect("the scheduler task ends cleanly"); break; }
                () = tokio::time::sleep(Duration::from_millis(20)) => {
                    // Runs still going hold the shutdown up until their grace ends.
                    self.clock.advance(chrono::Duration::seconds(1));
                }
            }
        }
        drop(self.handle);
        self.writer_task.await.expect("the writer ends cleanly");
        (self.dir, self.clock)
    }
}

/// The backends the store suite runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A migrated store on a fresh database that lives as long as the value: a SQLite file
/// in a temporary directory, or a PostgreSQL database of its own, dropped afterwards.
pub struct TestStore {
    pub store: SharedStore,
    pub backend: Backend,
    /// The store's database URL.
    pub url: String,
    _place: Place,
}

/// What the store's database lives in, kept until the store is dropped.
enum Place {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Database(#[allow(dead_code)] PgDatabase),
    /// The caller keeps it.
    Elsewhere,
}

impl std::ops::Deref for TestStore {
    type Target = dyn store::Store;

    fn deref(&self) -> &Self::Target {
        self.store.as_ref()
    }
}

impl TestStore {
    /// A store the caller opened on a database it keeps, for the helpers of the suite.
    pub fn adopt(store: SharedStore, backend: Backend, url: String) -> TestStore {
        TestStore {
            store,
            backend,
            url,
            _place: Place::Elsewhere,
        }
    }

    /// Runs `sql` on the store's database through a connection of its own: for tests
    /// that plant what the store itself would never write.
    pub async fn execute(&self, sql: &str) {
        use sqlx::Connection as _;
        match self.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url)
                    .await
                    .expect("the database opens");
                sqlx::raw_sql(sql)
                    .execute(&mut conn)
                    .await
                    .expect("the SQL runs");
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url)
                    .await
                    .expect("the database opens");
                sqlx::raw_sql(sql)
                    .execute(&mut conn)
                    .await
                    .expect("the SQL runs");
            }
        }
    }
}

/// A fresh, migrated SQLite store in a temporary directory.
pub async fn open_store() -> TestStore {
    open_backend(Backend::Sqlite)
        .await
        .expect("SQLite is always available")
}

/// A fresh, migrated store on `backend`; `None` for PostgreSQL when
/// `BATCHBOARD_TEST_POSTGRES_URL` is not set (after saying so once).
pub async fn open_backend(backend: Backend) -> Option<TestStore> {
    let (url, place) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let url = format!("sqlite://{}", dir.path().join("batchboard.db").display());
            (url, Place::Dir(dir))
        }
        Backend::Postgres => {
            let database = PgDatabase::create().await?;
            (database.url.clone(), Place::Database(database))
        }
    };
    let store = store::connect(&url)
        .await
        .expect("the store opens and migrates");
    Some(TestStore {
        store,
        backend,
        url,
        _place: place,
    })
}

/// Expands store tests, each an `async fn(TestStore)` in the calling module, into one
/// `#[tokio::test]` per backend: `<module>::sqlite::<name>` always runs;
/// `<module>::postgres::<name>` runs on a fresh database when `BATCHBOARD_TEST_POSTGRES_URL` is
/// set, and passes after saying SKIP when it is not.
macro_rules! store_suite {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    let store = crate::support::open_store().await;
                    super::$test(store).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    let backend = crate::support::Backend::Postgres;
                    if let Some(store) = crate::support::open_backend(backend).await {
                        super::$test(store).await;
                    }
                }
            )*
        }
    };
}

pub(crate) use store_suite;

/// A run of `job_id` by `trigger` keyed `scheduled_for`, ended as `status` at `ended`;
/// `None` when the database kept another run with that key instead.
pub async fn ended_run(
    store: &TestStore,
    job_id: i64,
    trigger: batchboard::store::Trigger,
    scheduled_for: DateTime<Utc>,
    status: RunStatus,
    ended: DateTime<Utc>,
) -> Option<i64> {
    let run = batchboard::store::NewRun {
        job_id,
        trigger,
        attempt: 1,
        first_run_id: None,
        status: RunStatus::Running,
        scheduled_for,
        started_at: scheduled_for,
        finished_at: None,
        error_kind: None,
        error_message: None,
        instance_id: "a".into(),
        exclusive: false,
    };
    let written = store
        .write_batch(&batchboard::store::WriteBatch {
            inserts: vec![run],
            ..batchboard::store::WriteBatch::default()
        })
        .await
        .expect("written");
    let batchboard::store::ClaimResult::Run(run_id) = written.inserts[0] else {
        return None;
    };
    let finish = batchboard::store::RunFinish {
        run_id,
        status,
        started_at: Some(scheduled_for),
        finished_at: ended,
        duration_ms: Some(0),
        items_checked: 0,
        items_updated: 0,
        items_total: None,
        error_kind: None,
        error_message: None,
        summary: None,
        retry_at: None,
    };
    store
        .write_batch(&batchboard::store::WriteBatch {
            finishes: vec![finish],
            ..batchboard::store::WriteBatch::default()
        })
        .await
        .expect("finished");
    Some(run_id)
}
