//! The scheduler benchmark: N jobs, each logging one line, fired by the real scheduler
//! with full recording on a temporary SQLite file, or the database of `--database-url`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use batchboard::clock::{SharedClock, SystemClock};
use batchboard::instance::{Elector, Registration};
use batchboard::job::{JobContext, JobError, JobHandler, JobSettings, Outcome, Registry};
use batchboard::schedule::parse_duration;
use batchboard::scheduler::{self, SchedulerConfig, SchedulerParts};
use batchboard::store::writer::Writer;
use batchboard::store::{self, InstanceKind, RunFilter, RunStatus};
use chrono::{DateTime, SubsecRound, Utc};
use futures::{StreamExt as _, TryStreamExt as _};

use crate::sys;

#[derive(clap::Args)]
pub struct Args {
    /// How many jobs.
    #[arg(long, default_value_t = 10_000)]
    jobs: usize,
    /// Each job's interval.
    #[arg(long, default_value = "1s")]
    every: String,
    /// How long to fire, in seconds.
    #[arg(long, default_value_t = 30)]
    secs: u64,
    /// All jobs due at the same instant (the worst case), instead of phases spread
    /// evenly over the interval.
    #[arg(long)]
    burst: bool,
    /// Runs executing at once.
    #[arg(long, default_value_t = 256)]
    max_concurrent_runs: usize,
    /// The database to record in (e.g. `postgres://…`), instead of a temporary SQLite
    /// file. Its jobs named `bench-…` are reused; runs of earlier benchmarks are not
    /// counted (they were due before this one started).
    #[arg(long)]
    database_url: Option<String>,
    /// Instances sharing the database (PostgreSQL only), as separate servers would: each
    /// with its own pool, writer, scheduler, heartbeat, election and announcements. One
    /// leads and queues the fires; every one claims and runs them.
    #[arg(long, default_value_t = 1)]
    instances: usize,
    /// The jobs' concurrency policy: `forbid` (the default, decided against the runs
    /// going), `allow` or `replace`.
    #[arg(long, default_value = "forbid")]
    concurrency: String,
}

/// `batchboard-bench cluster`: the scheduler benchmark with a cluster's defaults.
#[derive(clap::Args)]
pub struct ClusterArgs {
    /// Instances sharing the database.
    #[arg(long, default_value_t = 3)]
    instances: usize,
    /// How many jobs.
    #[arg(long, default_value_t = 100_000)]
    jobs: usize,
    /// Each job's interval.
    #[arg(long, default_value = "1m")]
    every: String,
    /// How long to fire, in seconds.
    #[arg(long, default_value_t = 120)]
    secs: u64,
    /// Runs executing at once, per instance.
    #[arg(long, default_value_t = 256)]
    max_concurrent_runs: usize,
    /// The PostgreSQL database the instances share.
    #[arg(long)]
    database_url: String,
    /// The jobs' concurrency policy.
    #[arg(long, default_value = "forbid")]
    concurrency: String,
}

impl From<ClusterArgs> for Args {
    fn from(cluster: ClusterArgs) -> Self {
        Self {
            jobs: cluster.jobs,
            every: cluster.every,
            secs: cluster.secs,
            burst: false,
            max_concurrent_runs: cluster.max_concurrent_runs,
            database_url: Some(cluster.database_url),
            instances: cluster.instances,
            concurrency: cluster.concurrency,
        }
    }
}

/// One instance of the benchmark's cluster.
struct Instance {
    handle: scheduler::SchedulerHandle,
    task: tokio::task::JoinHandle<()>,
    writer_task: tokio::task::JoinHandle<()>,
    registration: Option<Registration>,
    elector: Option<Elector>,
    stop_following: tokio_util::sync::CancellationToken,
}

impl Instance {
    /// Starts an instance on `url`; alone (`cluster` false) it leads without an election,
    /// as the benchmark always did.
    async fn start(
        url: &str,
        registry: Registry,
        max_concurrent_runs: usize,
        cluster: bool,
    ) -> anyhow::Result<Self> {
        let store = store::connect(url).await?;
        let clock: SharedClock = Arc::new(SystemClock);
        let config = SchedulerConfig {
            max_concurrent_runs,
            shared_execution: store.backend() == "postgres",
            ..SchedulerConfig::default()
        };
        let (registration, elector) = if cluster {
            let registration = Registration::register(
                store.clone(),
                clock.clone(),
                &config.instance_id,
                InstanceKind::Serve,
            )
            .await?;
            let elector = Elector::start(store.clone(), clock.clone(), registration.id()).await;
            (Some(registration), Some(elector))
        } else {
            (None, None)
        };
        let (writer, writer_task) = Writer::start(store.clone());
        let parts = SchedulerParts {
            store: store.clone(),
            writer,
            registry,
            clock,
            config,
            leading: elector.as_ref().map(Elector::leading),
        };
        let (handle, task) = scheduler::start(parts).await?;
        let stop_following = tokio_util::sync::CancellationToken::new();
        // Its own and the others' queued runs are announced to every instance.
        batchboard::instance::job_changes::follow(
            store,
            handle.clone(),
            stop_following.clone(),
            true,
        )
        .await?;
        Ok(Self {
            handle,
            task,
            writer_task,
            registration,
            elector,
            stop_following,
        })
    }

