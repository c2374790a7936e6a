//! The `batchboard` command line. All the work is in the library; this file only parses
//! arguments and calls it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use batchboard::app::{self, Application, JobOverview, Options};
use batchboard::config::Settings;
use batchboard::store;
use batchboard::{jobs, telemetry, tokens};
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
            let (token, secret) =
                tokens::issue(&store, &user, &name, role, expires.as_deref(), now).await?;
            // On stdout with `println!`, never through `tracing`: the token must not land
            // in the logs.
            println!("{}", secret.expose());
            let until = token.expires_at.map_or_else(
                || "until revoked".into(),
                |at| format!("until {}", at.to_rfc3339()),
            );
            eprintln!(
                "created token {name} for {user} ({}, valid {until}); it is shown only this once",
                token.role
            );
        }
        TokenCommand::Revoke { name, user } => {
            tokens::revoke(&store, &user, &name, now).await?;
            println!("revoked token {name} of {user}");
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
    let stop = app::shutdown_signal().context("listening for Ctrl-C and SIGTERM")?;
    let application = Application::build(settings, Options::default()).await?;
    let address = application.address();
    tracing::info!(%address, jobs = application.jobs_source(), "batchboard is running");
    application.run_until_stopped(stop).await?;
    Ok(ExitCode::SUCCESS)
}

async fn list_jobs(settings: Settings) -> anyhow::Result<ExitCode> {
    let store = store::connect(&settings.database_url).await?;
    println!(
        "{:<28} {:<10} {:<22} {:<28} LAST RUN",
        "JOB", "STATE", "SCHEDULE", "NEXT RUN"
    );
    for JobOverview {
        job,
        settings,
        state,
        last_run,
    } in app::job_overviews(&store).await?
    {
        let schedule = match (&settings.every, &settings.cron) {
            (Some(every), _) => format!("every {every}"),
            (None, Some(cron)) => format!("cron {cron}"),
            (None, None) => match settings.after.as_deref() {
                Some([first, ..]) => format!("after {first}"),
                _ => "-".into(),
            },
        };
        let next = job
            .next_run_at
            .map_or_else(|| "-".into(), |at| at.to_rfc3339());
        let last = last_run.map_or_else(
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
            job.name,
            state.as_str(),
            schedule,
            next
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_job(settings: Settings, job: &str) -> anyhow::Result<ExitCode> {
    let run = app::run_job_once(settings, job).await?;
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
