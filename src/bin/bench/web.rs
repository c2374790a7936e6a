//! The web benchmark: a seeded database served by the real application, the console's
//! pages loaded by concurrent signed-in clients, next to a static file of the same size
//! served by the same server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use batchboard::app::{Application, Options};
use batchboard::config::Settings;
use batchboard::job::JobSettings;
use batchboard::store::{
    self, ClaimResult, LogLine, NewRun, RunFinish, RunStatus, SharedStore, Trigger, WriteBatch,
};
use batchboard::web::WebConfig;
use chrono::{SubsecRound, Utc};

#[derive(clap::Args)]
pub struct Args {
    /// How many jobs.
    #[arg(long, default_value_t = 1000)]
    jobs: usize,
    /// How many runs in the history, spread evenly over the jobs and the last 30 days.
    #[arg(long, default_value_t = 1_000_000)]
    runs: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Requests per page measured (after a warm-up of a tenth as many).
    #[arg(long, default_value_t = 4000)]
    requests: usize,
}

const PASSWORD: &str = "benchmark-admin-password";

pub async fn run(args: Args) -> anyhow::Result<()> {
    batchboard::telemetry::init_with_default_filter("warn");
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let url = format!("sqlite://{}", dir.path().join("web-bench.db").display());
    let jobs: Vec<JobSettings> = (0..args.jobs)
        .map(|i| JobSettings {
            name: format!("bench-job-{i:05}"),
            handler: "command".into(),
            // Far enough out that nothing fires while the pages are measured.
            every: Some("30d".into()),
            description: Some(format!("Benchmark job {i}")),
            params: Some(serde_json::json!({ "program": "true" })),
            ..JobSettings::default()
        })
        .collect();

    let seeding = Instant::now();
    let store = store::connect(&url).await?;
    let records = store.sync_jobs(&jobs, Utc::now()).await?;
    let job_ids: Vec<i64> = records.iter().map(|record| record.id).collect();
    let sample_run = seed_runs(&store, &job_ids, args.runs).await?;
    println!(
        "seeded {} jobs and {} runs in {:.1} s",
        args.jobs,
        args.runs,
        seeding.elapsed().as_secs_f64()
    );
    drop(store);

    let static_dir = dir.path().join("static");
    std::fs::create_dir_all(&static_dir)?;
    for file in ["htmx.min.js", "app.css", "app.js"] {
        let from = WebConfig::default().static_dir.join(file);
        std::fs::copy(&from, static_dir.join(file))
            .with_context(|| format!("copying {}", from.display()))?;
    }
    let settings = Settings {
        database_url: url,
        bind: "127.0.0.1:0".parse()?,
        admin_password: Some(PASSWORD.into()),
        jobs,
        source: Some(dir.path().join("bench.toml")),
        ..Settings::default()
    };
    let options = Options {
        web: WebConfig {
            static_dir: static_dir.clone(),
            ..WebConfig::default()
        },
        ..Options::default()
    };
    let app = Application::build(settings, options).await?;
    let address = app.address();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let base = format!("http://{address}");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let cookie = sign_in(&client, &base).await?;

    let dashboard = format!("{base}/");
    let job_page = format!("{base}/jobs/bench-job-{:05}", args.jobs / 2);
    let run_page = format!("{base}/runs/{sample_run}");
    let runs_view = format!("{base}/runs");
    let dashboard_size = fetch(&client, &dashboard, &cookie).await?;
    // The static file is as large as the dashboard, so the comparison is about the work
    // behind the page, not the bytes on the wire.
    std::fs::write(
        static_dir.join("same-size.html"),
        "x".repeat(dashboard_size),
    )?;
    let static_file = format!("{base}/static/same-size.html");

    let mut results = serde_json::Map::new();
    let mut figures = Vec::new();
    for (name, url) in [
        ("dashboard", &dashboard),
        ("job", &job_page),
        ("run", &run_page),
        ("runs_view", &runs_view),
        ("static", &static_file),
    ] {
        let figure = measure(&client, url, &cookie, args.clients, args.requests).await?;
        println!(
            "{name:<10} {:>8.0} req/s   p50 {:>6.2} ms   p99 {:>6.2} ms   ({} bytes)",
            figure.rps, figure.p50_ms, figure.p99_ms, figure.bytes
        );
        results.insert(
            name.into(),
            serde_json::json!({
                "rps": figure.rps.round(),
                "p50_ms": round2(figure.p50_ms),
                "p99_ms": round2(figure.p99_ms),
                "bytes": figure.bytes,
            }),
        );
        figures.push(figure);
    }
    let ratio = figures[0].rps / figures[3].rps;
    println!("dashboard / static requests per second: {ratio:.2}");
    results.insert("jobs".into(), args.jobs.into());
    results.insert("runs".into(), args.runs.into());
    results.insert("clients".into(), args.clients.into());
    results.insert("dashboard_vs_static_rps".into(), round2(ratio).into());
    let _ = stop.send(());
    server.await??;
    println!("{}", serde_json::Value::Object(results));
    Ok(())
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Inserts `total` finished runs spread over the jobs and the last 30 days, with a few
/// log lines on one of them; returns that run's id.
async fn seed_runs(store: &SharedStore, job_ids: &[i64], total: usize) -> anyhow::Result<i64> {
    const CHUNK: usize = 5000;
    let now = Utc::now().trunc_subsecs(6);
    let span = chrono::Duration::days(30);
    let step = span / i32::try_from(total.max(1)).unwrap_or(i32::MAX);
    let mut sample = None;
    let mut done = 0;
    while done < total {
        let size = CHUNK.min(total - done);
        let inserts: Vec<NewRun> = (done..done + size)
            .map(|i| {
                let started = now - span + step * i32::try_from(i).unwrap_or(i32::MAX);
                NewRun {
                    job_id: job_ids[i % job_ids.len()],
                    trigger: Trigger::Schedule,
                    attempt: 1,
                    first_run_id: None,
                    status: RunStatus::Running,
                    scheduled_for: started,
                    started_at: started,
                    finished_at: None,
                    error_kind: None,
                    error_message: None,
                    instance_id: "bench".into(),
                    exclusive: false,
                }
            })
            .collect();
        let ids = store
            .write_batch(&WriteBatch {
                inserts: inserts.clone(),
                ..WriteBatch::default()
            })
            .await?
            .inserts
            .into_iter()
            .filter_map(ClaimResult::run_id)
            .collect::<Vec<_>>();
        let finishes = ids
            .iter()
            .zip(&inserts)
            .enumerate()
            .map(|(n, (id, run))| {
                let failed = (done + n) % 17 == 0;
                let duration = 200 + ((done + n) % 23) as i64 * 40;
                RunFinish {
                    run_id: *id,
                    status: if failed {
                        RunStatus::Failed
                    } else {
                        RunStatus::Succeeded
                    },
                    started_at: Some(run.started_at),
                    finished_at: run.started_at + chrono::Duration::milliseconds(duration),
                    duration_ms: Some(duration),
                    items_checked: 50,
                    items_updated: 3,
                    items_total: Some(50),
                    error_kind: failed.then(|| "fatal".into()),
                    error_message: failed.then(|| "the upstream said no".into()),
                    summary: None,
                    retry_at: None,
                }
            })
            .collect();
        let logs = if sample.is_none() {
            let run_id = ids[ids.len() / 2];
            sample = Some(run_id);
            (0..40)
                .map(|line| LogLine {
                    run_id,
                    ts: now,
                    level: "INFO".into(),
                    message: format!("checked item {line}"),
                    fields: serde_json::json!({ "sku": format!("SKU-{line:04}"), "stock": line * 7 }),
                })
                .collect()
        } else {
            Vec::new()
        };
        store
            .write_batch(&WriteBatch {
                finishes,
                logs,
                ..WriteBatch::default()
            })
            .await?;
        done += size;
    }
    sample.context("no runs were seeded")
}

/// Signs in as the first admin and returns the session cookie.
async fn sign_in(client: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let page = client.get(format!("{base}/login")).send().await?;
    // The sign-in form's token is checked against a signed cookie, not a session.
    let cookie = named_cookie(&page, "batchboard_login=")
        .context("the login page set no sign-in form cookie")?;
    let html = page.text().await?;
    let token = html
        .split("name=\"csrf_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("the login page has no CSRF token")?
        .to_owned();
    let body = format!("csrf_token={token}&next=%2F&name=admin&password={PASSWORD}");
    let answer = client
        .post(format!("{base}/login"))
        .header(reqwest::header::COOKIE, &cookie)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body)
        .send()
        .await?;
    if answer.status() != reqwest::StatusCode::SEE_OTHER {
        bail!("signing in answered {}", answer.status());
    }
    session_cookie(&answer).context("signing in set no session cookie")
}

fn session_cookie(response: &reqwest::Response) -> Option<String> {
    named_cookie(response, "batchboard_session=")
}

/// The `name=value` of the cookie `response` sets whose text starts with `prefix`.
fn named_cookie(response: &reqwest::Response, prefix: &str) -> Option<String> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with(prefix))
        .and_then(|value| value.split(';').next())
        .map(str::to_owned)
}

