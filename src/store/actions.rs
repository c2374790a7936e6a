//! Actions on runs recorded in the history beside the changes of settings: a bulk retry
//! or cancel from the runs view is a row per job, naming the runs it touched.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;

/// The history of actions; both stores implement it, reached through
/// [`Store::actions`](super::Store::actions).
#[async_trait]
pub trait ActionStore: Send + Sync {
    /// Records that `actor` did `action` (the history's field, e.g. `bulk_retry`) to job
    /// `job_id`, with `details` as the new value.
    async fn record_action(
        &self,
        job_id: i64,
        actor: &str,
        action: &str,
        details: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
}
