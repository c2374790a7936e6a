//! Migrating a SQLite file, also when two processes open a new one at once.

use std::time::Duration;

use sqlx::SqlitePool;

use crate::store::{StoreError, StoreResult};

/// How many times opening the migration's transaction is tried again when SQLite
/// refuses it as locked without waiting (100 ms apart).
const BUSY_RETRIES: u32 = 50;

/// Applies the embedded migrations. sqlx takes no lock on SQLite, so two processes
/// migrating a new file at once (a `batchboard run` and a first `serve`) would both create
/// the same tables. The whole run is one write transaction instead (each migration a
/// savepoint in it): the second waits for the first and then finds nothing left to apply.
/// Opening a new file turns it to WAL, which SQLite refuses at once ("database is
/// locked", the busy timeout not applying) while the other process does the same: that
/// refusal is tried again.
pub(super) async fn migrate(pool: &SqlitePool) -> StoreResult<()> {
    let mut refusals = 0;
    loop {
        match migrate_in_one_transaction(pool).await {
            Err(StoreError::Database(error)) if is_busy(&error) && refusals < BUSY_RETRIES => {
                refusals += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            migrated => return migrated,
        }
    }
}

async fn migrate_in_one_transaction(pool: &SqlitePool) -> StoreResult<()> {
    let mut migrating = pool.begin_with("BEGIN IMMEDIATE").await?;
    // `run_direct` is `run` on a connection; `run` on one trips the
    // "Acquire is not general enough" lifetime error inside `async_trait`.
    sqlx::migrate!("migrations/sqlite")
        .run_direct(&mut *migrating)
        .await?;
    migrating.commit().await?;
    Ok(())
}

/// SQLite's "database is locked" (`SQLITE_BUSY`, `SQLITE_LOCKED` and their extended
/// codes).
fn is_busy(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(error) = error else {
        return false;
    };
    error
        .code()
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| matches!(code & 0xff, 5 | 6))
}
