//! The settings file as written: the raw tables serde reads, and reading and parsing
//! the file. Nothing here judges a value; see `validate` for that.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;
use super::metrics::FileMetrics;
use crate::job::JobSettings;

/// The file as written; values are checked when [`Settings`](super::Settings) are built
/// from it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSettings {
    pub(super) database_url: Option<String>,
    pub(super) bind: Option<String>,
    /// Accepted by the parser only to be refused with a clear reason.
    pub(super) admin_password: Option<toml::Value>,
    #[serde(default)]
    pub(super) scheduler: FileScheduler,
    #[serde(default)]
    pub(super) runlog: FileRunLog,
    #[serde(default)]
    pub(super) metrics: FileMetrics,
    #[serde(default)]
    pub(super) web: super::web::FileWeb,
    #[serde(default)]
    pub(super) jobs: Vec<JobSettings>,
    #[serde(default)]
    pub(super) alerts: Vec<super::alerts::FileAlert>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileScheduler {
    pub(super) max_concurrent_runs: Option<u64>,
    pub(super) shutdown_grace: Option<String>,
    pub(super) timeout_grace: Option<String>,
    pub(super) listen: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileRunLog {
    pub(super) max_lines_per_run: Option<u64>,
    pub(super) redact: Option<Vec<String>>,
}

/// Reads the file at `path`. A missing file is [`ConfigError::NotFound`] when `named`,
/// and only then does the caller treat it as an error.
pub(super) fn read_file(path: PathBuf, named: bool) -> Result<(PathBuf, String), ConfigError> {
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((path, text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && named => {
            Err(ConfigError::NotFound { path })
        }
        Err(source) => Err(ConfigError::Read { path, source }),
    }
}

pub(super) fn parse_file(text: &str, path: &Path) -> Result<FileSettings, ConfigError> {
    toml::from_str(text).map_err(|error| ConfigError::Syntax {
        path: path.to_path_buf(),
        // toml's message ends with a newline after its source excerpt.
        message: error.to_string().trim_end().to_owned(),
    })
}
