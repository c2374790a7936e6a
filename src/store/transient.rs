//! Which store errors are worth trying again: the database was busy, unreachable or
//! out of room, as opposed to a write it will refuse however often it is sent.

use sqlx::error::DatabaseError;

use super::StoreError;

impl StoreError {
    /// Whether the same write may succeed later: a lock held too long, a lost or refused
    /// connection, a full or read-only disk, a failover. Constraint violations, bad data
    /// and anything unknown are not, so the writer isolates them instead of retrying.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(error) => sqlx_error_is_transient(error),
            StoreError::Conflict
            | StoreError::NotFound
            | StoreError::Migrate(_)
            | StoreError::Decode(_)
            | StoreError::UnsupportedUrl(_) => false,
        }
    }
}

fn sqlx_error_is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(error) => database_error_is_transient(error.as_ref()),
        _ => false,
    }
}

fn database_error_is_transient(error: &dyn DatabaseError) -> bool {
    if let Some(error) = error.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
        return sqlite_code_is_transient(error.code().as_deref());
    }
    if let Some(error) = error.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        return postgres_state_is_transient(error.code());
    }
    false
}

/// SQLite's extended result codes carry the primary code in their low byte.
fn sqlite_code_is_transient(code: Option<&str>) -> bool {
    const BUSY: i32 = 5;
    const LOCKED: i32 = 6;
    const READONLY: i32 = 8;
    const IOERR: i32 = 10;
    const FULL: i32 = 13;
    const CANTOPEN: i32 = 14;
    const PROTOCOL: i32 = 15;
    let Some(code) = code.and_then(|code| code.parse::<i32>().ok()) else {
        return false;
    };
    matches!(
        code & 0xff,
        BUSY | LOCKED | READONLY | IOERR | FULL | CANTOPEN | PROTOCOL
    )
}

/// SQLSTATEs of a connection lost or refused (08), too few resources (53), an operator
/// or failover stopping the server (57), an I/O error (58), a serialization failure or
/// deadlock (40001, 40P01), a lock not available (55P03) and a read-only transaction on a
/// standby that is being promoted (25006).
fn postgres_state_is_transient(state: &str) -> bool {
    ["08", "53", "57", "58"]
        .iter()
        .any(|class| state.starts_with(class))
        || matches!(state, "40001" | "40P01" | "55P03" | "25006")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_busy_locked_full_and_io_errors_are_transient_constraints_are_not() {
        for code in ["5", "517", "6", "8", "10", "266", "13", "14"] {
            assert!(sqlite_code_is_transient(Some(code)), "{code}");
        }
        // 19 constraint, 787 foreign key, 2067 unique, 1811 a trigger's RAISE, 1 generic.
        for code in ["19", "787", "2067", "1811", "1"] {
            assert!(!sqlite_code_is_transient(Some(code)), "{code}");
        }
        assert!(!sqlite_code_is_transient(None));
        assert!(!sqlite_code_is_transient(Some("busy")));
    }

    #[test]
    fn postgres_connection_and_contention_states_are_transient_data_errors_are_not() {
        for state in [
            "08006", "08001", "53300", "57P01", "40001", "40P01", "55P03",
        ] {
            assert!(postgres_state_is_transient(state), "{state}");
        }
        for state in ["23505", "23503", "22P02", "42P01", "P0001"] {
            assert!(!postgres_state_is_transient(state), "{state}");
        }
    }

    #[test]
    fn lost_connections_are_transient_and_bad_records_are_not() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(StoreError::Database(sqlx::Error::Io(io)).is_transient());
        assert!(StoreError::Database(sqlx::Error::PoolTimedOut).is_transient());
        assert!(!StoreError::Database(sqlx::Error::RowNotFound).is_transient());
        assert!(!StoreError::Decode("bad".into()).is_transient());
        assert!(!StoreError::Conflict.is_transient());
    }
}
