//! The handlers that ship with Batchboard, and the demo job set.
//!
//! | handler          | does                                                          |
//! |------------------|---------------------------------------------------------------|
//! | `command`        | runs a program (no shell), its output becomes the run's log   |
//! | `http`           | sends one HTTP request and judges the response status         |
//! | `prune_history`  | deletes old runs and their log lines, in small batches        |
//! | `demo_inventory` | Demo: pretends to check stock levels, fails now and then      |
//! | `demo_prices`    | Demo: pretends to refresh prices, is rate limited now and then|
//! | `demo_webhook`   | Demo: pretends to deliver a webhook with a secret header      |
//!
//! [`builtins`] is the one place where handlers are registered. Adding a job type means
//! one file here with a struct implementing [`JobHandler`](crate::job::JobHandler), plus
//! one line in [`builtins`]; an application embedding Batchboard can instead call
//! [`RegistryBuilder::handler`] on the builder it gets from [`builtins`].

mod command;
mod demo;
mod http;
mod prune_history;

#[cfg(test)]
pub(crate) mod test_support;

pub use command::{CommandHandler, CommandParams, INHERITED_BY_DEFAULT, VariableName};
pub use demo::{
    DemoInventoryHandler, DemoInventoryParams, DemoPricesHandler, DemoPricesParams,
    DemoWebhookHandler, DemoWebhookParams,
};
pub(crate) use http::outbound_client;
pub use http::{HttpHandler, HttpParams, RequestBody};
pub use prune_history::{PruneHistoryHandler, PruneHistoryParams};

use crate::alerts::{AlertEvent, AlertSettings, AlertTarget, Destination};
use crate::job::{JobSettings, RegistryBuilder};
use crate::store::SharedStore;

/// Every built-in handler, by the name a job's `handler` field uses.
///
/// Call [`RegistryBuilder::build`] on the result, after adding handlers of your own
/// if you embed Batchboard (a later registration of the same name replaces a built-in).
pub fn builtins(store: SharedStore) -> RegistryBuilder {
    RegistryBuilder::default()
        .handler("command", CommandHandler)
        .handler("http", HttpHandler::new())
        .handler("prune_history", PruneHistoryHandler::new(store))
        .handler("demo_inventory", DemoInventoryHandler)
        .handler("demo_prices", DemoPricesHandler)
        .handler("demo_webhook", DemoWebhookHandler)
}

