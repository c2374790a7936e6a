//! `/metrics` in the Prometheus text format.
//!
//! One recorder per process ([`install_recorder`]) receives what the scheduler records
//! (see [`crate::scheduler::metrics`]) and what [`track_requests`] records per HTTP
//! request. Gauges that describe the present (running runs, jobs by state, the database
//! pool) are set at scrape time from the live state, so nothing on the hot paths keeps
//! them up to date.
//!
//! Access: on the main address a signed-in session or `Authorization: Bearer <token>`
//! (`[metrics] token`); [`open_router`] serves it without credentials on the separate
//! `[metrics] bind` address.

use std::sync::OnceLock;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use subtle::ConstantTimeEq as _;

use super::auth::AuthSession;
use crate::web::state::AppState;

/// HTTP requests answered, by `route` (the matched path template), `method` and `status`.
pub const HTTP_REQUESTS: &str = "batchboard_http_requests_total";
/// How long HTTP requests took to answer, in seconds, by `route` and `method`.
pub const HTTP_DURATION: &str = "batchboard_http_request_duration_seconds";
/// Runs going on in this process right now.
pub const RUNS_RUNNING: &str = "batchboard_runs_running";
/// Runs due but waiting for a free slot in this process.
pub const RUNS_QUEUED: &str = "batchboard_runs_queued";
/// Claims of runs queued for any instance (PostgreSQL), by `result`: `runs` or `empty`
/// (another instance was first, or nothing was due).
pub const QUEUED_CLAIMS: &str = "batchboard_queued_claims_total";
/// Runs this instance claimed from those queued for any instance.
pub const RUNS_CLAIMED: &str = "batchboard_runs_claimed_total";
/// Jobs by `state`: `scheduled`, `paused`, `running` (a run of it is going on here) or
/// `removed` (gone from the settings file); each job counts once, in the first of
/// `removed`, `running`, `paused`, `scheduled` that applies.
pub const JOBS: &str = "batchboard_jobs";
/// Connections open in the database pool.
pub const DB_POOL_SIZE: &str = "batchboard_db_pool_connections";
/// Open connections of the database pool that are idle.
pub const DB_POOL_IDLE: &str = "batchboard_db_pool_idle_connections";

/// Bucket bounds of every histogram; all of them measure seconds, from a fast HTTP
/// answer to an hour-long run.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    3600.0,
];

const JOB_STATES: [&str; 4] = ["scheduled", "paused", "running", "removed"];

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's Prometheus recorder on the first call and returns its handle;
/// later calls (another app in the same test process) return the same one. `None` when
/// another recorder was installed first, and then `/metrics` answers 503.
pub fn install_recorder() -> Option<&'static PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let installed = PrometheusBuilder::new()
                .set_buckets(SECONDS_BUCKETS)
                .and_then(PrometheusBuilder::install_recorder);
            match installed {
                Ok(handle) => {
                    describe();
                    crate::scheduler::metrics::start_recording();
                    start_upkeep(handle.clone());
                    Some(handle)
                }
                Err(error) => {
                    tracing::warn!(%error, "metrics are not recorded: no Prometheus recorder");
                    None
                }
            }
        })
        .as_ref()
}

/// How often histogram samples are folded into their buckets between scrapes.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Histogram samples wait in a queue until upkeep folds them into buckets; with no
/// scrape for a long time that queue would grow with every run. A plain thread rather
/// than a task: the recorder outlives any one tokio runtime (tests start many).
fn start_upkeep(handle: PrometheusHandle) {
    let started = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                handle.run_upkeep();
            }
        });
    if let Err(error) = started {
        tracing::warn!(%error, "metrics upkeep thread not started: histograms fold at scrapes only");
    }
}