async fn fetch(client: &reqwest::Client, url: &str, cookie: &str) -> anyhow::Result<usize> {
    let response = client
        .get(url)
        .header(reqwest::header::COOKIE, cookie)
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("{url} answered {}", response.status());
    }
    Ok(response.bytes().await?.len())
}

struct Figure {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    bytes: usize,
}

/// `requests` requests of `url` from `clients` concurrent clients, after a warm-up.
async fn measure(
    client: &reqwest::Client,
    url: &str,
    cookie: &str,
    clients: usize,
    requests: usize,
) -> anyhow::Result<Figure> {
    let bytes = fetch(client, url, cookie).await?;
    run_load(client, url, cookie, clients, (requests / 10).max(clients)).await?;
    let started = Instant::now();
    let mut latencies = run_load(client, url, cookie, clients, requests).await?;
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies[((latencies.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0
    };
    Ok(Figure {
        rps: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        bytes,
    })
}

async fn run_load(
    client: &reqwest::Client,
    url: &str,
    cookie: &str,
    clients: usize,
    requests: usize,
) -> anyhow::Result<Vec<Duration>> {
    let remaining = Arc::new(std::sync::atomic::AtomicUsize::new(requests));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (client, url, cookie, remaining) = (
            client.clone(),
            url.to_owned(),
            cookie.to_owned(),
            Arc::clone(&remaining),
        );
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            while remaining
                .fetch_update(
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                    |n| n.checked_sub(1),
                )
                .is_ok()
            {
                let sent = Instant::now();
                fetch(&client, &url, &cookie).await?;
                latencies.push(sent.elapsed());
            }
            anyhow::Ok(latencies)
        });
    }
    let mut all = Vec::with_capacity(requests);
    while let Some(joined) = tasks.join_next().await {
        all.extend(joined??);
    }
    Ok(all)
}
