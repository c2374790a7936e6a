//! Persistence: one [`Store`] trait with a SQLite and a PostgreSQL implementation, and
//! the group-commit [`writer`] through which the scheduler's writes are batched.
//!
//! Each backend writes its own SQL (PostgreSQL's arrays and `UNNEST` make its batches
//! one statement each; SQLite has neither) and has its own migrations under
//! `migrations/`. What does not depend on the database is written once: turning rows
//! into the model (`rows`), and deciding what a sync of the settings file writes
//! (`sync`).

mod actions;
mod alerts;
mod batch_order;
mod batch_plan;
mod instance;
mod job_state;
mod maintenance;
mod model;
pub mod postgres;
mod reads;
mod rows;
mod session_rows;
pub mod sqlite;
mod sync;
mod tokens;
mod transient;
mod upstream;
mod user;
pub mod writer;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::job::JobSettings;
pub use actions::ActionStore;
pub use alerts::{
    AlertStore, DeliveryRecord, DeliveryStatus, NewDelivery, StalledDelivery, Trouble,
};
pub use instance::{InstanceKind, InstanceRecord, LeaderTerm, NewInstance};
pub use job_state::{JobRuns, JobState};
pub use maintenance::{Maintenance, MaintenanceStore};
pub use model::*;
pub use reads::*;
pub use session_rows::SessionRows;
pub use tokens::*;
pub use user::*;

/// What can go wrong in the store. Callers show the user [`StoreError::Conflict`] and
/// [`StoreError::NotFound`]; the rest is logged and shown as an internal error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the record was changed by someone else; reload and try again")]
    Conflict,
    #[error("no such record")]
    NotFound,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data could not be read: {0}")]
    Decode(String),
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The PostgreSQL channel on which a job's edit, pause or resume is announced, with the
/// job's name as payload.
pub const JOB_CHANGES_CHANNEL: &str = "batchboard_job_changes";

/// The PostgreSQL channel on which a request to cancel a run is announced to the
/// instance that runs it: `<run id>` or `<run id> <who asked>`.
pub const CANCELS_CHANNEL: &str = "batchboard_cancels";

/// The PostgreSQL channel on which the leader says that it queued scheduled fires for
/// any instance to claim; no payload.
pub const RUNS_QUEUED_CHANNEL: &str = "batchboard_runs_queued";

/// What one instance hears from the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announcement {
    /// A job was edited, paused or resumed: reload it.
    JobChanged(String),
    /// Someone asked to cancel a run, which may be going here.
    CancelRun { run_id: i64, by: Option<String> },
    /// Runs were queued for any instance to claim.
    RunsQueued,
    /// The connection was lost: what was announced meanwhile is gone.
    MaybeMissed,
}

/// A shared store handle.
pub type SharedStore = Arc<dyn Store>;

