//! Maintenance as stored: whether an admin holds every job paused, why, and which jobs
//! that pause took (so that ending it resumes those and no others).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;

/// A maintenance under way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maintenance {
    pub reason: String,
    pub started_by: String,
    pub started_at: DateTime<Utc>,
    /// The jobs it paused; jobs paused before it began are not among them.
    pub paused_jobs: Vec<String>,
}

/// The maintenance row; both stores implement it, reached through
/// [`Store::maintenance`](super::Store::maintenance).
#[async_trait]
pub trait MaintenanceStore: Send + Sync {
    /// The maintenance under way, if any.
    async fn maintenance(&self) -> StoreResult<Option<Maintenance>>;

    /// Begins a maintenance with no job paused yet; `false` when one is already under
    /// way (and nothing changed).
    async fn begin_maintenance(
        &self,
        reason: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Records the jobs the maintenance under way paused.
    async fn set_maintenance_jobs(&self, jobs: &[String]) -> StoreResult<()>;

    /// Ends the maintenance under way and returns it; `None` when there was none.
    async fn end_maintenance(&self) -> StoreResult<Option<Maintenance>>;
}
