//! The day partitions of `run_logs` on PostgreSQL (see migration 0014): created a week
//! ahead, and dropped whole by retention.
//!
//! Every instance makes sure of the coming days at start-up and every hour; a
//! transaction-level advisory lock (which a transaction-mode pooler carries) keeps two
//! of them from creating the same day at once.

use chrono::{DateTime, Days, NaiveDate, NaiveTime, Utc};
use sqlx::{PgConnection, PgPool};

use crate::store::StoreResult;

/// Days created ahead of today.
const DAYS_AHEAD: u64 = 7;

/// The advisory lock key under which partitions are created and dropped.
const PARTITIONS_LOCK: i64 = 0x6262_6c6f_6773; // "bblogs"

const PREFIX: &str = "run_logs_p";

fn partition_name(day: NaiveDate) -> String {
    format!("{PREFIX}{}", day.format("%Y%m%d"))
}

/// The day a partition of ours holds; `None` for the default partition or any other.
fn partition_day(name: &str) -> Option<NaiveDate> {
    let digits = name.strip_prefix(PREFIX)?;
    NaiveDate::parse_from_str(digits, "%Y%m%d").ok()
}

fn start_of(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(NaiveTime::MIN).and_utc()
}

/// The day partitions that exist, by day.
async fn existing(tx: &mut PgConnection) -> StoreResult<Vec<(NaiveDate, String)>> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT child.relname::TEXT FROM pg_inherits \
         JOIN pg_class AS child ON child.oid = pg_inherits.inhrelid \
         WHERE pg_inherits.inhparent = 'run_logs'::regclass",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut days: Vec<(NaiveDate, String)> = names
        .into_iter()
        .filter_map(|name| partition_day(&name).map(|day| (day, name)))
        .collect();
    days.sort();
    Ok(days)
}

async fn lock(tx: &mut PgConnection) -> StoreResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(PARTITIONS_LOCK)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Creates the partitions from the day before `now` to a week after it that do not exist
/// yet; returns how many it created. Lines of those days already in the default
/// partition move into their day's.
pub(super) async fn ensure_log_partitions(pool: &PgPool, now: DateTime<Utc>) -> StoreResult<u32> {
    let today = now.date_naive();
    let first = today.checked_sub_days(Days::new(1)).unwrap_or(today);
    let last = today
        .checked_add_days(Days::new(DAYS_AHEAD))
        .unwrap_or(today);
    let mut tx = pool.begin().await?;
    // Most calls find every day there: they look without the lock first.
    let have: Vec<NaiveDate> = existing(&mut tx)
        .await?
        .into_iter()
        .map(|(day, _)| day)
        .collect();
    let missing: Vec<NaiveDate> = first
        .iter_days()
        .take_while(|day| *day <= last)
        .filter(|day| !have.contains(day))
        .collect();
    if missing.is_empty() {
        return Ok(0);
    }
    lock(&mut tx).await?;
    let have: Vec<NaiveDate> = existing(&mut tx)
        .await?
        .into_iter()
        .map(|(day, _)| day)
        .collect();
    let mut created = 0;
    for day in missing.into_iter().filter(|day| !have.contains(day)) {
        create(&mut tx, day).await?;
        created += 1;
    }
    tx.commit().await?;
    Ok(created)
}

/// Creates `day`'s partition as a table of its own, moves the day's lines from the
/// default partition into it, and attaches it: attaching checks that the default holds
/// none of the day's lines any more, which `CREATE TABLE … PARTITION OF` would refuse.
async fn create(tx: &mut PgConnection, day: NaiveDate) -> StoreResult<()> {
    let name = partition_name(day);
    let from = start_of(day);
    let to = start_of(day.succ_opt().unwrap_or(day));
    sqlx::query(&format!(
        "CREATE TABLE {name} (LIKE run_logs INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
    ))
    .execute(&mut *tx)
    .await?;
    sqlx::query(&format!(
        "WITH moved AS (DELETE FROM run_logs_default WHERE ts >= $1 AND ts < $2 \
             RETURNING id, run_id, ts, level, message, fields) \
         INSERT INTO {name} (id, run_id, ts, level, message, fields) SELECT * FROM moved"
    ))
    .bind(from)
    .bind(to)
    .execute(&mut *tx)
    .await?;
    // Bounds are literals: DDL takes no parameters. They are our own formatted times.
    sqlx::query(&format!(
        "ALTER TABLE run_logs ATTACH PARTITION {name} FOR VALUES FROM ('{}') TO ('{}')",
        from.to_rfc3339(),
        to.to_rfc3339()
    ))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Drops the day partitions that end at or before `cutoff`; returns how many lines they
/// held.
pub(super) async fn drop_log_partitions_before(
    pool: &PgPool,
    cutoff: DateTime<Utc>,
) -> StoreResult<u64> {
    let mut tx = pool.begin().await?;
    let old: Vec<String> = existing(&mut tx)
        .await?
        .into_iter()
        .filter(|(day, _)| day.succ_opt().is_some_and(|next| start_of(next) <= cutoff))
        .map(|(_, name)| name)
        .collect();
    if old.is_empty() {
        return Ok(0);
    }
    lock(&mut tx).await?;
    let mut lines = 0;
    for name in old {
        // Counted first: the report says how many lines went. Another instance's
        // prune may have dropped it meanwhile.
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(&name)
            .fetch_one(&mut *tx)
            .await?;
        if !exists {
            continue;
        }
        let count: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {name}"))
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(&format!("DROP TABLE {name}"))
            .execute(&mut *tx)
            .await?;
        lines += u64::try_from(count).unwrap_or(0);
    }
    tx.commit().await?;
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_round_trip_and_others_are_not_ours() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 30).expect("a valid date");
        assert_eq!(partition_name(day), "run_logs_p20261130");
        assert_eq!(partition_day(&partition_name(day)), Some(day));
        assert_eq!(partition_day("run_logs_default"), None);
        assert_eq!(partition_day("run_logs_p2026"), None);
    }
}
