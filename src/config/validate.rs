//! Checking the file's values and the environment's overrides: one function per table
//! (the top-level keys, `[scheduler]`, `[runlog]`; `[metrics]` and `[web]` beside their
//! settings), each reporting every problem it finds rather than stopping at the first.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::file::{FileRunLog, FileScheduler, FileSettings};
use super::{
    ConfigError, ConfigProblem, ENV_ADMIN_PASSWORD, ENV_BIND, ENV_DATABASE_URL, RunLogSettings,
    SchedulerSettings, Settings, metrics, web, without_password,
};
use crate::schedule::parse_duration;

const MAX_CONCURRENT_RUNS: std::ops::RangeInclusive<usize> = 1..=100_000;
const MAX_LINES_PER_RUN: std::ops::RangeInclusive<usize> = 1..=10_000_000;
const MAX_SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
const MAX_TIMEOUT_GRACE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Checks the file's values and the environment's overrides, collecting every problem.
pub(super) fn build(
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

    let database_url = database_url(raw.database_url, &file_origin, env, &mut problem);
    let bind = bind(raw.bind, &file_origin, env, &mut problem);
    if raw.admin_password.is_some() {
        problem(
            &file_origin,
            Some("admin_password"),
            format!(
                "the admin password is never read from the settings file: set {ENV_ADMIN_PASSWORD} instead"
            ),
        );
    }
    let scheduler = scheduler_settings(&raw.scheduler, &file_origin, &mut problem);
    let runlog = runlog_settings(raw.runlog, &file_origin, &mut problem);
    let admin_password = env(ENV_ADMIN_PASSWORD);
    let metrics = metrics::metrics_settings(raw.metrics, &file_origin, env, &mut problem);
    let web = web::web_settings(raw.web, &file_origin, env, &mut problem);
    let (alerts, alert_problems) = super::alerts::alert_settings(raw.alerts, &raw.jobs);
    problems.extend(
        alert_problems
            .into_iter()
            .map(|(job, field, message)| ConfigProblem {
                origin: file_origin.clone(),
                job: job.map(|name| format!("job {name:?}")),
                field: Some(field),
                message,
            }),
    );

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
            alerts,
            source,
        })
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

/// A value from the environment variable `variable`, else the file's `key`, with where it
/// came from: an environment variable is its own origin; a file value names its key.
fn pick(
    env: &dyn Fn(&str) -> Option<String>,
    variable: &'static str,
    key: &'static str,
    from_file: Option<String>,
    file_origin: &str,
) -> Option<(String, String, Option<&'static str>)> {
    match env(variable) {
        Some(value) => Some((value, variable.to_owned(), None)),
        None => from_file.map(|value| (value, file_origin.to_owned(), Some(key))),
    }
}

fn database_url(
    from_file: Option<String>,
    file_origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
    problem: &mut impl FnMut(&str, Option<&str>, String),
) -> String {
    match pick(
        env,
        ENV_DATABASE_URL,
        "database_url",
        from_file,
        file_origin,
    ) {
        None => super::DEFAULT_DATABASE_URL.to_owned(),
        Some((url, origin, field)) => {
            let url = url.trim().to_owned();
            if let Err(message) = check_database_url(&url) {
                problem(&origin, field, message);
            }
            url
        }
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

fn bind(
    from_file: Option<String>,
    file_origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
    problem: &mut impl FnMut(&str, Option<&str>, String),
) -> SocketAddr {
    match pick(env, ENV_BIND, "bind", from_file, file_origin) {
        None => super::DEFAULT_BIND,
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
                super::DEFAULT_BIND
            }
        },
    }
}

/// The `[scheduler]` table; each key left out, or wrong, keeps its default.
fn scheduler_settings(
    raw: &FileScheduler,
    file_origin: &str,
    problem: &mut impl FnMut(&str, Option<&str>, String),
) -> SchedulerSettings {
    let mut scheduler = SchedulerSettings::default();
    if let Some(listen) = raw.listen {
        scheduler.listen = listen;
    }
    if let Some(count) = raw.max_concurrent_runs {
        match usize::try_from(count)
            .ok()
            .filter(|count| MAX_CONCURRENT_RUNS.contains(count))
        {
            Some(count) => scheduler.max_concurrent_runs = count,
            None => problem(
                file_origin,
                Some("scheduler.max_concurrent_runs"),
                format!(
                    "must be between {} and {} (found {count})",
                    MAX_CONCURRENT_RUNS.start(),
                    MAX_CONCURRENT_RUNS.end()
                ),
            ),
        }
    }
    // Bounded so that `now + grace` can never overflow, and a typo (`30d` for `30s`)
    // cannot hold a shutdown for weeks.
    for (key, text, slot, longest) in [
        (
            "scheduler.shutdown_grace",
            &raw.shutdown_grace,
            &mut scheduler.shutdown_grace,
            MAX_SHUTDOWN_GRACE,
        ),
        (
            "scheduler.timeout_grace",
            &raw.timeout_grace,
            &mut scheduler.timeout_grace,
            MAX_TIMEOUT_GRACE,
        ),
    ] {
        if let Some(text) = text {
            match parse_duration(text) {
                Ok(duration) if duration <= longest => *slot = duration,
                Ok(_) => problem(
                    file_origin,
                    Some(key),
                    format!(
                        "{text:?} is too long: at most {}",
                        crate::schedule::format_duration(longest)
                    ),
                ),
                Err(error) => problem(file_origin, Some(key), error.to_string()),
            }
        }
    }
    scheduler
}

/// The `[runlog]` table; a wrong line limit keeps the default, empty fragments are left
/// out.
fn runlog_settings(
    raw: FileRunLog,
    file_origin: &str,
    problem: &mut impl FnMut(&str, Option<&str>, String),
) -> RunLogSettings {
    let mut runlog = RunLogSettings::default();
    if let Some(count) = raw.max_lines_per_run {
        match usize::try_from(count)
            .ok()
            .filter(|count| MAX_LINES_PER_RUN.contains(count))
        {
            Some(count) => runlog.max_lines_per_run = count,
            None => problem(
                file_origin,
                Some("runlog.max_lines_per_run"),
                format!(
                    "must be between {} and {} (found {count})",
                    MAX_LINES_PER_RUN.start(),
                    MAX_LINES_PER_RUN.end()
                ),
            ),
        }
    }
    for (index, fragment) in raw.redact.unwrap_or_default().into_iter().enumerate() {
        let fragment = fragment.trim().to_owned();
        if fragment.is_empty() {
            problem(
                file_origin,
                Some(format!("runlog.redact[{index}]").as_str()),
                "a field-name fragment to redact cannot be empty".to_owned(),
            );
        } else {
            runlog.redact.push(fragment);
        }
    }
    runlog
}
