//! What the alerts remember: each delivery (for the alerts page and to show that it was
//! sent), and which jobs are in trouble (dead or late), so that one `late` and one
//! `recovered` go out per episode, across restarts and instances.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::model::text_enum;
use super::{StoreError, StoreResult};
use crate::store::rows::{StoredTime, parse};

/// A delivery as first recorded, before its first attempt.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub event: String,
    pub target: String,
    pub job: Option<String>,
    pub run_id: Option<i64>,
    /// The JSON sent; it holds no secret (error messages are masked before they are
    /// stored, and the target's URL and headers are not in it).
    pub payload: String,
    pub created_at: DateTime<Utc>,
}

/// A delivery left pending by a sender that stopped, taken over to go on with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StalledDelivery {
    pub id: i64,
    pub target: String,
    pub event: String,
    /// Attempts made so far.
    pub attempts: u32,
    pub payload: String,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Not delivered yet; attempts go on.
    Pending,
    Delivered,
    /// Every attempt failed.
    Failed,
}

text_enum!(DeliveryStatus {
    Pending => "pending",
    Delivered => "delivered",
    Failed => "failed",
});

/// A delivery as the alerts page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub event: String,
    pub target: String,
    pub job: Option<String>,
    pub run_id: Option<i64>,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// Why a job is in trouble; it recovers from all at its next success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trouble {
    /// A run of it died.
    Dead,
    /// It had no success within its `expect_success_within`.
    Late,
}

text_enum!(Trouble {
    Dead => "dead",
    Late => "late",
});

/// The alerts' tables; both stores implement it, reached through
/// [`Store::alerts`](super::Store::alerts).
#[async_trait]
pub trait AlertStore: Send + Sync {
    /// Records a delivery as pending; returns its id.
    async fn record_delivery(&self, delivery: &NewDelivery) -> StoreResult<i64>;

    /// Records an attempt's outcome.
    async fn update_delivery(
        &self,
        id: i64,
        status: DeliveryStatus,
        attempts: u32,
        last_error: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Takes over up to `limit` pending deliveries untouched since before
    /// `stalled_before` (their sender stopped), oldest first, marking them touched at
    /// `now`: of instances asking at once, each delivery goes to one.
    async fn adopt_stalled_deliveries(
        &self,
        stalled_before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<StalledDelivery>>;

    /// Deliveries newest first, before `before_id` when given.
    async fn deliveries(
        &self,
        before_id: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryRecord>>;

    /// Marks `job` in `trouble` since `now`; `false` when it already was (another
    /// instance, or an earlier process, sent that alert).
    async fn open_trouble(
        &self,
        job: &str,
        trouble: Trouble,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Deletes up to `limit` deliveries recorded before `before`, oldest first; returns
    /// how many (`prune_history` calls it until none is left).
    async fn prune_deliveries(&self, before: DateTime<Utc>, limit: u32) -> StoreResult<u64>;

    /// Ends every trouble of `job`; `true` when there was one (its `recovered` is due).
    async fn close_troubles(&self, job: &str) -> StoreResult<bool>;

    /// The jobs in trouble, by name, with why (a job may be both dead and late).
    async fn jobs_in_trouble(&self) -> StoreResult<Vec<(String, Trouble)>>;

    /// For each of `jobs` that exists: the end of its newest successful run, or when it
    /// was first declared if it never succeeded, the instant a dead man's switch counts
    /// from.
    async fn success_baselines(&self, jobs: &[String])
    -> StoreResult<Vec<(String, DateTime<Utc>)>>;
}

/// A delivery row; `T` is how the backend stores an instant.
#[derive(sqlx::FromRow)]
pub(crate) struct DeliveryRow<T> {
    id: i64,
    created_at: T,
    event: String,
    target: String,
    job: Option<String>,
    run_id: Option<i64>,
    status: String,
    attempts: i64,
    last_error: Option<String>,
    updated_at: T,
}

pub(crate) const DELIVERY_COLUMNS: &str = "id, created_at, event, target, job, run_id, status, \
     attempts, last_error, updated_at";

impl<T: StoredTime> TryFrom<DeliveryRow<T>> for DeliveryRecord {
    type Error = StoreError;

    fn try_from(row: DeliveryRow<T>) -> StoreResult<Self> {
        Ok(DeliveryRecord {
            id: row.id,
            created_at: row.created_at.instant()?,
            event: row.event,
            target: row.target,
            job: row.job,
            run_id: row.run_id,
            status: parse("alert_deliveries.status", &row.status)?,
            attempts: u32::try_from(row.attempts)
                .map_err(|_| StoreError::Decode(format!("attempts {}", row.attempts)))?,
            last_error: row.last_error,
            updated_at: row.updated_at.instant()?,
        })
    }
}

/// A taken-over delivery as read back; `attempts` as the database hands it out.
#[derive(sqlx::FromRow)]
pub(crate) struct StalledRow {
    id: i64,
    target: String,
    event: String,
    attempts: i64,
    payload: String,
}

impl From<StalledRow> for StalledDelivery {
    fn from(row: StalledRow) -> Self {
        Self {
            id: row.id,
            target: row.target,
            event: row.event,
            attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
            payload: row.payload,
        }
    }
}
