//! Batchboard: a self-hosted scheduler for recurring batch jobs.
//!
//! Jobs are declared in `batchboard.toml` (or come from the built-in demo set), run
//! inside this process on a fixed-rate or cron schedule, and every run is recorded with
//! its outcome, counts and structured log in a SQLite file or a PostgreSQL database.
//!
//! # Layout
//!
//! - [`job`]: what a job *is* to the core: the [`job::JobHandler`] trait a job type
//!   implements, the context it runs with, its errors, its validated settings
//!   ([`job::JobSpec`]) and the [`job::Registry`] of handlers by name.
//! - [`schedule`]: intervals, cron lines with time zones, and next-fire maths.
//! - [`config`]: the settings file and environment, validated at start-up.
//! - [`store`]: the one [`store::Store`] trait and its SQLite and PostgreSQL backends,
//!   plus the group-commit writer that batches the scheduler's writes.
//! - [`scheduler`]: the scheduler task (a min-heap of due times), the executor (bounded
//!   pool, timeouts, cancellation), retry and misfire policy, and shutdown.
//! - [`runlog`]: the tracing layer that captures each run's events into its log.
//! - [`secrets`]: what counts as secret: the redaction list, params redacted for
//!   pages and answers, and the mask that hides a run's secret values in its output.
//! - [`jobs`]: the handlers that ship (`command`, `http`, `prune_history`, demo handlers).
//! - [`instance`]: this process among those sharing the database: registration and
//!   heartbeat, who is alive (the lease), the leader that decides scheduled fires, the
//!   job changes other instances announce, and the SQLite serve lock.
//! - [`clock`]: wall-clock time, injectable so that tests control it.
//! - [`app`]: builds the whole application from settings, as `main` and tests do.
//! - [`users`]: console users: the first admin, password hashing and checking.
//! - [`password_checks`]: the bound on simultaneous password checks.
//! - [`tokens`]: API tokens outside HTTP (the CLI's `token` commands).
//! - [`telemetry`]: the tracing subscriber (stdout with secrets redacted, plus the
//!   run-log layer).
//! - [`web`]: the HTTP surface: the console, the JSON API, sign-in, metrics and health.
//!
//! Dependencies point one way: `web` → `scheduler` → `store`; `job` and `schedule`
//! know nothing of either.

pub mod alerts;
pub mod app;
pub mod clock;
pub mod config;
pub mod instance;
pub mod job;
pub mod jobs;
pub mod maintenance;
pub mod password_checks;
pub mod runlog;
pub mod schedule;
pub mod scheduler;
pub mod secrets;
pub mod store;
pub mod telemetry;
pub mod tokens;
pub mod users;
pub mod web;