/// The jobs used when there is no settings file: short intervals so that someone trying
/// Batchboard sees runs, retries and logs within a minute, one cron job, and the daily
/// history pruning a real installation wants too. Every description starts with "Demo:".
pub fn demo_jobs() -> Vec<JobSettings> {
    let job = |name: &str, handler: &str, description: &str| JobSettings {
        name: name.to_owned(),
        handler: handler.to_owned(),
        description: Some(format!("Demo: {description}")),
        ..JobSettings::default()
    };
    vec![
        JobSettings {
            every: Some("30s".into()),
            max_attempts: Some(3),
            backoff: Some("10s".into()),
            max_backoff: Some("1m".into()),
            params: Some(serde_json::json!({ "items": 50, "supplier": "acme" })),
            ..job(
                "inventory-sync",
                "demo_inventory",
                "checks stock levels against a pretend supplier; about one run in ten \
                 fails (the supplier API times out) and is retried",
            )
        },
        JobSettings {
            every: Some("1m".into()),
            max_attempts: Some(4),
            backoff: Some("15s".into()),
            params: Some(serde_json::json!({ "items": 40 })),
            ..job(
                "price-refresh",
                "demo_prices",
                "refreshes prices from a pretend price API that sometimes answers \
                 'slow down' (rate limited, retried after 30s)",
            )
        },
        JobSettings {
            every: Some("10s".into()),
            params: Some(serde_json::json!({ "event": "order.shipped" })),
            ..job(
                "order-webhook",
                "demo_webhook",
                "delivers a pretend webhook; its authorization header shows as [redacted] \
                 in the log",
            )
        },
        JobSettings {
            cron: Some("*/2 * * * *".into()),
            timeout: Some("1m".into()),
            params: Some(serde_json::json!({
                "program": "sh",
                "args": [
                    "-c",
                    "for table in orders customers invoices; do echo \"vacuuming $table\"; \
                     sleep 1; done; echo 'BATCHBOARD checked=3 updated=1'",
                ],
            })),
            ..job(
                "vacuum-tables",
                "command",
                "a shell script on a cron schedule (every two minutes) that reports its \
                 counts with a 'BATCHBOARD checked=N updated=M' line",
            )
        },
        JobSettings {
            every: Some("2m".into()),
            params: Some(shell(
                "echo \"exporting yesterday's orders\"; sleep 2; \
                 echo 'BATCHBOARD checked=120 updated=120'",
            )),
            ..job(
                "report-extract",
                "command",
                "the first link of a chain: exports orders every two minutes; \
                 report-build runs when it succeeds",
            )
        },
        JobSettings {
            after: Some(vec!["report-extract".into()]),
            params: Some(shell(
                "echo 'building the sales report'; sleep 1; echo 'BATCHBOARD checked=120 updated=1'",
            )),
            ..job(
                "report-build",
                "command",
                "runs after report-extract succeeds (after = [\"report-extract\"]), \
                 with no schedule of its own",
            )
        },
        JobSettings {
            after: Some(vec!["report-build".into()]),
            params: Some(shell("echo 'publishing the sales report'")),
            ..job(
                "report-publish",
                "command",
                "the last link: publishes the report once report-build has succeeded",
            )
        },
        JobSettings {
            cron: Some("30 3 * * *".into()),
            params: Some(serde_json::json!({ "older_than": "30d" })),
            ..job(
                "prune-history",
                "prune_history",
                "deletes runs older than 30 days, every night at 03:30 UTC",
            )
        },
    ]
}

/// The alert target used with the demo jobs: the server's log, so that a new user sees
/// alerts on the alerts page (and in the terminal) without setting up a webhook.
pub fn demo_alerts() -> AlertSettings {
    AlertSettings {
        targets: vec![AlertTarget {
            name: "demo-log".to_owned(),
            destination: Destination::Log,
            events: vec![AlertEvent::Dead, AlertEvent::Recovered, AlertEvent::Failed],
            jobs: None,
        }],
        jobs: std::collections::BTreeMap::new(),
    }
}

/// The params of a `command` job running `script` with `sh -c`.
fn shell(script: &str) -> serde_json::Value {
    serde_json::json!({ "program": "sh", "args": ["-c", script] })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobSpec;

    #[test]
    fn every_demo_job_is_valid_and_says_it_is_a_demo() {
        for settings in demo_jobs() {
            let spec = JobSpec::from_settings(&settings)
                .unwrap_or_else(|error| panic!("{} is invalid: {error}", settings.name));
            assert!(spec.description.starts_with("Demo:"), "{}", spec.name);
        }
    }

    #[test]
    fn every_demo_job_names_a_builtin_handler_and_its_params_decode() {
        let registry = builtins(test_support::unused_store()).build();
        for settings in demo_jobs() {
            let handler = registry
                .get(&settings.handler)
                .unwrap_or_else(|| panic!("{} has no handler", settings.name));
            let params = settings
                .params
                .clone()
                .unwrap_or_else(|| serde_json::json!({}));
            if let Err(error) = handler.check_params(&params) {
                panic!("{}: {error}", settings.name);
            }
        }
    }

    #[test]
    fn demo_handlers_are_labelled_as_demos() {
        let registry = builtins(test_support::unused_store()).build();
        let names: Vec<&str> = registry.names().collect();
        assert_eq!(
            names,
            [
                "command",
                "demo_inventory",
                "demo_prices",
                "demo_webhook",
                "http",
                "prune_history"
            ]
        );
    }
}
