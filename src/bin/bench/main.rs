//! `batchboard-bench`: measures Batchboard on this machine and prints its figures, the
//! last line as one JSON object.
//!
//! `batchboard-bench scheduler --jobs N --every 1s --secs S [--burst]` runs N trivial jobs
//! (one log line each) through the real scheduler, with full recording on a temporary
//! SQLite file.

mod scheduler;
mod sys;

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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Scheduler(args) => runtime.block_on(scheduler::run(args)),
    }
}
