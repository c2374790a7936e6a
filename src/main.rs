//! The `batchboard` command line. All the work is in the library; this file only parses
//! arguments and calls it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use batchboard::app::{self, Application, Options};
use batchboard::config::Settings;
use batchboard::scheduler::{self, SchedulerParts};
use batchboard::store;
use batchboard::store::writer::Writer;
use batchboard::{jobs, telemetry};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "batchboard",
    version,
    about = "A self-hosted scheduler for recurring batch jobs"
)]
struct Cli {
    /// The settings file (default: $BATCHBOARD_CONFIG, else ./batchboard.toml if present).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the scheduler and the web server (the default).
    Serve,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// List the jobs with their state, next run and last run.
    Jobs,
    /// Run one job once, now, record it, and print how it went.
    Run {
        /// The job's name.
        job: String,
    },
    /// Check a settings file and its jobs without touching the database.
    CheckConfig {
        /// The settings file to check.
        path: PathBuf,
    },
    /// Manage console users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens (`Authorization: Bearer …`).
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token for a user and print it (it is shown only this once).
    Create {
        /// A name for the token, unique among the user's tokens (lowercase letters,
        /// digits, '-', '_', '.').
        name: String,
        /// The user the token acts as.
        #[arg(long)]
        user: String,
        /// viewer, operator or admin; at most the user's role (default: the user's role).
        #[arg(long)]
        role: Option<store::Role>,
        /// How long the token lasts, e.g. 30d or 12h (default: until revoked).
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
    },
    /// Revoke a user's token by its name.
    Revoke {
        /// The token's name.
        name: String,
        /// The token's user.
        #[arg(long)]
        user: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user; the password is the first line of stdin (at least 12 characters).
    Add {
        /// The sign-in name (lowercase letters, digits, '-', '_', '.').
        name: String,
        /// viewer, operator or admin.
        #[arg(long)]
        role: store::Role,
    },
    /// Set a user's password to the first line of stdin (at least 12 characters).
    Passwd {
        /// The sign-in name.
        name: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig { path } => check_config(&path),
        Command::Serve => serve(Settings::load(cli.config.as_deref())?).await,
        Command::Migrate => {
            let settings = Settings::load(cli.config.as_deref())?;
            store::connect(&settings.database_url)
                .await
                .context("migrating the database")?;
            println!("database is up to date");
            Ok(ExitCode::SUCCESS)
        }
        Command::Jobs => list_jobs(Settings::load(cli.config.as_deref())?).await,
        Command::Run { job } => run_job(Settings::load(cli.config.as_deref())?, &job).await,
        Command::User(command) => user(Settings::load(cli.config.as_deref())?, command).await,
        Command::Token(command) => token(Settings::load(cli.config.as_deref())?, command).await,
    }
}

async fn token(settings: Settings, command: TokenCommand) -> anyhow::Result<ExitCode> {
    let store = store::connect(&settings.database_url)
        .await
        .context("opening the database")?;
    let now = chrono::Utc::now();
    match command {
        TokenCommand::Create {
            name,
            user,
            role,
            expires,
        } => {
            let owner = store
                .user_by_name(&user)
                .await?
                .with_context(|| format!("no user named {user:?}"))?;
            let role = role.unwrap_or(owner.role);
            let (token, secret) =
                store::NewApiToken::issue(&owner, &name, role, expires.as_deref(), now)?;
            match store.create_token(&token, now).await {
                Ok(_) => {}
                Err(store::StoreError::Conflict) => {
                    anyhow::bail!("{user} already has a token named {name:?}")
                }
                Err(error) => return Err(error.into()),
            }
            // On stdout with `println!`, never through `tracing`: the token must not land
            // in the logs.
            println!("{}", secret.expose());
            let until = token.expires_at.map_or_else(
                || "until revoked".into(),
                |at| format!("until {}", at.to_rfc3339()),
            );
            eprintln!(
                "created token {name} for {user} ({role}, valid {until}); it is shown only this once"
            );
        }
        TokenCommand::Revoke { name, user } => {
            let owner = store
                .user_by_name(&user)
                .await?
                .with_context(|| format!("no user named {user:?}"))?;
            match store
                .revoke_token(owner.id, store::TokenRef::Name(&name), now)
                .await
            {
                Ok(_) => println!("revoked token {name} of {user}"),
                Err(store::StoreError::NotFound) => {
                    anyhow::bail!("{user} has no live token named {name:?}")
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn user(settings: Settings, command: UserCommand) -> anyhow::Result<ExitCode> {
    let store = store::connect(&settings.database_url)
        .await
        .context("opening the database")?;
    let now = chrono::Utc::now();
    match command {
        UserCommand::Add { name, role } => {
            let password = read_password()?;
            batchboard::users::add_user(&store, &name, role, &password, now).await?;
            println!("added {name} ({role})");
        }
        UserCommand::Passwd { name } => {
            let password = read_password()?;
            batchboard::users::set_password(&store, &name, &password, now).await?;
            println!("password of {name} changed");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The first line of stdin, without its line ending.
fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

fn check_config(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(Some(path))?;
    // The registry is only asked about names and params here; the lazily opened store
    // behind `prune_history` is never connected.
    let store = store::open(&settings.database_url)?;
    let registry = jobs::builtins(store).build();
    let specs = settings.job_specs(&registry)?;
    println!("{}: {} jobs, all valid", path.display(), specs.len());
    Ok(ExitCode::SUCCESS)
}

async fn serve(settings: Settings) -> anyhow::Result<ExitCode> {
    let application = Application::build(settings, Options::default()).await?;
    if let Some(address) = application.address() {
        tracing::info!(%address, jobs = application.jobs_source(), "batchboard is running");
    }
    application
        .run_until_stopped(app::shutdown_signal())
        .await?;
    Ok(ExitCode::SUCCESS)
}

async fn list_jobs(settings: Settings) -> anyhow::Result<ExitCode> {
    let store = store::connect(&settings.database_url).await?;
    let jobs = store.jobs().await?;
    let latest = store.latest_runs().await?;
    println!(
        "{:<28} {:<10} {:<22} {:<28} LAST RUN",
        "JOB", "STATE", "SCHEDULE", "NEXT RUN"
    );
    for job in jobs {
        let settings = job
            .effective_settings()
            .unwrap_or_else(|_| job.defaults.clone());
        let schedule = match (&settings.every, &settings.cron) {
            (Some(every), _) => format!("every {every}"),
            (None, Some(cron)) => format!("cron {cron}"),
            (None, None) => "-".into(),
        };
        let state = if job.removed_at.is_some() {
            "removed"
        } else if job.paused {
            "paused"
        } else if settings.enabled == Some(false) {
            "disabled"
        } else {
            "enabled"
        };
        let next = job
            .next_run_at
            .map_or_else(|| "-".into(), |at| at.to_rfc3339());
        let last = latest.get(&job.id).map_or_else(
            || "never".into(),
            |run| {
                format!(
                    "#{} {} at {}",
                    run.id,
                    run.status,
                    run.started_at.unwrap_or(run.scheduled_for).to_rfc3339()
                )
            },
        );
        println!(
            "{:<28} {:<10} {:<22} {:<28} {last}",
            job.name, state, schedule, next
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_job(mut settings: Settings, job: &str) -> anyhow::Result<ExitCode> {
    let store = store::open(&settings.database_url)?;
    let registry = jobs::builtins(store.clone()).build();
    app::use_demo_jobs_without_file(&mut settings);
    settings.job_specs(&registry)?;
    store.migrate().await?;
    let clock = std::sync::Arc::new(batchboard::clock::SystemClock);
    // Syncing the settings file here would mark every job missing from it as removed,
    // behind the back of a server that may use another file. Only a database that has
    // no jobs at all is seeded from the settings.
    if store.jobs().await?.is_empty() {
        store.sync_jobs(&settings.jobs, chrono::Utc::now()).await?;
    } else if store.job_by_name(job).await?.is_none() && settings.jobs.iter().any(|j| j.name == job)
    {
        anyhow::bail!(
            "job {job:?} is in the settings file but not in the database yet: start `batchboard serve` with this file once"
        );
    }
    let (writer, writer_task) = Writer::start(store.clone());
    let parts = SchedulerParts {
        store: store.clone(),
        writer,
        registry,
        clock,
        config: app::scheduler_config(&settings),
    };
    let run_id = scheduler::run_once(parts, job).await?;
    writer_task.await.context("the writer task failed")?;
    let run = store
        .run(run_id)
        .await?
        .context("the run's row is missing")?;
    println!(
        "run {} of {}: {} in {} ms, {} checked, {} updated",
        run.id,
        run.job_name,
        run.status,
        run.duration_ms.unwrap_or(0),
        run.items_checked,
        run.items_updated
    );
    if let Some(message) = &run.error_message {
        println!("error: {message}");
    }
    Ok(if run.status == store::RunStatus::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
