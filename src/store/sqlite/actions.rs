//! Actions in the history, in SQLite (see [`crate::store::ActionStore`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::SqliteStore;
use super::rows::micros;
use crate::store::{ActionStore, StoreResult};

#[async_trait]
impl ActionStore for SqliteStore {
    async fn record_action(
        &self,
        job_id: i64,
        actor: &str,
        action: &str,
        details: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO job_changes (job_id, actor, field, old_value, new_value, changed_at) \
             VALUES ($1, $2, $3, NULL, $4, $5)",
        )
        .bind(job_id)
        .bind(actor)
        .bind(action)
        .bind(details.to_string())
        .bind(micros(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
