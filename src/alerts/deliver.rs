//! Delivering one alert to one target, in the background: recorded first, then tried
//! with backoff until it is delivered or the attempts run out, every attempt recorded.
//! A run never waits for any of it. A delivery whose sender stopped is taken over from
//! its record and goes on from its next attempt.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::CONTENT_TYPE;

use super::payload::Alert;
use super::{AlertTarget, Destination, Shared};
use crate::store::{DeliveryStatus, NewDelivery, StalledDelivery};

/// Attempts per delivery, the first included.
pub const MAX_ATTEMPTS: u32 = 6;
/// The wait before the second attempt, doubled after each failure (1, 2, 4, 8, 16 s).
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// How long a receiver may take to answer; it cannot hold a delivery slot longer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) async fn deliver(shared: Arc<Shared>, target: AlertTarget, alert: Alert) {
    let run = match alert.run_id {
        Some(id) => shared.store.run(id).await.ok().flatten(),
        None => None,
    };
    let body = alert
        .payload(run.as_ref(), shared.public_url.as_ref())
        .to_string();
    let recorded = shared
        .store
        .alerts()
        .record_delivery(&NewDelivery {
            event: alert.event.as_str().to_owned(),
            target: target.name.clone(),
            job: alert.job.clone(),
            run_id: alert.run_id,
            payload: body.clone(),
            created_at: shared.clock.now(),
        })
        .await;
    let id = match recorded {
        Ok(id) => Some(id),
        Err(error) => {
            // Delivered anyway: the alert matters more than its record.
            tracing::warn!(target = %target.name, event = %alert.event, %error, "could not record an alert delivery");
            None
        }
    };
    let event = alert.event.as_str();
    attempt_until_done(&shared, &target, id, event, &body, 0).await;
}

/// Goes on with `stalled`, a delivery whose sender stopped, from its next attempt.
pub(super) async fn resume(shared: Arc<Shared>, target: AlertTarget, stalled: StalledDelivery) {
    tracing::info!(delivery = stalled.id, target = %target.name, event = %stalled.event, "taking over an alert delivery left pending");
    let StalledDelivery {
        id,
        event,
        attempts,
        payload,
        ..
    } = stalled;
    attempt_until_done(&shared, &target, Some(id), &event, &payload, attempts).await;
}

/// Sends `body` after the `done` attempts already made, until it is delivered or the
/// attempts run out, recording each attempt on delivery `id`.
async fn attempt_until_done(
    shared: &Shared,
    target: &AlertTarget,
    id: Option<i64>,
    event: &str,
    body: &str,
    done: u32,
) {
    // The wait after attempt n is 2^(n-1) s, as if the attempts had not stopped.
    let mut wait = FIRST_RETRY * 2u32.saturating_pow(done).min(16);
    for attempt in done + 1..=MAX_ATTEMPTS {
        let outcome = {
            let _slot = shared.sending.acquire().await;
            send(shared, target, event, body).await
        };
        let now = shared.clock.now();
        let status = match &outcome {
            Ok(()) => DeliveryStatus::Delivered,
            Err(_) if attempt == MAX_ATTEMPTS => DeliveryStatus::Failed,
            Err(_) => DeliveryStatus::Pending,
        };
        if let Err(error) = &outcome {
            tracing::warn!(target = %target.name, %event, attempt, %error, "an alert was not delivered");
        }
        if let Some(id) = id
            && let Err(error) = shared
                .store
                .alerts()
                .update_delivery(
                    id,
                    status,
                    attempt,
                    outcome.as_ref().err().map(String::as_str),
                    now,
                )
                .await
        {
            tracing::warn!(delivery = id, %error, "could not record an alert delivery attempt");
        }
        if status != DeliveryStatus::Pending {
            return;
        }
        let next = now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
        shared.clock.sleep_until(next).await;
        wait *= 2;
    }
}

/// One attempt; the error says what went wrong without the URL (a secret).
async fn send(
    shared: &Shared,
    target: &AlertTarget,
    event: &str,
    body: &str,
) -> Result<(), String> {
    match &target.destination {
        Destination::Log => {
            tracing::info!(target: "batchboard::alerts", alert_target = %target.name, %event, payload = %body, "alert");
            Ok(())
        }
        Destination::Webhook { url, headers } => {
            let client = shared.client.as_ref().map_err(Clone::clone)?;
            let response = client
                .post(url.clone())
                .headers(headers.clone())
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_owned())
                .timeout(REQUEST_TIMEOUT)
                .send()
                .await
                .map_err(|error| describe(&error))?;
            let status = response.status();
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("the receiver answered {status}"))
            }
        }
    }
}

/// A request error as a sentence, with its causes and without the URL.
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "no answer in time"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "the request failed"
    };
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    // The innermost cause says most ("Connection refused (os error 111)").
    match causes.last() {
        Some(cause) => format!("{kind}: {cause}"),
        None => kind.to_owned(),
    }
}