/// The `# HELP` lines of the web layer's metrics and the scheduler's.
fn describe() {
    crate::scheduler::metrics::describe();
    metrics::describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route template, method and status."
    );
    metrics::describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "How long HTTP requests took to answer, by route template and method."
    );
    metrics::describe_gauge!(RUNS_RUNNING, "Runs whose handler is going in this process.");
    metrics::describe_gauge!(
        RUNS_QUEUED,
        "Runs due but waiting for a free slot in this process."
    );
    metrics::describe_gauge!(
        JOBS,
        "Jobs by state: scheduled, paused, running or removed."
    );
    metrics::describe_counter!(
        QUEUED_CLAIMS,
        "Claims of runs queued for any instance, by result: runs, or empty."
    );
    metrics::describe_counter!(
        RUNS_CLAIMED,
        "Runs this instance claimed from those queued for any instance."
    );
    metrics::describe_gauge!(DB_POOL_SIZE, "Open connections in the database pool.");
    metrics::describe_gauge!(DB_POOL_IDLE, "Idle connections in the database pool.");
}

/// Middleware: counts each request and its latency under its route's path template
/// (`/jobs/{name}`, never the raw path, so the series stay few). Layered on routers
/// whose routes are all added, since only they know the matched path.
pub async fn track_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS, "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The method as a label; odd methods share one value so a client cannot make series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// `GET /metrics` on the main address: for a signed-in user or the bearer token.
pub async fn scrape(State(state): State<AppState>, request: Request) -> Response {
    let signed_in = request
        .extensions()
        .get::<AuthSession>()
        .is_some_and(|auth| auth.user.is_some());
    let token_ok = state
        .metrics
        .token
        .as_deref()
        .is_some_and(|token| bearer_matches(request.headers(), token));
    if !(signed_in || token_ok) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "unauthorized",
        )
            .into_response();
    }
    render(&state).await
}

/// A router with only `GET /metrics`, open to anyone: for `[metrics] bind`.
pub fn open_router(state: AppState) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(state): State<AppState>| async move { render(&state).await }),
        )
        .with_state(state)
}

/// Whether `headers` carry `Authorization: Bearer <token>`, compared in constant time.
fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|given| bool::from(given.trim().as_bytes().ct_eq(token.as_bytes())))
}

/// Sets the gauges of the present, then renders everything recorded.
async fn render(state: &AppState) -> Response {
    let Some(handle) = install_recorder() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "metrics are not available").into_response();
    };
    set_present_gauges(state).await;
    // So the histograms include the samples since the last periodic upkeep.
    handle.run_upkeep();
    let content_type = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
    ([(header::CONTENT_TYPE, content_type)], handle.render()).into_response()
}

#[allow(clippy::cast_precision_loss)] // counts far below 2^53
async fn set_present_gauges(state: &AppState) {
    let live = state.scheduler.live_runs().all();
    let queued = live.iter().filter(|run| run.is_queued()).count();
    metrics::gauge!(RUNS_RUNNING).set(live.len().saturating_sub(queued) as f64);
    metrics::gauge!(RUNS_QUEUED).set(queued as f64);
    let claims = state.scheduler.claim_stats();
    metrics::counter!(QUEUED_CLAIMS, "result" => "runs")
        .absolute(claims.looks.saturating_sub(claims.empty));
    metrics::counter!(QUEUED_CLAIMS, "result" => "empty").absolute(claims.empty);
    metrics::counter!(RUNS_CLAIMED).absolute(claims.claimed);
    match state.store.jobs().await {
        Ok(jobs) => {
            let mut counts = [0_u64; JOB_STATES.len()];
            for job in &jobs {
                let state = if job.removed_at.is_some() {
                    3
                } else if live.iter().any(|run| run.job_id == job.id) {
                    2
                } else if job.paused {
                    1
                } else {
                    0
                };
                counts[state] += 1;
            }
            for (state, count) in JOB_STATES.iter().zip(counts) {
                metrics::gauge!(JOBS, "state" => *state).set(count as f64);
            }
        }
        // The other metrics are still worth serving; the job gauges keep their values.
        Err(error) => tracing::warn!(%error, "metrics: could not read the jobs"),
    }
    if let Some((size, idle)) = state.store.pool_stats() {
        metrics::gauge!(DB_POOL_SIZE).set(f64::from(size));
        metrics::gauge!(DB_POOL_IDLE).set(idle as f64);
    }
}
