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

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::job::{JobName, JobSettings, JobSpec, Registry};
use crate::schedule::parse_duration;

mod web;
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

const MAX_CONCURRENT_RUNS: std::ops::RangeInclusive<usize> = 1..=100_000;
const MAX_LINES_PER_RUN: std::ops::RangeInclusive<usize> = 1..=10_000_000;

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
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self {
            max_concurrent_runs: 256,
            shutdown_grace: Duration::from_secs(30),
            timeout_grace: Duration::from_secs(10),
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

/// The file as written; values are checked when [`Settings`] are built from it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    database_url: Option<String>,
    bind: Option<String>,
    /// Accepted by the parser only to be refused with a clear reason.
    admin_password: Option<toml::Value>,
    #[serde(default)]
    scheduler: FileScheduler,
    #[serde(default)]
    runlog: FileRunLog,
    #[serde(default)]
    metrics: FileMetrics,
    #[serde(default)]
    web: web::FileWeb,
    #[serde(default)]
    jobs: Vec<JobSettings>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileScheduler {
    max_concurrent_runs: Option<u64>,
    shutdown_grace: Option<String>,
    timeout_grace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRunLog {
    max_lines_per_run: Option<u64>,
    redact: Option<Vec<String>>,
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

    /// Validates every job: its own fields ([`JobSpec::from_settings`]), that its
    /// handler is registered, that its params suit that handler, and that no two jobs
    /// share a name. Every problem of every job is reported.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] listing each problem, one per line.
    pub fn job_specs(&self, registry: &Registry) -> Result<Vec<JobSpec>, ConfigError> {
        let origin = self.origin();
        let mut problems = Vec::new();
        let mut specs = Vec::with_capacity(self.jobs.len());
        // Name → position of the first job with it.
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (index, job) in self.jobs.iter().enumerate() {
            let label = match job.name.parse::<JobName>() {
                Ok(name) => format!("job {:?}", name.as_str()),
                Err(_) => format!("jobs[{index}]"),
            };
            let mut problem = |field: &str, message: String| {
                problems.push(ConfigProblem {
                    origin: origin.clone(),
                    job: Some(label.clone()),
                    field: Some(field.to_owned()),
                    message,
                });
            };
            if let Some(first) = seen.get(job.name.as_str()) {
                problem(
                    "name",
                    format!("the name {:?} is already used by jobs[{first}]", job.name),
                );
            } else {
                seen.insert(&job.name, index);
            }
            let spec = JobSpec::from_settings(job);
            if let Err(error) = &spec {
                for (field, message) in &error.fields {
                    problem(field, message.clone());
                }
            }
            let handler = job.handler.trim();
            if !handler.is_empty() {
                match registry.get(handler) {
                    None => problem("handler", unknown_handler(handler, registry)),
                    Some(found) => {
                        let empty = serde_json::Value::Object(serde_json::Map::new());
                        let params = job.params.as_ref().unwrap_or(&empty);
                        if let Err(reason) = found.check_params(params) {
                            problem(
                                "params",
                                format!("the params do not suit handler {handler:?}: {reason}"),
                            );
                        }
                    }
                }
            }
            if let Ok(spec) = spec {
                specs.push(spec);
            }
        }
        if problems.is_empty() {
            Ok(specs)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// How problems in these settings name their origin.
    fn origin(&self) -> String {
        match &self.source {
            Some(path) => path.display().to_string(),
            None => "settings".to_owned(),
        }
    }
}

fn unknown_handler(handler: &str, registry: &Registry) -> String {
    let known: Vec<&str> = registry.names().collect();
    if known.is_empty() {
        format!("unknown handler {handler:?}: no handlers are registered")
    } else {
        format!(
            "unknown handler {handler:?}: use one of {}",
            known.join(", ")
        )
    }
}

/// Reads the file at `path`. A missing file is [`ConfigError::NotFound`] when `named`,
/// and only then does the caller treat it as an error.
fn read_file(path: PathBuf, named: bool) -> Result<(PathBuf, String), ConfigError> {
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((path, text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && named => {
            Err(ConfigError::NotFound { path })
        }
        Err(source) => Err(ConfigError::Read { path, source }),
    }
}

fn parse_file(text: &str, path: &Path) -> Result<FileSettings, ConfigError> {
    toml::from_str(text).map_err(|error| ConfigError::Syntax {
        path: path.to_path_buf(),
        // toml's message ends with a newline after its source excerpt.
        message: error.to_string().trim_end().to_owned(),
    })
}

/// Checks the file's values and the environment's overrides, collecting every problem.
fn build(
    raw: FileSettings,
    source: Option<PathBuf>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, ConfigError> {
    let file_origin = source
        .as_ref()
        .map_or_else(|| "settings".to_owned(), |path| path.display().to_string());
    let mut problems = Vec::new();
    let mut problem = |origin: &str, field: Option<&str>, message: String| {
        problems.push(ConfigProblem {
            origin: origin.to_owned(),
            job: None,
            field: field.map(str::to_owned),
            message,
        });
    };
    let defaults = Settings::default();

    // A value from the environment is its own origin; one from the file names its key.
    let pick = |variable: &'static str, key: &'static str, from_file: Option<String>| match env(
        variable,
    ) {
        Some(value) => Some((value, variable.to_owned(), None)),
        None => from_file.map(|value| (value, file_origin.clone(), Some(key))),
    };

    let database_url = match pick(ENV_DATABASE_URL, "database_url", raw.database_url) {
        None => defaults.database_url,
        Some((url, origin, field)) => {
            let url = url.trim().to_owned();
            if let Err(message) = check_database_url(&url) {
                problem(&origin, field, message);
            }
            url
        }
    };

    let bind = match pick(ENV_BIND, "bind", raw.bind) {
        None => defaults.bind,
        Some((text, origin, field)) => match text.trim().parse::<SocketAddr>() {
            Ok(address) => address,
            Err(_) => {
                problem(
                    &origin,
                    field,
                    format!(
                        "{text:?} is not an address to listen on: write an IP address and a port, like 127.0.0.1:8080 or 0.0.0.0:8080"
                    ),
                );
                defaults.bind
            }
        },
    };

    if raw.admin_password.is_some() {
        problem(
            &file_origin,
            Some("admin_password"),
            format!(
                "the admin password is never read from the settings file: set {ENV_ADMIN_PASSWORD} instead"
            ),
        );
    }

    let mut scheduler = defaults.scheduler;
    if let Some(count) = raw.scheduler.max_concurrent_runs {
        match usize::try_from(count)
            .ok()
            .filter(|count| MAX_CONCURRENT_RUNS.contains(count))
        {
            Some(count) => scheduler.max_concurrent_runs = count,
            None => problem(
                &file_origin,
                Some("scheduler.max_concurrent_runs"),
                format!(
                    "must be between {} and {} (found {count})",
                    MAX_CONCURRENT_RUNS.start(),
                    MAX_CONCURRENT_RUNS.end()
                ),
            ),
        }
    }
    for (key, text, slot) in [
        (
            "scheduler.shutdown_grace",
            &raw.scheduler.shutdown_grace,
            &mut scheduler.shutdown_grace,
        ),
        (
            "scheduler.timeout_grace",
            &raw.scheduler.timeout_grace,
            &mut scheduler.timeout_grace,
        ),
    ] {
        if let Some(text) = text {
            match parse_duration(text) {
                Ok(duration) => *slot = duration,
                Err(error) => problem(&file_origin, Some(key), error.to_string()),
            }
        }
    }

    let mut runlog = defaults.runlog;
    if let Some(count) = raw.runlog.max_lines_per_run {
        match usize::try_from(count)
            .ok()
            .filter(|count| MAX_LINES_PER_RUN.contains(count))
        {
            Some(count) => runlog.max_lines_per_run = count,
            None => problem(
                &file_origin,
                Some("runlog.max_lines_per_run"),
                format!(
                    "must be between {} and {} (found {count})",
                    MAX_LINES_PER_RUN.start(),
                    MAX_LINES_PER_RUN.end()
                ),
            ),
        }
    }
    for (index, fragment) in raw
        .runlog
        .redact
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let fragment = fragment.trim().to_owned();
        if fragment.is_empty() {
            problem(
                &file_origin,
                Some(format!("runlog.redact[{index}]").as_str()),
                "a field-name fragment to redact cannot be empty".to_owned(),
            );
        } else {
            runlog.redact.push(fragment);
        }
    }

    let admin_password = env(ENV_ADMIN_PASSWORD);
    let metrics = metrics_settings(raw.metrics, &file_origin, env, &mut problem);
    let web = web::web_settings(raw.web, &file_origin, env, &mut problem);

    if problems.is_empty() {
        Ok(Settings {
            database_url,
            bind,
            admin_password,
            scheduler,
            runlog,
            metrics,
            web,
            jobs: raw.jobs,
            source,
        })
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

fn check_database_url(url: &str) -> Result<(), String> {
    let supported = ["sqlite:", "postgres://", "postgresql://"];
    if url.is_empty() {
        return Err("a database URL cannot be empty".to_owned());
    }
    if supported.iter().any(|prefix| url.starts_with(prefix)) {
        Ok(())
    } else {
        Err(format!(
            "{:?} is not a supported database: use sqlite://FILE?mode=rwc or postgres://USER@HOST/DATABASE",
            without_password(url)
        ))
    }
}

/// `BATCHBOARD_METRICS_TOKEN`: the bearer token `/metrics` accepts; wins over the file's
/// `metrics.token`, so the secret can stay out of the file.
pub const ENV_METRICS_TOKEN: &str = "BATCHBOARD_METRICS_TOKEN";

/// The shortest metrics token accepted: anything shorter could be guessed.
pub const MIN_METRICS_TOKEN_LEN: usize = 16;

/// Who may read `/metrics` (the `[metrics]` table):
///
/// ```toml
/// [metrics]
/// token = "a-long-random-secret"   # scrapers send `Authorization: Bearer <token>`
/// bind = "127.0.0.1:9464"          # /metrics is also served there, open to anyone
/// ```
///
/// On the main address `/metrics` always needs a signed-in session or the token; with
/// neither key set only signed-in users can read it. `bind` is for a port that only the
/// monitoring network can reach.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct MetricsSettings {
    /// The bearer token `/metrics` accepts on the main address.
    pub token: Option<String>,
    /// A separate address where `/metrics` (and nothing else) is served without
    /// credentials.
    pub bind: Option<SocketAddr>,
}

impl fmt::Debug for MetricsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsSettings")
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("bind", &self.bind)
            .finish()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMetrics {
    token: Option<String>,
    bind: Option<String>,
}

fn metrics_settings(
    raw: FileMetrics,
    file_origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
    problem: &mut impl FnMut(&str, Option<&str>, String),
) -> MetricsSettings {
    let (token, origin, field) = match env(ENV_METRICS_TOKEN) {
        Some(token) => (Some(token), ENV_METRICS_TOKEN, None),
        None => (raw.token, file_origin, Some("metrics.token")),
    };
    let token = token.map(|token| token.trim().to_owned());
    if token
        .as_ref()
        .is_some_and(|token| token.len() < MIN_METRICS_TOKEN_LEN)
    {
        problem(
            origin,
            field,
            format!("the metrics token must be at least {MIN_METRICS_TOKEN_LEN} characters long"),
        );
    }
    let bind = raw
        .bind
        .and_then(|text| match text.trim().parse::<SocketAddr>() {
            Ok(address) => Some(address),
            Err(_) => {
                problem(
                    file_origin,
                    Some("metrics.bind"),
                    format!(
                        "{text:?} is not an address to listen on: write an IP address and a port, like 127.0.0.1:9464"
                    ),
                );
                None
            }
        });
    MetricsSettings { token, bind }
}

#[cfg(test)]
mod tests;
