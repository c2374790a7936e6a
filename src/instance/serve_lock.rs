//! On SQLite, one `serve` per database file: the first one holds an exclusive lock on
//! a file beside the database for as long as it runs; a second one is refused with a
//! message naming the first. The operating system drops the lock when its holder
//! exits, however it exits, so a crashed server never blocks the next start.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

/// The lock; held until dropped.
#[derive(Debug)]
pub struct ServeLock {
    _file: File,
}

impl ServeLock {
    /// Takes the lock of the SQLite database at `database_url`; `None` for a database
    /// that is not a file (PostgreSQL, or SQLite in memory).
    ///
    /// # Errors
    /// When another process holds the lock (the message names its pid), or the lock
    /// file cannot be opened.
    pub fn acquire(database_url: &str) -> anyhow::Result<Option<Self>> {
        let Some(database) = sqlite_file(database_url) else {
            return Ok(None);
        };
        let path = lock_path(&database);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|error| {
                anyhow::anyhow!("cannot open the lock file {}: {error}", path.display())
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => String::new(),
                    pid => format!(" (pid {pid})"),
                };
                anyhow::bail!(
                    "another `batchboard serve`{holder} is already using {}: a SQLite \
                     database serves one server at a time. Stop the other one first, or \
                     move to PostgreSQL to run several instances.",
                    database.display()
                );
            }
            Err(TryLockError::Error(error)) => {
                anyhow::bail!("cannot lock {}: {error}", path.display());
            }
        }
        // Only informative (the lock is what counts), so a failed write is ignored.
        let _ = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| write!(file, "{}", std::process::id()));
        Ok(Some(Self { _file: file }))
    }
}

/// The file of a `sqlite:` URL, or `None` for other databases and in-memory ones.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let in_memory =
        path.is_empty() || path == ":memory:" || query.split('&').any(|pair| pair == "mode=memory");
    (!in_memory).then(|| PathBuf::from(path))
}

fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".serve-lock");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sqlite_files_have_a_lock() {
        assert_eq!(
            sqlite_file("sqlite://data/b.db?mode=rwc"),
            Some(PathBuf::from("data/b.db"))
        );
        assert_eq!(sqlite_file("sqlite:b.db"), Some(PathBuf::from("b.db")));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("sqlite://x.db?mode=memory&cache=shared"), None);
        assert_eq!(sqlite_file("postgres://u@h/db"), None);
    }

    #[test]
    fn a_second_lock_on_the_same_database_is_refused_and_names_the_holder() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("b.db").display());
        let first = ServeLock::acquire(&url).expect("the first lock is taken");
        assert!(first.is_some());
        let refused = ServeLock::acquire(&url).expect_err("the second is refused");
        let message = refused.to_string();
        assert!(
            message.contains("another `batchboard serve`")
                && message.contains(&format!("(pid {})", std::process::id())),
            "{message}"
        );
        drop(first);
        assert!(ServeLock::acquire(&url).expect("free again").is_some());
    }
}
