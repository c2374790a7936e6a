//! The settings file (`batchboard.toml`) and the environment, validated at start-up.
//!
//! The file is optional. Which file is read: an explicit `--config PATH`, else the
//! `BATCHBOARD_CONFIG` variable, else `./batchboard.toml` when it exists. The variables
//! `BATCHBOARD_DATABASE_URL` and `BATCHBOARD_BIND` win over the file's values; the admin
//! password only ever comes from `BATCHBOARD_ADMIN_PASSWORD`, so it is never committed
//! with the file.
//!
//! ```toml
//! database_url = "sqlite://batchboard.db?mode=rwc"
//! bind = "127.0.0.1:8080"
//!
//! [scheduler]
//! max_concurrent_runs = 256
//! shutdown_grace = "30s"
//! timeout_grace = "10s"
//!
//! [runlog]
//! max_lines_per_run = 10000
//! redact = ["iban"]
//!
//! [web]                           # cookies and headers behind TLS; see WebSettings
//! secure_cookies = true
//!
//! [metrics]                       # who may read /metrics; see MetricsSettings
//! token = "a-long-random-secret"  # or BATCHBOARD_METRICS_TOKEN
//! bind = "127.0.0.1:9464"         # /metrics served there without credentials
//!
//! [[jobs]]
//! name = "inventory-sync"
//! handler = "demo_inventory"
//! every = "5m"
//! ```
//!
//! Every problem is reported at once, one per line, each naming where it is:
//! `batchboard.toml: job "inventory-sync": every: an interval must be at least 1 second`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::job::JobSettings;

mod alerts;
mod file;
mod jobs;
mod metrics;
mod validate;
mod web;
use file::{FileSettings, parse_file, read_file};
pub use metrics::{ENV_METRICS_TOKEN, MIN_METRICS_TOKEN_LEN, MetricsSettings};
use validate::build;
pub use web::{ENV_SECURE_COOKIES, WebSettings};

/// Names the settings file to read when no `--config` is given.
pub const ENV_CONFIG: &str = "BATCHBOARD_CONFIG";
/// Overrides `database_url`.
pub const ENV_DATABASE_URL: &str = "BATCHBOARD_DATABASE_URL";
/// Overrides `bind`.
pub const ENV_BIND: &str = "BATCHBOARD_BIND";
/// The first admin's password; read from the environment only.
pub const ENV_ADMIN_PASSWORD: &str = "BATCHBOARD_ADMIN_PASSWORD";

/// The file read when it exists and nothing else names one.
pub const DEFAULT_CONFIG_FILE: &str = "batchboard.toml";
/// A SQLite file in the working directory, created if missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://batchboard.db?mode=rwc";
/// Local connections only, until an operator decides otherwise.
pub const DEFAULT_BIND: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    8080,
));

/// Everything the process is configured with.
#[derive(Clone, PartialEq)]
pub struct Settings {
    /// `BATCHBOARD_DATABASE_URL`, else the file's `database_url`, else
    /// [`DEFAULT_DATABASE_URL`].
    pub database_url: String,
    /// `BATCHBOARD_BIND`, else the file's `bind`, else [`DEFAULT_BIND`].
    pub bind: SocketAddr,
    /// `BATCHBOARD_ADMIN_PASSWORD`, used for the first admin; never read from the file
    /// and never shown by `Debug`.
    pub admin_password: Option<String>,
    /// The file's `[scheduler]` table.
    pub scheduler: SchedulerSettings,
    /// The file's `[runlog]` table.
    pub runlog: RunLogSettings,
    /// The file's `[metrics]` table (and `BATCHBOARD_METRICS_TOKEN`).
    pub metrics: MetricsSettings,
    /// The file's `[web]` table (and `BATCHBOARD_SECURE_COOKIES`).
    pub web: WebSettings,
    /// The file's `[[jobs]]`, not yet checked: see [`Settings::job_specs`].
    pub jobs: Vec<JobSettings>,
    /// The file's `[[alerts]]` and the jobs' alert settings, checked.
    pub alerts: crate::alerts::AlertSettings,
    /// The file read, or `None` when there was none (the caller then uses the demo jobs).
    pub source: Option<PathBuf>,
}

/// How the scheduler runs jobs and stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerSettings {
    /// At most this many runs at once, over all jobs (1 to 100 000; default 256).
    pub max_concurrent_runs: usize,
    /// How long running runs may finish after a shutdown begins (default 30s).
    pub shutdown_grace: Duration,
    /// How long a run that passed its timeout has to stop after being cancelled, before
    /// it is abandoned (default 10s).
    pub timeout_grace: Duration,
    /// Hear other instances' job changes at once (PostgreSQL's LISTEN, default true).
    /// Off behind a transaction-mode pooler, where LISTEN cannot work: changes are then
    /// picked up by polling every few seconds.
    pub listen: bool,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self {
            max_concurrent_runs: 256,
            shutdown_grace: Duration::from_secs(30),
            timeout_grace: Duration::from_secs(10),
            listen: true,
        }
    }
}

