//! The session layer's own store (tower-sessions' rows) in the application's database,
//! on whichever backend the store uses: the web layer gets it from
//! [`Store::session_rows`](crate::store::Store::session_rows) and never sees a pool.

use async_trait::async_trait;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

use super::StoreResult;

/// The sessions table of SQLite (`tower_sessions`) or PostgreSQL
/// (`tower_sessions.session`).
#[derive(Debug, Clone)]
pub enum SessionRows {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl SessionRows {
    /// Creates the session table when it is missing. Call once at start-up.
    ///
    /// # Errors
    /// When the database refuses.
    pub async fn migrate(&self) -> StoreResult<()> {
        match self {
            Self::Sqlite(rows) => rows.migrate().await?,
            Self::Postgres(rows) => rows.migrate().await?,
        }
        Ok(())
    }
}

#[async_trait]
impl SessionStore for SessionRows {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match self {
            Self::Sqlite(rows) => rows.create(record).await,
            Self::Postgres(rows) => rows.create(record).await,
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match self {
            Self::Sqlite(rows) => rows.save(record).await,
            Self::Postgres(rows) => rows.save(record).await,
        }
    }

    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            Self::Sqlite(rows) => rows.load(session_id).await,
            Self::Postgres(rows) => rows.load(session_id).await,
        }
    }

    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        match self {
            Self::Sqlite(rows) => rows.delete(session_id).await,
            Self::Postgres(rows) => rows.delete(session_id).await,
        }
    }
}

#[async_trait]
impl ExpiredDeletion for SessionRows {
    async fn delete_expired(&self) -> session_store::Result<()> {
        match self {
            Self::Sqlite(rows) => rows.delete_expired().await,
            Self::Postgres(rows) => rows.delete_expired().await,
        }
    }
}
