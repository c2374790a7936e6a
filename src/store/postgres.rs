//! The PostgreSQL backend: migrations from `migrations/postgres`, one pool shared by
//! the scheduler's writes, the console's reads and the session layer.
//!
//! Several instances may share the database: every write that decides ownership is a
//! compare-and-swap that PostgreSQL re-checks after waiting for a row lock (READ
//! COMMITTED), so the same claims that are exact on SQLite's single writer stay exact
//! here. Batches send each column as one array and `UNNEST` it: one statement per kind
//! of write, whatever the batch's size.
//!
//! Times are TIMESTAMPTZ, which holds microseconds, the precision the scheduler
//! truncates its times to (see `rows`).

mod actions;
mod alerts;
mod batch;
mod claims;
mod edits;
mod instances;
mod maintenance;
mod partitions;
mod prune;
mod reads;
mod rows;
mod sessions;
mod sync;
mod tokens;
mod users;

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use self::rows::{JOB_COLUMNS, JobRow, LogRow, RUN_COLUMNS, RunRow, decode_all};
use self::sync::sync_jobs;
use super::*;

/// Connections in the pool: the scheduler's writer, the console's reads and the session
/// layer at once, with room for a slow query; few enough that several instances stay
/// far below the server's `max_connections` (100 by default).
const POOL_SIZE: u32 = 8;

