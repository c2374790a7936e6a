//! The maintenance row in SQLite (see [`crate::store::MaintenanceStore`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::SqliteStore;
use super::rows::micros;
use crate::store::rows::{StoredJson as _, StoredTime as _, to_json};
use crate::store::{Maintenance, MaintenanceStore, StoreResult};

type Row = (String, String, i64, String);

fn decode((reason, started_by, started_at, paused_jobs): Row) -> StoreResult<Maintenance> {
    Ok(Maintenance {
        reason,
        started_by,
        started_at: started_at.instant()?,
        paused_jobs: paused_jobs.decode("maintenance.paused_jobs")?,
    })
}

#[async_trait]
impl MaintenanceStore for SqliteStore {
    async fn maintenance(&self) -> StoreResult<Option<Maintenance>> {
        let row: Option<Row> = sqlx::query_as(
            "SELECT reason, started_by, started_at, paused_jobs FROM maintenance WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(decode).transpose()
    }

    async fn begin_maintenance(
        &self,
        reason: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let begun = sqlx::query(
            "INSERT INTO maintenance (id, reason, started_by, started_at) VALUES (1, $1, $2, $3) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(reason)
        .bind(by)
        .bind(micros(now))
        .execute(&self.pool)
        .await?;
        Ok(begun.rows_affected() > 0)
    }

    async fn set_maintenance_jobs(&self, jobs: &[String]) -> StoreResult<()> {
        sqlx::query("UPDATE maintenance SET paused_jobs = $1 WHERE id = 1")
            .bind(to_json("maintenance.paused_jobs", &jobs)?)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn end_maintenance(&self) -> StoreResult<Option<Maintenance>> {
        let row: Option<Row> = sqlx::query_as(
            "DELETE FROM maintenance WHERE id = 1 \
             RETURNING reason, started_by, started_at, paused_jobs",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(decode).transpose()
    }
}
