//! The app's database through connections of its own, on either backend, for tests that
//! look at rows the app never shows (the session layer's table, what a token leaves).

use crate::helpers::{TestApp, on_postgres};

/// A pool on the app's SQLite file or PostgreSQL database.
pub enum RawDb {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl RawDb {
    pub async fn open(app: &TestApp) -> RawDb {
        if on_postgres() {
            RawDb::Postgres(
                sqlx::PgPool::connect(&app.database_url)
                    .await
                    .expect("the database opens"),
            )
        } else {
            RawDb::Sqlite(
                sqlx::SqlitePool::connect(&app.database_url)
                    .await
                    .expect("the database opens"),
            )
        }
    }

    /// The session layer's table, as tower-sessions names it on this backend.
    pub fn session_table(&self) -> &'static str {
        match self {
            RawDb::Sqlite(_) => "tower_sessions",
            RawDb::Postgres(_) => "tower_sessions.session",
        }
    }

    /// `sql` with `{sessions}` standing for [`RawDb::session_table`] and `{zero_byte}`
    /// for a one-byte binary literal.
    fn sql(&self, sql: &str) -> String {
        let zero_byte = match self {
            RawDb::Sqlite(_) => "x'00'",
            RawDb::Postgres(_) => "'\\x00'::BYTEA",
        };
        sql.replace("{sessions}", self.session_table())
            .replace("{zero_byte}", zero_byte)
    }

    /// The count `sql` selects, with `$1` bound to `bind` when given.
    pub async fn count(&self, sql: &str, bind: Option<&str>) -> i64 {
        let sql = self.sql(sql);
        match self {
            RawDb::Sqlite(pool) => {
                let query = sqlx::query_scalar(&sql);
                let query = if let Some(bind) = bind {
                    query.bind(bind)
                } else {
                    query
                };
                query.fetch_one(pool).await
            }
            RawDb::Postgres(pool) => {
                let query = sqlx::query_scalar(&sql);
                let query = if let Some(bind) = bind {
                    query.bind(bind)
                } else {
                    query
                };
                query.fetch_one(pool).await
            }
        }
        .expect("the count is read")
    }

    /// Runs `sql`, with `$1` bound to `bind` when given.
    pub async fn execute(&self, sql: &str, bind: Option<&str>) {
        let sql = self.sql(sql);
        match self {
            RawDb::Sqlite(pool) => {
                let query = sqlx::query(&sql);
                let query = if let Some(bind) = bind {
                    query.bind(bind)
                } else {
                    query
                };
                query.execute(pool).await.map(drop)
            }
            RawDb::Postgres(pool) => {
                let query = sqlx::query(&sql);
                let query = if let Some(bind) = bind {
                    query.bind(bind)
                } else {
                    query
                };
                query.execute(pool).await.map(drop)
            }
        }
        .expect("the statement runs");
    }

    /// The text values `sql` selects.
    pub async fn strings(&self, sql: &str) -> Vec<String> {
        let sql = self.sql(sql);
        match self {
            RawDb::Sqlite(pool) => sqlx::query_scalar(&sql).fetch_all(pool).await,
            RawDb::Postgres(pool) => sqlx::query_scalar(&sql).fetch_all(pool).await,
        }
        .expect("the rows are read")
    }
}