/// How long a query waits for a free connection before failing, so a stalled database
/// is reported (on `/readyz`, in the logs) instead of hanging every caller.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The store on a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Prepares the store for the database at `url` (`postgres://user@host/db`) without
    /// connecting: the first query opens the first connection.
    ///
    /// # Errors
    /// When the URL cannot be parsed.
    pub fn open(url: &str) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)?.application_name("batchboard");
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .min_connections(0)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options);
        Ok(Self { pool })
    }

    /// Opens the database at `url` and checks that it answers.
    ///
    /// # Errors
    /// When the URL cannot be parsed or the server cannot be reached.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let store = Self::open(url)?;
        sqlx::query("SELECT 1").execute(&store.pool).await?;
        Ok(store)
    }

    /// The underlying pool, for tests and tools that need raw SQL.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn fetch_runs(&self, sql: &str) -> StoreResult<Vec<RunRecord>> {
        let rows = sqlx::query_as::<_, RunRow>(sql)
            .fetch_all(&self.pool)
            .await?;
        decode_all(rows)
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn alerts(&self) -> &dyn crate::store::AlertStore {
        self
    }

    fn maintenance(&self) -> &dyn crate::store::MaintenanceStore {
        self
    }

    fn actions(&self) -> &dyn crate::store::ActionStore {
        self
    }

    fn write_lanes(&self) -> usize {
        2
    }

    async fn migrate(&self) -> StoreResult<()> {
        let migrator = sqlx::migrate!("migrations/postgres");
        // sqlx holds a session advisory lock while it migrates, which a transaction-mode
        // pooler can strand: when every migration is already applied (`batchboard
        // migrate` was run over a direct connection), start-up takes no lock at all.
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
                .await
                .unwrap_or_default();
        let pending = migrator
            .iter()
            .any(|migration| !applied.contains(&migration.version));
        if pending {
            migrator.run(&self.pool).await?;
        }
        self.prepare_storage(Utc::now()).await
    }

    async fn prepare_storage(&self, now: DateTime<Utc>) -> StoreResult<()> {
        let created = partitions::ensure_log_partitions(&self.pool, now).await?;
        if created > 0 {
            tracing::info!(created, "created log partitions for the coming days");
        }
        Ok(())
    }

    async fn sync_jobs(
        &self,
        jobs: &[JobSettings],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<JobRecord>> {
        sync_jobs(&self.pool, jobs, now).await
    }

    async fn jobs(&self) -> StoreResult<Vec<JobRecord>> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs ORDER BY name");
        let rows = sqlx::query_as::<_, JobRow>(&sql)
            .fetch_all(&self.pool)
            .await?;
        decode_all(rows)
    }

    async fn job_by_name(&self, name: &str) -> StoreResult<Option<JobRecord>> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE name = $1");
        sqlx::query_as::<_, JobRow>(&sql)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .map(JobRecord::try_from)
            .transpose()
    }

    async fn set_next_run(&self, job_id: i64, next: Option<DateTime<Utc>>) -> StoreResult<bool> {
        // Scheduling state, like the fire claim: it neither bumps `version` (an operator's
        // open edit form stays valid) nor counts as an edit in `updated_at`.
        let result = sqlx::query("UPDATE jobs SET next_run_at = $1 WHERE id = $2")
            .bind(next)
            .bind(job_id)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn write_batch(&self, batch: &WriteBatch) -> StoreResult<BatchResult> {
        batch::write_batch(&self.pool, batch).await
    }

    async fn claim_queued(
        &self,
        instance_id: &str,
        claim: &QueuedClaim,
    ) -> StoreResult<Vec<RunRecord>> {
        claims::claim_queued(&self.pool, instance_id, claim).await
    }

    async fn release_claimed(&self, instance_id: &str, run_ids: &[i64]) -> StoreResult<u64> {
        claims::release_claimed(&self.pool, instance_id, run_ids).await
    }

    async fn cancel_unclaimed(
        &self,
        run_id: i64,
        message: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        claims::cancel_unclaimed(&self.pool, run_id, message, now).await
    }

    async fn running_runs(&self) -> StoreResult<Vec<RunRecord>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE status IN ('queued', 'running') ORDER BY id"
        );
        self.fetch_runs(&sql).await
    }

    async fn pending_retries(&self) -> StoreResult<Vec<RunRecord>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE retry_at IS NOT NULL ORDER BY retry_at, id"
        );
        self.fetch_runs(&sql).await
    }

    async fn run(&self, id: i64) -> StoreResult<Option<RunRecord>> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1");
        sqlx::query_as::<_, RunRow>(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(RunRecord::try_from)
            .transpose()
    }

    async fn runs(&self, filter: &RunFilter) -> StoreResult<Vec<RunRecord>> {
        reads::runs(&self.pool, filter).await
    }

    async fn run_bars(&self, job_id: i64, limit: u32) -> StoreResult<Vec<RunBar>> {
        reads::run_bars(&self.pool, job_id, limit).await
    }

    async fn upstream_succeeded(
        &self,
        job_id: i64,
        upstream: &[i64],
    ) -> StoreResult<Option<DateTime<Utc>>> {
        reads::upstream_succeeded(&self.pool, job_id, upstream).await
    }

    async fn latest_runs(&self) -> StoreResult<HashMap<i64, RunRecord>> {
        reads::latest_runs(&self.pool).await
    }

    async fn run_logs(
        &self,
        run_id: i64,
        after: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<(i64, LogLine)>> {
        let rows = sqlx::query_as::<_, LogRow>(
            "SELECT id, run_id, ts, level, message, fields FROM run_logs \
             WHERE run_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(run_id)
        .bind(after.unwrap_or(i64::MIN))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        decode_all(rows)
    }

    async fn prune_runs(
        &self,
        older_than: Option<DateTime<Utc>>,
        keep_per_job: Option<u32>,
        batch_size: u32,
    ) -> StoreResult<PruneReport> {
        // Whole days of log lines first, one statement each, instead of row by row.
        let dropped_lines = match older_than {
            Some(cutoff) => partitions::drop_log_partitions_before(&self.pool, cutoff).await?,
            None => 0,
        };
        let mut report =
            prune::prune_runs(&self.pool, older_than, keep_per_job, batch_size).await?;
        report.log_lines_deleted += dropped_lines;
        Ok(report)
    }

    async fn status_counts_since(
        &self,
        since: DateTime<Utc>,
    ) -> StoreResult<HashMap<RunStatus, u64>> {
        reads::status_counts_since(&self.pool, since).await
    }

    async fn outcome_buckets(
        &self,
        job_ids: &[i64],
        since: DateTime<Utc>,
        width: chrono::Duration,
    ) -> StoreResult<Vec<OutcomeBucket>> {
        reads::outcome_buckets(&self.pool, job_ids, since, width).await
    }

    async fn run_chain(&self, first_run_id: i64) -> StoreResult<Vec<RunRecord>> {
        reads::run_chain(&self.pool, first_run_id).await
    }

    async fn update_job_overrides(
        &self,
        job_id: i64,
        expected_version: i64,
        edit: &JobEdit,
        now: DateTime<Utc>,
    ) -> StoreResult<JobRecord> {
        edits::update_job_overrides(&self.pool, job_id, expected_version, edit, now).await
    }

    async fn set_paused_by(
        &self,
        job_id: i64,
        paused: bool,
        next: Option<DateTime<Utc>>,
        actor: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<JobRecord> {
        edits::set_paused_by(&self.pool, job_id, paused, next, actor, now).await
    }

    async fn job_changes(&self, filter: &ChangeFilter) -> StoreResult<Vec<JobChangeRecord>> {
        edits::job_changes(&self.pool, filter).await
    }

    async fn jobs_matching(&self, query: &JobQuery) -> StoreResult<Vec<JobRecord>> {
        reads::jobs_matching(&self.pool, query).await
    }

    async fn latest_runs_of(&self, job_ids: &[i64]) -> StoreResult<HashMap<i64, RunRecord>> {
        reads::latest_runs_of(&self.pool, job_ids).await
    }

    async fn job_handlers(&self) -> StoreResult<Vec<String>> {
        reads::job_handlers(&self.pool).await
    }

    async fn count_needing_attention(&self) -> StoreResult<u64> {
        reads::count_needing_attention(&self.pool).await
    }

    fn session_rows(&self) -> SessionRows {
        SessionRows::Postgres(tower_sessions_sqlx_store::PostgresStore::new(
            self.pool.clone(),
        ))
    }

    // users

    async fn create_user(&self, user: &NewUser, now: DateTime<Utc>) -> StoreResult<User> {
        users::create_user(&self.pool, user, now).await
    }

    async fn user_by_name(&self, name: &str) -> StoreResult<Option<User>> {
        users::user_by_name(&self.pool, name).await
    }

    async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>> {
        users::user_by_id(&self.pool, id).await
    }

    async fn users(&self) -> StoreResult<Vec<User>> {
        users::users(&self.pool).await
    }

    async fn update_user(
        &self,
        id: i64,
        update: &UserUpdate,
        now: DateTime<Utc>,
    ) -> StoreResult<User> {
        users::update_user(&self.pool, id, update, now).await
    }

    async fn count_users(&self) -> StoreResult<u64> {
        users::count_users(&self.pool).await
    }

    // signed-in sessions

    async fn index_session(
        &self,
        session_id: &str,
        user_id: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        sessions::index_session(&self.pool, session_id, user_id, now).await
    }

    async fn end_sessions_of_user(&self, user_id: i64, keep: Option<&str>) -> StoreResult<u64> {
        sessions::end_sessions_of_user(&self.pool, user_id, keep).await
    }

    async fn prune_session_index(&self) -> StoreResult<u64> {
        sessions::prune_session_index(&self.pool).await
    }

    async fn delete_unindexed_sessions(&self) -> StoreResult<u64> {
        sessions::delete_unindexed_sessions(&self.pool).await
    }

    // health and metrics

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn pool_stats(&self) -> Option<(u32, usize)> {
        Some((self.pool.size(), self.pool.num_idle()))
    }

    // api tokens

    async fn create_token(&self, token: &NewApiToken, now: DateTime<Utc>) -> StoreResult<ApiToken> {
        tokens::create_token(&self.pool, token, now).await
    }

    async fn tokens_of_user(&self, user_id: i64) -> StoreResult<Vec<ApiToken>> {
        tokens::tokens_of_user(&self.pool, user_id).await
    }

    async fn token_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiToken>> {
        tokens::token_by_hash(&self.pool, token_hash).await
    }

    async fn revoke_token(
        &self,
        user_id: i64,
        token: TokenRef<'_>,
        now: DateTime<Utc>,
    ) -> StoreResult<ApiToken> {
        tokens::revoke_token(&self.pool, user_id, token, now).await
    }

    async fn touch_token(&self, id: i64, now: DateTime<Utc>) -> StoreResult<()> {
        tokens::touch_token(&self.pool, id, now).await
    }

    async fn revoke_tokens_of_user(&self, user_id: i64, now: DateTime<Utc>) -> StoreResult<u64> {
        tokens::revoke_tokens_of_user(&self.pool, user_id, now).await
    }

    // server keys

    async fn database_now(&self) -> StoreResult<Option<DateTime<Utc>>> {
        Ok(Some(instances::now(&self.pool).await?))
    }

    async fn register_instance(
        &self,
        instance: &NewInstance,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        instances::register(&self.pool, instance, now).await
    }

    async fn heartbeat_instance(&self, id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        instances::heartbeat(&self.pool, id, now).await
    }

    async fn stop_instance(&self, id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        instances::stop(&self.pool, id, now).await
    }

    async fn stop_other_instances(
        &self,
        kind: InstanceKind,
        except: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        instances::stop_others(&self.pool, kind, except, now).await
    }

    async fn instances(&self, since: DateTime<Utc>) -> StoreResult<Vec<InstanceRecord>> {
        instances::list(&self.pool, since).await
    }

    async fn follow_announcements(
        &self,
        heard: tokio::sync::mpsc::UnboundedSender<Announcement>,
    ) -> StoreResult<Option<tokio::task::JoinHandle<()>>> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await?;
        listener
            .listen_all([JOB_CHANGES_CHANNEL, CANCELS_CHANNEL, RUNS_QUEUED_CHANNEL])
            .await?;
        Ok(Some(tokio::spawn(async move {
            loop {
                let announcement = match listener.try_recv().await {
                    Ok(Some(notification)) => {
                        match read_announcement(notification.channel(), notification.payload()) {
                            Some(announcement) => announcement,
                            None => continue,
                        }
                    }
                    // The connection was lost (and is opened again at the next call):
                    // whatever was announced meanwhile is gone.
                    Ok(None) => Announcement::MaybeMissed,
                    Err(error) => {
                        tracing::warn!(%error, "lost the announcements; listening again");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        Announcement::MaybeMissed
                    }
                };
                if heard.send(announcement).is_err() {
                    return; // nobody follows any more
                }
            }
        })))
    }

    async fn announce_cancel(&self, run_id: i64, by: Option<&str>) -> StoreResult<bool> {
        let payload = match by {
            Some(by) => format!("{run_id} {by}"),
            None => run_id.to_string(),
        };
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CANCELS_CHANNEL)
            .bind(payload)
            .execute(&self.pool)
            .await?;
        Ok(true)
    }

    async fn claim_leadership(
        &self,
        name: &str,
        candidate: &str,
        ttl: chrono::Duration,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<LeaderTerm>> {
        instances::claim_leadership(&self.pool, name, candidate, ttl, now).await
    }

    async fn resign_leadership(
        &self,
        name: &str,
        holder: &str,
        elected_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        instances::resign_leadership(&self.pool, name, holder, elected_at).await
    }

    async fn leadership(&self, name: &str) -> StoreResult<Option<LeaderTerm>> {
        instances::leadership(&self.pool, name).await
    }

    async fn server_key(
        &self,
        purpose: &str,
        fresh: &[u8; 32],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<u8>> {
        sqlx::query(
            "INSERT INTO server_keys (purpose, secret, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (purpose) DO NOTHING",
        )
        .bind(purpose)
        .bind(fresh.as_slice())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT secret FROM server_keys WHERE purpose = $1")
                .bind(purpose)
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

/// An announcement from its channel and payload; `None` for one this version does not
/// know.
fn read_announcement(channel: &str, payload: &str) -> Option<Announcement> {
    match channel {
        JOB_CHANGES_CHANNEL => Some(Announcement::JobChanged(payload.to_owned())),
        RUNS_QUEUED_CHANNEL => Some(Announcement::RunsQueued),
        CANCELS_CHANNEL => {
            let (run_id, by) = match payload.split_once(' ') {
                Some((run_id, by)) => (run_id, Some(by.to_owned())),
                None => (payload, None),
            };
            Some(Announcement::CancelRun {
                run_id: run_id.parse().ok()?,
                by,
            })
        }
        _ => None,
    }
}
