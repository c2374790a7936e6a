//! The SQLite backend: one file in WAL mode, migrations from `migrations/sqlite`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::SqlitePool;

use super::*;

/// The store on a SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url`, e.g. `sqlite://batchboard.db`.
    ///
    /// # Errors
    /// When the file cannot be opened or created.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        todo!("{url}")
    }

    /// The underlying pool, for the session store.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> StoreResult<()> {
        todo!()
    }

    async fn sync_jobs(
        &self,
        jobs: &[JobSettings],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<JobRecord>> {
        todo!("{jobs:?} {now}")
    }

    async fn jobs(&self) -> StoreResult<Vec<JobRecord>> {
        todo!()
    }

    async fn job_by_name(&self, name: &str) -> StoreResult<Option<JobRecord>> {
        todo!("{name}")
    }

    async fn set_next_run(&self, job_id: i64, next: Option<DateTime<Utc>>) -> StoreResult<bool> {
        todo!("{job_id} {next:?}")
    }

    async fn set_paused(
        &self,
        job_id: i64,
        paused: bool,
        next: Option<DateTime<Utc>>,
    ) -> StoreResult<JobRecord> {
        todo!("{job_id} {paused} {next:?}")
    }

    async fn write_batch(&self, batch: WriteBatch) -> StoreResult<BatchResult> {
        todo!("{batch:?}")
    }

    async fn running_runs(&self) -> StoreResult<Vec<RunRecord>> {
        todo!()
    }

    async fn pending_retries(&self) -> StoreResult<Vec<RunRecord>> {
        todo!()
    }

    async fn run(&self, id: i64) -> StoreResult<Option<RunRecord>> {
        todo!("{id}")
    }

    async fn runs(&self, filter: &RunFilter) -> StoreResult<Vec<RunRecord>> {
        todo!("{filter:?}")
    }

    async fn latest_runs(&self) -> StoreResult<std::collections::HashMap<i64, RunRecord>> {
        todo!()
    }

    async fn run_logs(
        &self,
        run_id: i64,
        after: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<(i64, LogLine)>> {
        todo!("{run_id} {after:?} {limit}")
    }

    async fn prune_runs(
        &self,
        older_than: Option<DateTime<Utc>>,
        keep_per_job: Option<u32>,
        batch_size: u32,
    ) -> StoreResult<PruneReport> {
        todo!("{older_than:?} {keep_per_job:?} {batch_size}")
    }
}
