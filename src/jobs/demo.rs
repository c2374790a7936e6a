//! Demo handlers: they do no real work, but behave like real jobs do (progress, counts,
//! structured log lines, the occasional timeout or rate limit), so that someone trying
//! Batchboard sees every part of the console within a minute. Their names start with
//! `demo_`; the jobs using them say "Demo:" in their description.

use std::time::Duration;

use rand::Rng;
use serde::Deserialize;
use tracing::{info, warn};

use crate::job::{JobContext, JobError, JobHandler, Outcome};

/// Demo: pretends to check stock levels against a supplier.
#[derive(Debug, Clone, Copy, Default)]
pub struct DemoInventoryHandler;

/// `demo_inventory`'s params.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoInventoryParams {
    /// How many items to check.
    #[serde(default = "default_inventory_items")]
    pub items: Items,
    /// How long checking one item takes, in milliseconds.
    #[serde(default = "default_item_delay_ms")]
    pub item_delay_ms: DelayMs,
    /// The supplier named in the log.
    #[serde(default = "default_supplier")]
    pub supplier: String,
    /// The chance that a run fails retryably with "supplier API timed out".
    #[serde(default = "one_in_ten")]
    pub fail_chance: Chance,
}

/// Demo: pretends to refresh prices from an API that sometimes asks to slow down.
#[derive(Debug, Clone, Copy, Default)]
pub struct DemoPricesHandler;

/// `demo_prices`'s params.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoPricesParams {
    /// How many prices to check.
    #[serde(default = "default_price_items")]
    pub items: Items,
    /// How long checking one price takes, in milliseconds.
    #[serde(default = "default_item_delay_ms")]
    pub item_delay_ms: DelayMs,
    /// The chance that a run is rate limited (retry after 30 seconds).
    #[serde(default = "one_in_ten")]
    pub rate_limit_chance: Chance,
}

/// Demo: pretends to deliver a webhook carrying a secret header, which the run log
/// shows as `[redacted]`.
#[derive(Debug, Clone, Copy, Default)]
pub struct DemoWebhookHandler;

/// `demo_webhook`'s params.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoWebhookParams {
    /// Where the pretend delivery goes.
    #[serde(default = "default_webhook_url")]
    pub url: String,
    /// The event it announces.
    #[serde(default = "default_event")]
    pub event: String,
    /// How long the pretend delivery takes, in milliseconds.
    #[serde(default = "default_webhook_delay_ms")]
    pub delay_ms: DelayMs,
}

/// A number of demo items: 1 to 10,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u32")]
pub struct Items(u32);

impl TryFrom<u32> for Items {
    type Error = String;

    fn try_from(n: u32) -> Result<Self, Self::Error> {
        if (1..=10_000).contains(&n) {
            Ok(Self(n))
        } else {
            Err("items must be between 1 and 10000".into())
        }
    }
}

/// A demo delay in milliseconds: at most 5 seconds, so demo runs stay short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct DelayMs(u64);

impl TryFrom<u64> for DelayMs {
    type Error = String;

    fn try_from(ms: u64) -> Result<Self, Self::Error> {
        if ms <= 5_000 {
            Ok(Self(ms))
        } else {
            Err("a demo delay can be at most 5000 ms".into())
        }
    }
}

impl DelayMs {
    fn as_duration(self) -> Duration {
        Duration::from_millis(self.0)
    }
}

/// A probability from 0 to 1.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "f64")]
pub struct Chance(f64);

impl TryFrom<f64> for Chance {
    type Error = String;

    fn try_from(p: f64) -> Result<Self, Self::Error> {
        if (0.0..=1.0).contains(&p) {
            Ok(Self(p))
        } else {
            Err("a chance must be between 0 and 1".into())
        }
    }
}