/// Everything Batchboard keeps. Implemented for SQLite ([`sqlite::SqliteStore`]) and
/// PostgreSQL ([`postgres::PgStore`]).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `"sqlite"` or `"postgres"`.
    fn backend(&self) -> &'static str;

    /// How many write batches may be committed at once: the writer then starts runs on
    /// one transaction and ends them on another (see [`writer`]). SQLite takes one
    /// writer at a time, so a second lane would only wait for the lock.
    fn write_lanes(&self) -> usize {
        1
    }

    /// The alerts' deliveries and troubles.
    fn alerts(&self) -> &dyn AlertStore;

    /// Whether an admin holds every job paused.
    fn maintenance(&self) -> &dyn MaintenanceStore;

    /// Actions on runs, in the history.
    fn actions(&self) -> &dyn ActionStore;

    /// Applies the embedded migrations.
    async fn migrate(&self) -> StoreResult<()>;

    /// Makes the stored jobs match the settings file: inserts new jobs, replaces the file
    /// defaults of known ones (keeping operator overrides, pause state and history, and
    /// bumping `version` when the defaults changed), clears `removed_at` of jobs that are
    /// back, and sets `removed_at = now` (and `next_run_at = NULL`) on jobs no longer in
    /// `jobs`. Returns every job, removed ones included, ordered by name.
    async fn sync_jobs(
        &self,
        jobs: &[JobSettings],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<JobRecord>>;

    /// Every job, removed ones included, ordered by name.
    async fn jobs(&self) -> StoreResult<Vec<JobRecord>>;

    /// One job by name.
    async fn job_by_name(&self, name: &str) -> StoreResult<Option<JobRecord>>;

    /// Sets `next_run_at` without a compare-and-swap (start-up, resume, schedule edits),
    /// and returns whether the job exists.
    async fn set_next_run(&self, job_id: i64, next: Option<DateTime<Utc>>) -> StoreResult<bool>;

    /// Applies `batch` in one transaction; see [`WriteBatch`] for the order.
    async fn write_batch(&self, batch: &WriteBatch) -> StoreResult<BatchResult>;

    /// Claims for `instance_id` runs queued for any instance, earliest first: up to
    /// `claim.due` of those whose start has come (`claim.now`), and up to `claim.ahead`
    /// of those starting by `claim.ahead_until`. They become `running` on that instance.
    /// Instances claiming at once get disjoint runs.
    async fn claim_queued(
        &self,
        instance_id: &str,
        claim: &QueuedClaim,
    ) -> StoreResult<Vec<RunRecord>>;

    /// Gives runs that `instance_id` claimed but will not start (it is stopping) back to
    /// the queue, for any instance to claim; returns how many it gave back (a run
    /// cancelled since the claim stays cancelled).
    async fn release_claimed(&self, instance_id: &str, run_ids: &[i64]) -> StoreResult<u64>;

    /// Cancels run `run_id` if it is still queued for any instance (no one claimed it);
    /// `message` is its error message. False when it was claimed or is not queued.
    async fn cancel_unclaimed(
        &self,
        run_id: i64,
        message: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Runs not yet ended (`queued` or `running`), oldest first.
    async fn running_runs(&self) -> StoreResult<Vec<RunRecord>>;

    /// Runs with a retry due (`retry_at IS NOT NULL`), by due time.
    async fn pending_retries(&self) -> StoreResult<Vec<RunRecord>>;

    /// One run.
    async fn run(&self, id: i64) -> StoreResult<Option<RunRecord>>;

    /// Runs matching `filter`, newest (highest id) first.
    async fn runs(&self, filter: &RunFilter) -> StoreResult<Vec<RunRecord>>;

    /// The `limit` newest runs of `job_id` as its duration chart draws them, newest
    /// first.
    async fn run_bars(&self, job_id: i64, limit: u32) -> StoreResult<Vec<RunBar>>;

    /// When every job of `upstream` has, as its newest run (skipped fires aside), a
    /// success that ended after `job_id`'s newest run started: the latest of those ends,
    /// the key of the run by dependency they make due. `None` otherwise, and while a run
    /// of `job_id` waits to start (it will work on what they made).
    async fn upstream_succeeded(
        &self,
        job_id: i64,
        upstream: &[i64],
    ) -> StoreResult<Option<DateTime<Utc>>>;

    /// The latest run of each job that has one, keyed by job id.
    async fn latest_runs(&self) -> StoreResult<std::collections::HashMap<i64, RunRecord>>;

    /// A run's log lines with `id > after`, oldest first, at most `limit`; each with its id.
    async fn run_logs(
        &self,
        run_id: i64,
        after: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<(i64, LogLine)>>;

    /// Deletes at most `batch_size` finished runs (and their log lines) that are older
    /// than `older_than` (by `started_at`) or beyond the newest `keep_per_job` of their
    /// job. Call it repeatedly until it reports nothing deleted: small batches keep each
    /// transaction short so the scheduler's writes are never held up for long. On
    /// PostgreSQL the log lines of whole days before `older_than` go first, their day
    /// partitions dropped (and counted).
    async fn prune_runs(
        &self,
        older_than: Option<DateTime<Utc>>,
        keep_per_job: Option<u32>,
        batch_size: u32,
    ) -> StoreResult<PruneReport>;

    /// Prepares storage for the coming days: on PostgreSQL, the log partitions of the
    /// next week (see migration 0014); nothing on SQLite. Start-up does it, and every
    /// instance again every hour.
    async fn prepare_storage(&self, now: DateTime<Utc>) -> StoreResult<()>;

    // Console reads (pages): aggregates whose cost does not grow with the number of jobs
    // shown, so the dashboard is a constant number of queries.

    /// How many runs started at or after `since`, by status (statuses without runs are
    /// absent).
    async fn status_counts_since(
        &self,
        since: DateTime<Utc>,
    ) -> StoreResult<std::collections::HashMap<RunStatus, u64>>;

    /// The runs of the jobs `job_ids` that started at or after `since`, counted by job,
    /// by `width`-long bucket (see [`OutcomeBucket::bucket`]) and by status.
    async fn outcome_buckets(
        &self,
        job_ids: &[i64],
        since: DateTime<Utc>,
        width: chrono::Duration,
    ) -> StoreResult<Vec<OutcomeBucket>>;

    /// Every attempt of the retry chain whose first attempt is run `first_run_id`, that
    /// run included (when it still exists), oldest first.
    async fn run_chain(&self, first_run_id: i64) -> StoreResult<Vec<RunRecord>>;
    // job edits

    /// Saves an operator's edit if the job's `version` is still `expected_version`: its
    /// overrides, paused state and next fire, a version bump, and its `changes` in
    /// `job_changes` at `now`, all in one transaction. Returns the job as saved.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] (and nothing written) when the version moved on;
    /// [`StoreError::NotFound`] when there is no such job; any other error leaves the job
    /// and its history as they were.
    async fn update_job_overrides(
        &self,
        job_id: i64,
        expected_version: i64,
        edit: &JobEdit,
        now: DateTime<Utc>,
    ) -> StoreResult<JobRecord>;

    /// Pauses or resumes a job, setting `next_run_at` and bumping `version`, and when
    /// `paused` differs from the stored state, records a `paused` change by `actor` at
    /// `now`: all in one transaction.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when there is no such job.
    async fn set_paused_by(
        &self,
        job_id: i64,
        paused: bool,
        next: Option<DateTime<Utc>>,
        actor: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<JobRecord>;

    /// Recorded changes matching `filter`, newest (highest id) first.
    async fn job_changes(&self, filter: &ChangeFilter) -> StoreResult<Vec<JobChangeRecord>>;

    // Dashboard page reads: a page of jobs costs the same with ten jobs or ten thousand.

    /// The jobs matching `query`, removed ones included, ordered by name.
    async fn jobs_matching(&self, query: &JobQuery) -> StoreResult<Vec<JobRecord>>;

    /// The latest run of each of `job_ids` that has one, keyed by job id.
    async fn latest_runs_of(
        &self,
        job_ids: &[i64],
    ) -> StoreResult<std::collections::HashMap<i64, RunRecord>>;

    /// The handlers jobs use, sorted, each once.
    async fn job_handlers(&self) -> StoreResult<Vec<String>>;

    /// How many jobs still in the settings have a `dead` latest run (need attention).
    async fn count_needing_attention(&self) -> StoreResult<u64>;

    /// The session layer's store in this database, sharing this store's pool. The
    /// session index queries below delete from its table.
    fn session_rows(&self) -> SessionRows;

    // users

    /// Creates a user. A taken name is [`StoreError::Conflict`].
    async fn create_user(&self, user: &NewUser, now: DateTime<Utc>) -> StoreResult<User>;

    /// One user by sign-in name.
    async fn user_by_name(&self, name: &str) -> StoreResult<Option<User>>;

    /// One user by id.
    async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>>;

    /// Every user, ordered by name.
    async fn users(&self) -> StoreResult<Vec<User>>;

    /// Applies `update` to user `id`; [`StoreError::NotFound`] when there is none.
    async fn update_user(
        &self,
        id: i64,
        update: &UserUpdate,
        now: DateTime<Utc>,
    ) -> StoreResult<User>;

    /// How many users exist, disabled ones included.
    async fn count_users(&self) -> StoreResult<u64>;

    // signed-in sessions (the session layer's table, indexed by user)

    /// Notes that session `session_id` was signed in as user `user_id` at `now`.
    async fn index_session(
        &self,
        session_id: &str,
        user_id: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Deletes every session of user `user_id` but `keep` (the acting user's own), and
    /// returns how many there were.
    ///
    /// # Errors
    /// Also when the session layer has not created its table yet.
    async fn end_sessions_of_user(&self, user_id: i64, keep: Option<&str>) -> StoreResult<u64>;

    /// Forgets index rows whose session is gone (signed out, expired); returns how many.
    ///
    /// # Errors
    /// Also when the session layer has not created its table yet.
    async fn prune_session_index(&self) -> StoreResult<u64>;

    /// Deletes every session the index does not name (sessions from before the index
    /// existed, anonymous ones); returns how many. Only safe while no request runs: a
    /// sign-in saves its session just before indexing it.
    ///
    /// # Errors
    /// Also when the session layer has not created its table yet.
    async fn delete_unindexed_sessions(&self) -> StoreResult<u64>;

    // health and metrics

    /// A trivial query, for the readiness check: `Ok` when the database answers.
    async fn ping(&self) -> StoreResult<()>;

    /// The connection pool's size and how many of its connections are idle, for the
    /// metrics; `None` when the backend has no pool to report.
    fn pool_stats(&self) -> Option<(u32, usize)>;

    // api tokens

    /// Stores a token created at `now`. A name taken by another live token of the same
    /// user is [`StoreError::Conflict`].
    async fn create_token(&self, token: &NewApiToken, now: DateTime<Utc>) -> StoreResult<ApiToken>;

    /// A user's live (not revoked) tokens, expired ones included, ordered by name.
    async fn tokens_of_user(&self, user_id: i64) -> StoreResult<Vec<ApiToken>>;

    /// The token whose hash is `token_hash`, revoked or not.
    async fn token_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiToken>>;

    /// Revokes one live token of user `user_id` at `now` and returns it.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the user has no such live token.
    async fn revoke_token(
        &self,
        user_id: i64,
        token: TokenRef<'_>,
        now: DateTime<Utc>,
    ) -> StoreResult<ApiToken>;

    /// Records a use of token `id` at `now` (never moving it backwards). Callers skip
    /// it while [`ApiToken::needs_touch`] is false, so it costs a write a minute at most.
    async fn touch_token(&self, id: i64, now: DateTime<Utc>) -> StoreResult<()>;

    /// Revokes every live token of user `user_id` at `now`; returns how many.
    async fn revoke_tokens_of_user(&self, user_id: i64, now: DateTime<Utc>) -> StoreResult<u64>;

    // instances: the processes sharing the database

    /// The database's current time, the clock every instance's liveness is judged by;
    /// `None` for a database with no clock of its own (SQLite, which only this machine
    /// uses): the caller's clock is the one.
    async fn database_now(&self) -> StoreResult<Option<DateTime<Utc>>>;

    /// Registers a process, alive from `now`.
    async fn register_instance(
        &self,
        instance: &NewInstance,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Renews `id`'s heartbeat at `now`; false when it is unknown or marked stopped (by
    /// itself, or by a process that proved it gone).
    async fn heartbeat_instance(&self, id: &str, now: DateTime<Utc>) -> StoreResult<bool>;

    /// Marks `id` stopped at `now`.
    async fn stop_instance(&self, id: &str, now: DateTime<Utc>) -> StoreResult<()>;

    /// Marks every instance of `kind` but `except` stopped at `now`, and returns how
    /// many were not yet: for a process that holds proof that they are gone (on SQLite,
    /// the lock only one `serve` can hold).
    async fn stop_other_instances(
        &self,
        kind: InstanceKind,
        except: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<u64>;

    /// Instances not stopped, and those stopped since `since`, newest first, each with
    /// its count of runs going.
    async fn instances(&self, since: DateTime<Utc>) -> StoreResult<Vec<InstanceRecord>>;

    /// Starts following what other instances announce (job changes, cancel requests),
    /// sending each to `heard`. `Ok(None)` for a backend with no announcements (SQLite:
    /// one server per file).
    async fn follow_announcements(
        &self,
        heard: tokio::sync::mpsc::UnboundedSender<Announcement>,
    ) -> StoreResult<Option<tokio::task::JoinHandle<()>>> {
        drop(heard);
        Ok(None)
    }

    /// Asks whichever instance runs run `run_id` to cancel it; false for a backend with
    /// no announcements.
    async fn announce_cancel(&self, run_id: i64, by: Option<&str>) -> StoreResult<bool> {
        let _ = (run_id, by);
        Ok(false)
    }

    // leadership leases

    /// Asks for the lease `name` for `candidate` at `now` (the database's time), for
    /// `ttl`: renews it when `candidate` holds a live term, takes it (a new term) when it
    /// is free or expired, and otherwise leaves it. Returns the term in force afterwards,
    /// whoever holds it; `None` only if nobody does.
    async fn claim_leadership(
        &self,
        name: &str,
        candidate: &str,
        ttl: chrono::Duration,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<LeaderTerm>>;

    /// Gives up the term of `holder` elected at `elected_at`, if it is still the one in
    /// force, so that another candidate need not wait for it to expire.
    async fn resign_leadership(
        &self,
        name: &str,
        holder: &str,
        elected_at: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// The term of lease `name` as stored, expired or not.
    async fn leadership(&self, name: &str) -> StoreResult<Option<LeaderTerm>>;

    // server keys

    /// The key kept for `purpose`: the stored one, or `fresh` (stored at `now`) when there
    /// is none yet. Two processes racing here both end up with whichever was stored first.
    async fn server_key(
        &self,
        purpose: &str,
        fresh: &[u8; 32],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<u8>>;
}

/// Opens the store at `url` (`sqlite://path` or `postgres://…`) without connecting:
/// the first query (usually [`Store::migrate`]) opens the database. So settings can be
/// checked against the handler registry before anything on disk is touched.
///
/// # Errors
/// When the URL's scheme is unknown or the URL is malformed.
pub fn open(url: &str) -> StoreResult<SharedStore> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(url)?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgStore::open(url)?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_owned()))
    }
}

/// Opens the store at `url` and migrates it.
///
/// # Errors
/// When the URL's scheme is unknown, the database cannot be opened, or migrations fail.
pub async fn connect(url: &str) -> StoreResult<SharedStore> {
    let store = open(url)?;
    store.migrate().await?;
    Ok(store)
}
