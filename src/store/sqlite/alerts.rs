//! The alerts' tables in SQLite (see [`crate::store::AlertStore`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::SqliteStore;
use super::rows::micros;
use crate::store::alerts::{DELIVERY_COLUMNS, DeliveryRow, StalledRow};
use crate::store::rows::{StoredTime as _, parse};
use crate::store::{
    AlertStore, DeliveryRecord, DeliveryStatus, NewDelivery, StalledDelivery, StoreResult, Trouble,
};

#[async_trait]
impl AlertStore for SqliteStore {
    async fn record_delivery(&self, delivery: &NewDelivery) -> StoreResult<i64> {
        let id = sqlx::query_scalar(
            "INSERT INTO alert_deliveries \
             (created_at, event, target, job, run_id, status, payload, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 'pending', $6, $1) RETURNING id",
        )
        .bind(micros(delivery.created_at))
        .bind(&delivery.event)
        .bind(&delivery.target)
        .bind(&delivery.job)
        .bind(delivery.run_id)
        .bind(&delivery.payload)
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    async fn update_delivery(
        &self,
        id: i64,
        status: DeliveryStatus,
        attempts: u32,
        last_error: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE alert_deliveries SET status = $2, attempts = $3, last_error = $4, \
             updated_at = $5 WHERE id = $1",
        )
        .bind(id)
        .bind(status.as_str())
        .bind(i64::from(attempts))
        .bind(last_error)
        .bind(micros(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn adopt_stalled_deliveries(
        &self,
        stalled_before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<StalledDelivery>> {
        // One writer at a time: the rows picked are still stalled when they are touched.
        let rows: Vec<StalledRow> = sqlx::query_as(
            "UPDATE alert_deliveries SET updated_at = $2 \
             WHERE id IN (SELECT id FROM alert_deliveries \
                          WHERE status = 'pending' AND updated_at < $1 ORDER BY id LIMIT $3) \
             RETURNING id, target, event, attempts, payload",
        )
        .bind(micros(stalled_before))
        .bind(micros(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut adopted: Vec<StalledDelivery> = rows.into_iter().map(Into::into).collect();
        adopted.sort_by_key(|delivery| delivery.id);
        Ok(adopted)
    }

    async fn deliveries(
        &self,
        before_id: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM alert_deliveries \
             WHERE $1 IS NULL OR id < $1 ORDER BY id DESC LIMIT $2"
        );
        let rows: Vec<DeliveryRow<i64>> = sqlx::query_as(&sql)
            .bind(before_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(DeliveryRecord::try_from).collect()
    }

    async fn open_trouble(
        &self,
        job: &str,
        trouble: Trouble,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let opened = sqlx::query(
            "INSERT INTO alert_troubles (job, kind, since) VALUES ($1, $2, $3) \
             ON CONFLICT (job, kind) DO NOTHING",
        )
        .bind(job)
        .bind(trouble.as_str())
        .bind(micros(now))
        .execute(&self.pool)
        .await?;
        Ok(opened.rows_affected() > 0)
    }

    async fn prune_deliveries(&self, before: DateTime<Utc>, limit: u32) -> StoreResult<u64> {
        let deleted = sqlx::query(
            "DELETE FROM alert_deliveries WHERE id IN (SELECT id FROM alert_deliveries \
             WHERE created_at < $1 ORDER BY id LIMIT $2)",
        )
        .bind(micros(before))
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await?;
        Ok(deleted.rows_affected())
    }

    async fn close_troubles(&self, job: &str) -> StoreResult<bool> {
        let closed = sqlx::query("DELETE FROM alert_troubles WHERE job = $1")
            .bind(job)
            .execute(&self.pool)
            .await?;
        Ok(closed.rows_affected() > 0)
    }

    async fn jobs_in_trouble(&self) -> StoreResult<Vec<(String, Trouble)>> {
        let rows: Vec<(String, String)> = sqlx::query_as("SELECT job, kind FROM alert_troubles")
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|(job, kind)| Ok((job, parse("alert_troubles.kind", &kind)?)))
            .collect()
    }

    async fn success_baselines(
        &self,
        jobs: &[String],
    ) -> StoreResult<Vec<(String, DateTime<Utc>)>> {
        let mut baselines = Vec::with_capacity(jobs.len());
        for job in jobs {
            // The newest success by id walks `runs_by_job` back from the newest run.
            let found: Option<(i64, Option<i64>)> = sqlx::query_as(
                "SELECT jobs.created_at, \
                   (SELECT runs.finished_at FROM runs WHERE runs.job_id = jobs.id \
                      AND runs.status = 'succeeded' ORDER BY runs.id DESC LIMIT 1) \
                 FROM jobs WHERE jobs.name = $1",
            )
            .bind(job)
            .fetch_optional(&self.pool)
            .await?;
            if let Some((created_at, succeeded_at)) = found {
                baselines.push((job.clone(), succeeded_at.unwrap_or(created_at).instant()?));
            }
        }
        Ok(baselines)
    }
}
