//! A team's own Batchboard binary: the whole scheduler, plus one job type of its own.
//!
//! `import_orders` pages through a JSON API and reports what it saw. Put a job using it
//! in `batchboard.toml` next to where you run the binary:
//!
//! ```toml
//! [[jobs]]
//! name = "import-orders"
//! handler = "import_orders"
//! every = "15m"
//! params = { url = "https://shop.example.com/api/orders", page_size = 200 }
//! ```
//!
//! then `cargo run --example custom_handler`. Without a settings file the built-in demo
//! jobs run and `import_orders` is registered but unused.

use std::time::Duration;

use anyhow::Context as _;
use batchboard::app::{Application, Options, shutdown_signal};
use batchboard::config::Settings;
use batchboard::job::{JobContext, JobError, JobHandler, Outcome};
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use serde::Deserialize;
use tracing::{debug, info};

/// Imports orders from `GET {url}?page=N&per_page=M`, which answers
/// `{"orders": [{"id": 7, "changed": true}, …], "total": 1234}`.
struct ImportOrders {
    // One client, so every run of every job shares its connection pool.
    client: reqwest::Client,
}

/// The job's `params`. A job whose params do not decode is refused at start-up, so the
/// URL is checked here rather than at the first run.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportOrdersParams {
    url: ApiUrl,
    #[serde(default = "default_page_size")]
    page_size: u32,
}

fn default_page_size() -> u32 {
    100
}

#[derive(Deserialize)]
#[serde(try_from = "String")]
struct ApiUrl(reqwest::Url);

impl TryFrom<String> for ApiUrl {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        reqwest::Url::parse(&text)
            .map(Self)
            .map_err(|error| format!("url {text:?}: {error}"))
    }
}

#[derive(Deserialize)]
struct Page {
    orders: Vec<Order>,
    total: Option<u64>,
}

#[derive(Deserialize)]
struct Order {
    id: u64,
    changed: bool,
}

impl JobHandler for ImportOrders {
    type Params = ImportOrdersParams;

    async fn run(&self, params: ImportOrdersParams, ctx: JobContext) -> Result<Outcome, JobError> {
        // Every event logged here, at DEBUG or above, lands in this run's log.
        info!(url = %params.url.0, attempt = ctx.attempt(), "importing orders");
        let (mut checked, mut changed) = (0_u64, 0_u64);
        for page_number in 1_u32.. {
            let page = tokio::select! {
                page = self.fetch(&params, page_number) => page?,
                // Cancelled by an operator, a timeout or shutdown: stop now, mid-request.
                () = ctx.cancelled() => return Err(JobError::Cancelled),
            };
            checked += page.orders.len() as u64;
            ctx.add_checked(page.orders.len() as u64);
            for order in page.orders.iter().filter(|order| order.changed) {
                // The real work would go here: save the order.
                changed += 1;
                ctx.add_updated(1);
                debug!(order = order.id, "order changed");
            }
            if let Some(total) = page.total {
                ctx.progress(checked, total);
            }
            if page.orders.len() < params.page_size as usize {
                break;
            }
        }
        info!(checked, changed, "import finished");
        Ok(Outcome::summary(format!(
            "{checked} orders checked, {changed} changed"
        )))
    }
}

impl ImportOrders {
    fn new() -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .context("building the HTTP client")?;
        Ok(Self { client })
    }

    /// One page; the error says whether retrying can help.
    async fn fetch(&self, params: &ImportOrdersParams, page: u32) -> Result<Page, JobError> {
        let mut url = params.url.0.clone();
        url.query_pairs_mut()
            .append_pair("page", &page.to_string())
            .append_pair("per_page", &params.page_size.to_string());
        let response = self
            .client
            .get(url)
            .send()
            .await
            // An `anyhow::Error` becomes `JobError::Retryable`: the network may recover.
            .with_context(|| format!("fetching page {page}"))?;
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            let seconds = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|value| value.to_str().ok()?.parse().ok())
                .unwrap_or(60);
            return Err(JobError::RateLimited {
                retry_after: Duration::from_secs(seconds),
                message: format!("the API answered {status} on page {page}"),
            });
        }
        if status.is_client_error() {
            // A wrong URL or a revoked credential does not fix itself: no retries.
            return Err(JobError::fatal(format!(
                "the API answered {status} on page {page}"
            )));
        }
        let page = response
            .error_for_status()
            .with_context(|| format!("page {page}"))?
            .json()
            .await
            .with_context(|| format!("reading page {page}"))?;
        Ok(page)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    batchboard::telemetry::init();
    // Batchboard builds reqwest without a default TLS crypto provider: pick one, once.
    // It fails only when one is installed already, which is just as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let import_orders = ImportOrders::new()?;

    let settings = Settings::load(None)?;
    let options = Options {
        handlers: Box::new(move |builder| builder.handler("import_orders", import_orders)),
        ..Options::default()
    };
    let stop = shutdown_signal()?;
    let application = Application::build(settings, options).await?;
    let address = application.address();
    info!(%address, jobs = application.jobs_source(), "batchboard is running");
    application.run_until_stopped(stop).await
}