    /// Stops it; returns what its claim loop did.
    async fn stop(self) -> anyhow::Result<scheduler::ClaimStats> {
        let claims = self.handle.claim_stats();
        self.handle.shutdown();
        self.task.await?;
        self.stop_following.cancel();
        drop(self.handle);
        self.writer_task.await?;
        if let Some(elector) = self.elector {
            elector.stop().await;
        }
        if let Some(registration) = self.registration {
            registration.deregister().await;
        }
        Ok(claims)
    }
}

/// Each handler start: when its run was due, and how late it started, in microseconds.
#[derive(Default)]
struct Lateness(Mutex<Vec<(DateTime<Utc>, i64)>>);

struct Trivial(Arc<Lateness>);

impl JobHandler for Trivial {
    type Params = serde_json::Value;

    async fn run(&self, _params: serde_json::Value, ctx: JobContext) -> Result<Outcome, JobError> {
        let late = (Utc::now() - ctx.scheduled_for())
            .num_microseconds()
            .unwrap_or(i64::MAX);
        if let Ok(mut samples) = self.0.0.lock() {
            samples.push((ctx.scheduled_for(), late));
        }
        tracing::info!(late_us = late, "checked");
        ctx.add_checked(1);
        Ok(Outcome::default())
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    // Runs are still captured into their logs; only stdout stays quiet.
    batchboard::telemetry::init_with_default_filter("warn");
    let interval = parse_duration(&args.every).context("--every")?;
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let store = store::connect(&url).await?;
    anyhow::ensure!(
        args.instances <= 1 || store.backend() == "postgres",
        "several --instances share a PostgreSQL database; give one with --database-url"
    );
    let lateness = Arc::new(Lateness::default());
    let registry = Registry::builder()
        .handler("bench", Trivial(Arc::clone(&lateness)))
        .build();
    let jobs: Vec<JobSettings> = (0..args.jobs)
        .map(|i| JobSettings {
            name: format!("bench-{i:06}"),
            handler: "bench".into(),
            every: Some(args.every.clone()),
            concurrency: Some(args.concurrency.clone()),
            ..JobSettings::default()
        })
        .collect();
    let records = store.sync_jobs(&jobs, Utc::now()).await?;

    // Give the set-up time to place every job's first fire: two seconds, and one more per
    // 2,500 jobs (each is a write and a commit; a slow disk's commits take a millisecond).
    let lead = chrono::Duration::seconds(2)
        + chrono::Duration::milliseconds(
            i64::try_from(args.jobs.saturating_mul(2) / 5).unwrap_or(i64::MAX),
        );
    let start = (Utc::now() + lead).trunc_subsecs(6);
    let period = chrono::Duration::from_std(interval)?;
    let phase = |i: usize| -> chrono::Duration {
        if args.burst {
            chrono::Duration::zero()
        } else {
            period * i32::try_from(i).unwrap_or(i32::MAX)
                / i32::try_from(args.jobs.max(1)).unwrap_or(i32::MAX)
        }
    };
    // Several at once: on PostgreSQL each is a round trip, and 10,000 one after the other
    // would overrun the two seconds given and make the first fires late.
    futures::stream::iter(records.iter().enumerate())
        .map(|(i, record)| store.set_next_run(record.id, Some(start + phase(i))))
        .buffer_unordered(16)
        .try_collect::<Vec<bool>>()
        .await?;
    anyhow::ensure!(
        Utc::now() < start,
        "placing the first fires took longer than the {} s given; fewer --jobs",
        lead.num_seconds()
    );
    let end = start + chrono::Duration::seconds(i64::try_from(args.secs)?);
    // A scheduler keeps a stored next fire only within one period (and the look-ahead)
    // of its start, so the instances start just before the first fires; the first
    // period (at least two seconds) overlaps their start-up and is not measured.
    let measured_from = (start + period.max(chrono::Duration::seconds(2))).min(end);
    let expected: u64 = (0..args.jobs)
        .map(|i| {
            let first = start + phase(i);
            let skipped = fires_between(first, period, measured_from);
            fires_between(first, period, end) - skipped
        })
        .sum();
    let instances_at = start - chrono::Duration::milliseconds(250);
    if let Ok(wait) = (instances_at - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }

    let cpu_before = sys::cpu_seconds().unwrap_or(0.0);
    let database_cpu_before = sys::cpu_seconds_of("postgres");
    let cluster = args.instances > 1;
    let mut instances = Vec::new();
    for _ in 0..args.instances.max(1) {
        let instance =
            Instance::start(&url, registry.clone(), args.max_concurrent_runs, cluster).await?;
        instances.push(instance);
    }
    let wait = (end - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    tokio::time::sleep(wait).await;
    // Read while the instances' connections live: a backend's CPU goes with it. Only
    // meaningful for a server on this machine; SQLite runs inside this process.
    let database_cpu = sys::cpu_seconds_of("postgres") - database_cpu_before;
    let mut claims = Vec::new();
    for instance in instances {
        claims.push(instance.stop().await?);
    }
    let cpu = sys::cpu_seconds().unwrap_or(0.0) - cpu_before;

    let mut samples: Vec<i64> = std::mem::take(
        &mut *lateness
            .0
            .lock()
            .map_err(|_| anyhow::anyhow!("lateness lock poisoned"))?,
    )
    .into_iter()
    .filter(|(due, _)| *due >= measured_from && *due < end)
    .map(|(_, late)| late)
    .collect();
    let by_instance = count_succeeded(&store, measured_from, end).await?;
    let recorded: u64 = by_instance.values().sum();
    let mut shares: Vec<u64> = by_instance.values().copied().collect();
    shares.sort_unstable_by(|a, b| b.cmp(a));
    samples.sort_unstable();
    let achieved = recorded.min(samples.len() as u64);
    let ms = |q: f64| -> f64 {
        if samples.is_empty() {
            return f64::NAN;
        }
        let index = ((samples.len() - 1) as f64 * q).round() as usize;
        samples[index] as f64 / 1000.0
    };
    let (p50, p99, max) = (ms(0.50), ms(0.99), ms(1.0));
    let measured_secs = (end - measured_from).num_milliseconds() as f64 / 1000.0;
    let runs_per_s = recorded as f64 / measured_secs;
    let peak = sys::peak_rss_mb().unwrap_or(f64::NAN);
    let mode = if args.burst { "burst" } else { "spread" };
    println!(
        "scheduler benchmark: {} jobs every {} for {} s ({mode}) on {}, {} instance(s)",
        args.jobs,
        args.every,
        args.secs,
        store.backend(),
        args.instances.max(1)
    );
    println!("measured: fires due from {measured_from} to {end} ({measured_secs} s)");
    println!("runs per instance: {shares:?}");
    if store.backend() == "postgres" {
        let per_second: Vec<f64> = shares
            .iter()
            .map(|runs| (*runs as f64 / measured_secs).round())
            .collect();
        println!("runs per second per instance: {per_second:?}");
        for (index, claims) in claims.iter().enumerate() {
            println!(
                "instance {index}: {} claims, {} empty, {} runs claimed",
                claims.looks, claims.empty, claims.claimed
            );
        }
        println!("database CPU seconds (local postgres processes): {database_cpu:.2}");
    }
    println!(
        "fires expected {expected}, achieved {achieved} (runs recorded as succeeded: {recorded})"
    );
    println!("lateness ms: p50 {p50:.2}, p99 {p99:.2}, max {max:.2}");
    println!("runs recorded per second: {runs_per_s:.0}");
    println!("cpu seconds: {cpu:.2}, peak RSS: {peak:.1} MB");
    let json = serde_json::json!({
        "mode": mode,
        "backend": store.backend(),
        "jobs": args.jobs,
        "instances": args.instances.max(1),
        "runs_per_instance": shares,
        "expected": expected,
        "achieved": achieved,
        "p50_ms": round2(p50),
        "p99_ms": round2(p99),
        "max_ms": round2(max),
        "runs_per_s": runs_per_s.round(),
        "cpu_s": round2(cpu),
        "database_cpu_s": round2(database_cpu),
        "claims": claims.iter().map(|c| c.looks).collect::<Vec<_>>(),
        "empty_claims": claims.iter().map(|c| c.empty).collect::<Vec<_>>(),
        "peak_rss_mb": round2(peak),
    });
    println!("{json}");
    Ok(())
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// How many fires of a job first due at `first` fall in `[first, end)`.
fn fires_between(first: DateTime<Utc>, period: chrono::Duration, end: DateTime<Utc>) -> u64 {
    if first >= end || period <= chrono::Duration::zero() {
        return 0;
    }
    let span = (end - first).num_microseconds().unwrap_or(i64::MAX);
    let step = period.num_microseconds().unwrap_or(i64::MAX).max(1);
    u64::try_from((span - 1) / step + 1).unwrap_or(0)
}

/// Succeeded scheduled runs due in `[start, end)` by the instance that ran them, read
/// back from the database.
async fn count_succeeded(
    store: &store::SharedStore,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> anyhow::Result<std::collections::BTreeMap<String, u64>> {
    let mut count = std::collections::BTreeMap::new();
    let mut before = None;
    loop {
        let page = store
            .runs(&RunFilter {
                status: Some(RunStatus::Succeeded),
                before,
                limit: 10_000,
                ..RunFilter::default()
            })
            .await?;
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        for run in page
            .iter()
            .filter(|run| run.scheduled_for >= start && run.scheduled_for < end)
        {
            *count.entry(run.instance_id.clone()).or_default() += 1;
        }
    }
    Ok(count)
}
