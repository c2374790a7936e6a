//! `batchboard-bench`: measures Batchboard on this machine and prints its figures, the
//! last line as one JSON object.
//!
//! `batchboard-bench scheduler --jobs N --every 1s --secs S [--burst] [--database-url URL]`
//! runs N trivial jobs (one log line each) through the real scheduler, with full
//! recording on a temporary SQLite file or the database of `URL` (PostgreSQL).
//!
//! `batchboard-bench scheduler … --instances 3 --database-url postgres://…` runs three
//! instances on one PostgreSQL database, as three servers would (registration, election,
//! announcements); `batchboard-bench cluster` is that with a cluster's defaults
//! (`--instances 3 --jobs 100000 --every 1m --secs 120`) and reports runs and claims per
//! instance and the local database server's CPU.
//!
//! `batchboard-bench web --jobs 1000 --runs 1000000` seeds a database, serves it, signs in
//! and loads the dashboard, a job page, a run page and the runs view with 16 concurrent
//! clients, and a static file of the dashboard's size from the same server.

mod scheduler;
mod sys;
mod web;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "batchboard-bench", about = "Benchmarks for Batchboard")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fire N jobs through the real scheduler and measure lateness and throughput.
    Scheduler(scheduler::Args),
    /// Several instances sharing one PostgreSQL database: runs and claims per instance,
    /// lateness, and the database server's CPU.
    Cluster(scheduler::ClusterArgs),
    /// Serve a seeded database and measure the console's pages against a static file.
    Web(web::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Scheduler(args) => runtime.block_on(scheduler::run(args)),
        Command::Cluster(args) => runtime.block_on(scheduler::run(args.into())),
        Command::Web(args) => runtime.block_on(web::run(args)),
    }
}