/// How runs' logs are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLogSettings {
    /// Lines kept per run; later lines are counted but dropped (default 10 000).
    pub max_lines_per_run: usize,
    /// Field-name fragments whose values are redacted, on top of the built-in ones.
    pub redact: Vec<String>,
}

impl Default for RunLogSettings {
    fn default() -> Self {
        Self {
            max_lines_per_run: 10_000,
            redact: Vec::new(),
        }
    }
}

impl Default for Settings {
    /// The settings with no file and no environment.
    fn default() -> Self {
        Self {
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            bind: DEFAULT_BIND,
            admin_password: None,
            scheduler: SchedulerSettings::default(),
            runlog: RunLogSettings::default(),
            metrics: MetricsSettings::default(),
            web: WebSettings::default(),
            jobs: Vec::new(),
            alerts: crate::alerts::AlertSettings::default(),
            source: None,
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("database_url", &without_password(&self.database_url))
            .field("bind", &self.bind)
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| "<hidden>"),
            )
            .field("scheduler", &self.scheduler)
            .field("runlog", &self.runlog)
            .field("metrics", &self.metrics)
            .field("web", &self.web)
            .field("jobs", &self.jobs)
            .field("alerts", &self.alerts)
            .field("source", &self.source)
            .finish()
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`, for logs.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

/// Why the settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file named explicitly (`--config` or `BATCHBOARD_CONFIG`) is not there.
    #[error("{}: no such settings file", path.display())]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The file exists but cannot be read.
    #[error("{}: cannot read the settings file: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or has a key Batchboard does not know; `message` is
    /// toml's, with the line and column.
    #[error("{}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// toml's description, with the line and column.
        message: String,
    },
    /// Values that parse but are wrong; every one is listed, one per line.
    #[error("{}", display_lines(.0))]
    Invalid(Vec<ConfigProblem>),
}

fn display_lines(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// One wrong value and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Where the value came from: the settings file's path, or an environment variable.
    pub origin: String,
    /// The job it belongs to: `job "inventory-sync"`, or `jobs[3]` (counting from 0)
    /// when the job has no valid name.
    pub job: Option<String>,
    /// The field, e.g. `every` or `scheduler.shutdown_grace`; `None` when the origin is
    /// an environment variable, which is its own field.
    pub field: Option<String>,
    /// A sentence saying what is wrong.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.origin)?;
        if let Some(job) = &self.job {
            write!(f, "{job}: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl Settings {
    /// Reads the settings file and the process environment.
    ///
    /// `path` is an explicit `--config` path, which must exist. Without one, the file
    /// is `BATCHBOARD_CONFIG` (which must exist too), else `./batchboard.toml` if it
    /// exists, else there is no file and the defaults apply.
    ///
    /// # Errors
    /// When a named file is missing or unreadable, is not valid TOML, has unknown keys,
    /// or holds values (or the environment holds values) that are out of bounds.
    pub fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::load_with_env(path, &|name| std::env::var(name).ok())
    }

    /// [`Settings::load`] with the environment read through `env`, so that tests can pass
    /// a map instead of changing the process's environment. An empty value counts as
    /// unset.
    ///
    /// # Errors
    /// As [`Settings::load`].
    pub fn load_with_env(
        path: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        Self::load_from(path, env, Path::new(DEFAULT_CONFIG_FILE))
    }

    fn load_from(
        path: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
        default_file: &Path,
    ) -> Result<Settings, ConfigError> {
        let env = |name: &str| env(name).filter(|value| !value.trim().is_empty());
        let explicit = path
            .map(Path::to_path_buf)
            .or_else(|| env(ENV_CONFIG).map(PathBuf::from));
        let file = match explicit {
            Some(path) => Some(read_file(path, true)?),
            None => read_file(default_file.to_path_buf(), false).ok(),
        };
        match file {
            Some((path, text)) => {
                let raw = parse_file(&text, &path)?;
                build(raw, Some(path), &env)
            }
            None => build(FileSettings::default(), None, &env),
        }
    }

    /// Parses `text` as the settings file at `source`, with no environment overrides.
    ///
    /// # Errors
    /// When `text` is not valid TOML, has unknown keys, or holds values out of bounds.
    pub fn from_toml(text: &str, source: &Path) -> Result<Settings, ConfigError> {
        let raw = parse_file(text, source)?;
        build(raw, Some(source.to_path_buf()), &|_| None)
    }

    /// How problems in these settings name their origin.
    fn origin(&self) -> String {
        match &self.source {
            Some(path) => path.display().to_string(),
            None => "settings".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests;
