//! PostgreSQL databases for tests, shared by the test binaries (`#[path]`-included):
//! one database per test, created on the server named by [`POSTGRES_URL_VAR`] and
//! dropped with its value, so tests run in parallel without seeing each other's rows.

/// Where the PostgreSQL tests find a server: a URL whose user may create databases.
pub const POSTGRES_URL_VAR: &str = "BATCHBOARD_TEST_POSTGRES_URL";

/// A PostgreSQL database created for one test, dropped with the value.
pub struct PgDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

impl PgDatabase {
    /// Creates a uniquely named database on the server of [`POSTGRES_URL_VAR`], or
    /// returns `None` when it is not set, saying SKIP once per test binary.
    pub async fn create() -> Option<PgDatabase> {
        use sqlx::Connection as _;
        let Some(admin_url) = std::env::var(POSTGRES_URL_VAR)
            .ok()
            .filter(|url| !url.is_empty())
        else {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                // Straight to stderr: the test harness swallows `eprintln!` of passing tests.
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIP: PostgreSQL suite skipped (set {POSTGRES_URL_VAR})"
                );
            });
            return None;
        };
        let name = format!("bb_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR} does not answer: {e}"));
        sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .expect("a test database is created");
        let url = database_url(&admin_url, &name);
        Some(PgDatabase {
            admin_url,
            name,
            url,
        })
    }
}

impl PgDatabase {
    /// [`PgDatabase::create`] for synchronous code, also inside a test's runtime: on a
    /// thread with a runtime of its own.
    #[allow(dead_code)] // Each test binary uses its half of this module.
    pub fn create_blocking() -> Option<PgDatabase> {
        std::thread::spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(PgDatabase::create())
        })
        .join()
        .expect("the database is created")
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // Drop cannot await, and the test's runtime may be the current thread: a
        // short-lived thread with its own runtime drops the database (closing the
        // store's connections, which may still be open).
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || {
            use sqlx::Connection as _;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                sqlx::raw_sql(&sql).execute(&mut admin).await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "note: test database {} left behind",
                self.name
            );
        }
    }
}

/// `url` with its database replaced by `database` (the query string is kept).
fn database_url(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

#[cfg(test)]
mod tests {
    use super::database_url;

    #[test]
    fn a_test_database_url_keeps_the_server_and_the_options() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/test", "bb_1"),
            "postgres://postgres@127.0.0.1:5432/bb_1"
        );
        assert_eq!(
            database_url("postgresql://u:p@h/db?sslmode=disable", "bb_1"),
            "postgresql://u:p@h/bb_1?sslmode=disable"
        );
        assert_eq!(database_url("postgres://h", "bb_1"), "postgres://h/bb_1");
    }
}