fn default_inventory_items() -> Items {
    Items(50)
}
fn default_price_items() -> Items {
    Items(40)
}
fn default_item_delay_ms() -> DelayMs {
    DelayMs(20)
}
fn default_webhook_delay_ms() -> DelayMs {
    DelayMs(200)
}
fn default_supplier() -> String {
    "acme".into()
}
fn default_webhook_url() -> String {
    "https://hooks.example.com/orders".into()
}
fn default_event() -> String {
    "order.shipped".into()
}
fn one_in_ten() -> Chance {
    Chance(0.1)
}

/// About one item in twenty changes, so a run has a handful of interesting log lines.
const CHANGE_CHANCE: f64 = 0.05;
const PRICES_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Everything random about one demo run, drawn before the first await (the thread's
/// random generator cannot be held across one).
#[derive(Debug)]
struct Plan {
    /// Per item, the old and new value if it changes.
    changes: Vec<Option<(u32, u32)>>,
    /// The item at which the run fails, if it does.
    fail_at: Option<usize>,
}

impl Plan {
    fn draw(rng: &mut impl Rng, items: Items, max_value: u32, fail: Chance) -> Self {
        let changes = (0..items.0)
            .map(|_| {
                let old = rng.random_range(0..=max_value);
                rng.random_bool(CHANGE_CHANCE).then(|| {
                    let step = rng.random_range(1..=max_value / 10 + 1);
                    let new = if old >= step && rng.random_bool(0.5) {
                        old - step
                    } else {
                        old + step
                    };
                    (old, new)
                })
            })
            .collect::<Vec<_>>();
        // Fail in the second half, so a failed run has shown some progress first.
        let fail_at = rng
            .random_bool(fail.0)
            .then(|| rng.random_range(changes.len() / 2..changes.len()));
        Self { changes, fail_at }
    }
}

/// How a walk over the items ended.
enum Walk {
    Finished { checked: u64, updated: u64 },
    StoppedAt { checked: u64 },
}

/// Visits every item of `plan`, waiting `delay` on the scheduler's clock before each,
/// reporting progress and counts, and calling `on_change` for each changed item.
async fn walk(
    ctx: &JobContext,
    plan: &Plan,
    delay: Duration,
    on_change: impl Fn(usize, u32, u32),
) -> Result<Walk, JobError> {
    let total = plan.changes.len() as u64;
    let (mut checked, mut updated) = (0, 0);
    ctx.progress(0, total);
    for (index, change) in plan.changes.iter().enumerate() {
        if ctx.is_cancelled() {
            return Err(JobError::Cancelled);
        }
        if !delay.is_zero() {
            ctx.sleep(delay).await?;
        }
        if plan.fail_at == Some(index) {
            return Ok(Walk::StoppedAt { checked });
        }
        checked += 1;
        ctx.add_checked(1);
        if let Some((old, new)) = *change {
            on_change(index, old, new);
            updated += 1;
            ctx.add_updated(1);
        }
        ctx.progress(checked, total);
    }
    Ok(Walk::Finished { checked, updated })
}

impl JobHandler for DemoInventoryHandler {
    type Params = DemoInventoryParams;

    async fn run(&self, params: DemoInventoryParams, ctx: JobContext) -> Result<Outcome, JobError> {
        let plan = Plan::draw(&mut rand::rng(), params.items, 500, params.fail_chance);
        let supplier = params.supplier.as_str();
        info!(supplier, items = params.items.0, "checking stock levels");
        let walked = walk(
            &ctx,
            &plan,
            params.item_delay_ms.as_duration(),
            |index, old, new| {
                info!(
                    sku = %sku(index),
                    old_stock = old,
                    new_stock = new,
                    "stock level changed"
                );
            },
        )
        .await?;
        match walked {
            Walk::Finished { checked, updated } => {
                info!(checked, updated, "stock check finished");
                Ok(Outcome::summary(format!(
                    "checked {checked} items, {updated} stock levels changed"
                )))
            }
            Walk::StoppedAt { checked } => {
                warn!(supplier, checked, "supplier API did not answer within 5s");
                Err(JobError::retryable("supplier API timed out"))
            }
        }
    }
}

impl JobHandler for DemoPricesHandler {
    type Params = DemoPricesParams;

    async fn run(&self, params: DemoPricesParams, ctx: JobContext) -> Result<Outcome, JobError> {
        let plan = Plan::draw(
            &mut rand::rng(),
            params.items,
            20_000,
            params.rate_limit_chance,
        );
        info!(items = params.items.0, "refreshing prices");
        let walked = walk(
            &ctx,
            &plan,
            params.item_delay_ms.as_duration(),
            |index, old, new| {
                info!(
                    sku = %sku(index),
                    old_price = %cents(old),
                    new_price = %cents(new),
                    "price changed"
                );
            },
        )
        .await?;
        match walked {
            Walk::Finished { checked, updated } => {
                info!(checked, updated, "price refresh finished");
                Ok(Outcome::summary(format!(
                    "checked {checked} prices, {updated} changed"
                )))
            }
            Walk::StoppedAt { checked } => {
                warn!(
                    checked,
                    retry_after_s = PRICES_RETRY_AFTER.as_secs(),
                    "price API answered 429 Too Many Requests"
                );
                Err(JobError::RateLimited {
                    retry_after: PRICES_RETRY_AFTER,
                    message: "the price API asked us to slow down".into(),
                })
            }
        }
    }
}

impl JobHandler for DemoWebhookHandler {
    type Params = DemoWebhookParams;

    async fn run(&self, params: DemoWebhookParams, ctx: JobContext) -> Result<Outcome, JobError> {
        let delivery = format!("dlv_{:08x}", rand::rng().random::<u32>());
        info!(
            url = %params.url,
            event = %params.event,
            delivery = %delivery,
            // A fake token: the run log must show this field as [redacted].
            authorization = "Bearer bb_demo_9f8e7d6c5b4a",
            "delivering webhook"
        );
        ctx.sleep(params.delay_ms.as_duration()).await?;
        ctx.add_checked(1);
        ctx.add_updated(1);
        info!(delivery = %delivery, status = 200, "webhook delivered");
        Ok(Outcome::summary(format!("delivered {}", params.event)))
    }
}

fn sku(index: usize) -> String {
    format!("SKU-{:05}", 10_000 + index)
}

fn cents(value: u32) -> String {
    format!("{}.{:02}", value / 100, value % 100)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::job::Progress;
    use crate::jobs::test_support::{collect_events, context, snapshot};

    fn params<P: serde::de::DeserializeOwned>(json: serde_json::Value) -> P {
        serde_json::from_value(json).expect("valid params")
    }

    #[tokio::test]
    async fn inventory_checks_every_item_and_reports_progress() {
        let ctx = context(CancellationToken::new());
        let params = params(serde_json::json!({
            "items": 200, "item_delay_ms": 0, "fail_chance": 0.0,
        }));
        let outcome = DemoInventoryHandler
            .run(params, ctx.clone())
            .await
            .expect("no failure was asked for");
        let counters = ctx.counters();
        assert_eq!(counters.checked, 200);
        assert_eq!((counters.done, counters.total), (200, Some(200)));
        assert_eq!(
            outcome.summary,
            Some(format!(
                "checked 200 items, {} stock levels changed",
                counters.updated
            ))
        );
    }

    #[tokio::test]
    async fn inventory_logs_each_change_with_its_sku_and_stock_levels() {
        let (events, _guard) = collect_events();
        let ctx = context(CancellationToken::new());
        let params = params(serde_json::json!({
            "items": 1000, "item_delay_ms": 0, "fail_chance": 0.0,
        }));
        DemoInventoryHandler
            .run(params, ctx.clone())
            .await
            .expect("succeeds");
        let changes: Vec<_> = snapshot(&events)
            .into_iter()
            .filter(|e| e.message == "stock level changed")
            .collect();
        assert_eq!(changes.len() as u64, ctx.counters().updated);
        let first = changes.first().expect("1000 items give some changes");
        assert!(first.fields["sku"].starts_with("SKU-"));
        assert!(first.fields.contains_key("old_stock"));
        assert!(first.fields.contains_key("new_stock"));
    }

    #[tokio::test]
    async fn inventory_fails_retryably_when_the_pretend_supplier_times_out() {
        let ctx = context(CancellationToken::new());
        let params = params(serde_json::json!({
            "items": 10, "item_delay_ms": 0, "fail_chance": 1.0,
        }));
        let error = DemoInventoryHandler
            .run(params, ctx.clone())
            .await
            .expect_err("failure was asked for");
        assert!(matches!(error, JobError::Retryable(_)), "{error:?}");
        assert_eq!(error.to_string(), "supplier API timed out");
        assert!((5..10).contains(&ctx.counters().checked));
    }

    #[tokio::test]
    async fn prices_are_rate_limited_for_thirty_seconds_when_the_api_says_so() {
        let ctx = context(CancellationToken::new());
        let params = params(serde_json::json!({
            "items": 10, "item_delay_ms": 0, "rate_limit_chance": 1.0,
        }));
        let error = DemoPricesHandler
            .run(params, ctx)
            .await
            .expect_err("a rate limit was asked for");
        match error {
            JobError::RateLimited { retry_after, .. } => {
                assert_eq!(retry_after, Duration::from_secs(30));
            }
            other => panic!("expected a rate limit, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn prices_run_to_completion_without_a_rate_limit() {
        let ctx = context(CancellationToken::new());
        let params = params(serde_json::json!({
            "item_delay_ms": 0, "rate_limit_chance": 0.0,
        }));
        DemoPricesHandler
            .run(params, ctx.clone())
            .await
            .expect("succeeds");
        assert_eq!(ctx.counters().checked, 40);
    }

    #[tokio::test]
    async fn the_webhook_demo_logs_an_authorization_field_and_succeeds() {
        let (events, _guard) = collect_events();
        let ctx = context(CancellationToken::new());
        let outcome = DemoWebhookHandler
            .run(params(serde_json::json!({ "delay_ms": 0 })), ctx.clone())
            .await
            .expect("succeeds");
        assert_eq!(outcome.summary.as_deref(), Some("delivered order.shipped"));
        assert_eq!(
            ctx.counters(),
            Progress {
                checked: 1,
                updated: 1,
                done: 0,
                total: None
            }
        );
        let events = snapshot(&events);
        let delivery = events
            .iter()
            .find(|e| e.message == "delivering webhook")
            .expect("the delivery is logged");
        assert!(delivery.fields["authorization"].starts_with("Bearer "));
    }

    #[tokio::test]
    async fn a_cancelled_demo_run_stops_with_cancelled() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let result = DemoInventoryHandler
            .run(
                params(serde_json::json!({ "fail_chance": 0.0 })),
                context(cancel),
            )
            .await;
        assert!(matches!(result, Err(JobError::Cancelled)), "{result:?}");
    }

    #[test]
    fn about_one_item_in_twenty_changes() {
        let mut rng = StdRng::seed_from_u64(7);
        let plan = Plan::draw(&mut rng, Items(10_000), 500, Chance(0.0));
        let changed = plan.changes.iter().flatten().count();
        assert!((300..=700).contains(&changed), "{changed}");
        assert!(plan.changes.iter().flatten().all(|(old, new)| old != new));
        assert_eq!(plan.fail_at, None);
    }

    #[test]
    fn out_of_range_params_are_refused() {
        let refuse = |json| serde_json::from_value::<DemoInventoryParams>(json).is_err();
        assert!(refuse(serde_json::json!({ "items": 0 })));
        assert!(refuse(serde_json::json!({ "fail_chance": 1.5 })));
        assert!(refuse(serde_json::json!({ "item_delay_ms": 60_000 })));
        assert!(refuse(serde_json::json!({ "colour": "blue" })));
    }
}
