//! Alerts: telling people when a job needs them.
//!
//! Targets (`[[alerts]]`: a webhook, or the server's log) hear of the events they chose
//! for the jobs they chose: `dead`, `recovered`, `failed`, `late` (a dead man's switch,
//! `expect_success_within`) and `slow` (`expect_duration_under`). The watcher reads the
//! scheduler's events, so a run never waits for an alert; each delivery runs in the
//! background with retries and backoff, and is recorded for the alerts page.
//!
//! Across instances: a run ends on one instance, which alone sends its `dead`, `failed`
//! or `slow`. A `late` goes out from the instance whose insert opens the job's trouble
//! in the database, and a `recovered` from the one whose delete closes it, so each goes
//! out once per episode, also across restarts.

mod deliver;
mod payload;
mod rules;
mod watch;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::Url;
use tokio::sync::Semaphore;

use crate::clock::SharedClock;
use crate::store::{DeliveryStatus, SharedStore};
pub use deliver::{FIRST_RETRY, MAX_ATTEMPTS};
use payload::{Alert, Detail};
pub use rules::{AlertEvent, AlertSettings, AlertTarget, Destination, JobExpectations};
pub use watch::CHECK_EVERY;

/// Deliveries attempted at once; more wait, so a burst of failures cannot open
/// thousands of connections.
const SENDING_AT_ONCE: usize = 8;

/// Deliveries under way (waiting, sending or backing off) at most. Past it new alerts
/// are dropped with a warning: a flood of failures (or of test alerts) against a
/// receiver that is down must not grow without bound in memory.
const MAX_UNDER_WAY: usize = 1000;

/// How long a pending delivery may go untouched before another sender takes it over.
/// A live delivery touches its row at every attempt, at most 16 s plus a 10 s answer
/// apart, unless hundreds wait for the 8 sending slots; one taken over too soon is sent
/// twice, which a webhook must bear anyway (a delivered answer can be lost).
pub const STALLED_AFTER: std::time::Duration = std::time::Duration::from_secs(300);

/// The most stalled deliveries taken over at one look (every 30 s).
const RESUMED_AT_ONCE: usize = 100;

/// The alerts of one process: its settings, and what delivers them. Cheap to clone.
#[derive(Clone)]
pub struct Alerts {
    shared: Arc<Shared>,
}

struct Shared {
    settings: AlertSettings,
    public_url: Option<Url>,
    store: SharedStore,
    clock: SharedClock,
    // Building a client fails only when TLS cannot be set up; every delivery then says so.
    client: Result<reqwest::Client, String>,
    sending: Semaphore,
    under_way: AtomicUsize,
}

/// One delivery under way; counted down when it ends, however it ends.
struct UnderWay(Arc<Shared>);

impl Drop for UnderWay {
    fn drop(&mut self) {
        self.0.under_way.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A test alert could not be sent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AlertError {
    #[error("there is no alert target named {0:?}")]
    UnknownTarget(String),
    #[error("too many alerts are waiting to be delivered; try again in a minute")]
    Busy,
}

impl Alerts {
    pub fn new(
        settings: AlertSettings,
        public_url: Option<Url>,
        store: SharedStore,
        clock: SharedClock,
    ) -> Self {
        let client = crate::jobs::outbound_client()
            .connect_timeout(deliver::CONNECT_TIMEOUT)
            // A redirect could carry the payload somewhere the operator did not name.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| format!("the HTTP client could not be set up: {error}"));
        Self {
            shared: Arc::new(Shared {
                settings,
                public_url,
                store,
                clock,
                client,
                sending: Semaphore::new(SENDING_AT_ONCE),
                under_way: AtomicUsize::new(0),
            }),
        }
    }

    pub fn settings(&self) -> &AlertSettings {
        &self.shared.settings
    }

    /// Sends a test alert to `target` in the background, asked for by `by`.
    ///
    /// # Errors
    /// [`AlertError::UnknownTarget`] when no target has that name.
    pub fn send_test(&self, target: &str, by: &str) -> Result<(), AlertError> {
        let found = self
            .shared
            .settings
            .target(target)
            .ok_or_else(|| AlertError::UnknownTarget(target.to_owned()))?
            .clone();
        let alert = Alert {
            event: AlertEvent::Test,
            job: None,
            run_id: None,
            at: self.shared.clock.now(),
            detail: Detail::Test {
                target: found.name.clone(),
                by: by.to_owned(),
            },
        };
        if !self.deliver(found, alert) {
            return Err(AlertError::Busy);
        }
        Ok(())
    }

    /// Delivers `alert` to every target that hears of it, each in the background.
    fn raise(&self, alert: &Alert) {
        let Some(job) = alert.job.as_deref() else {
            return;
        };
        for target in self.shared.settings.targets_for(job, alert.event) {
            if !self.deliver(target.clone(), alert.clone()) {
                tracing::warn!(target = %target.name, event = %alert.event, %job, "an alert was dropped: {MAX_UNDER_WAY} deliveries are already under way");
            }
        }
    }

    /// Starts delivering `alert` to `target`, unless [`MAX_UNDER_WAY`] are.
    fn deliver(&self, target: AlertTarget, alert: Alert) -> bool {
        self.under_way(|shared| deliver::deliver(shared, target, alert))
    }

    /// Takes over the deliveries left pending by a sender that stopped (a process
    /// killed or restarted mid-delivery, on this machine or another) and goes on with
    /// their attempts. A delivery whose target is no longer configured fails, saying so.
    async fn resume_stalled(&self) {
        let now = self.shared.clock.now();
        let stalled_before = now - chrono::Duration::from_std(STALLED_AFTER).unwrap_or_default();
        let room = MAX_UNDER_WAY.saturating_sub(self.shared.under_way.load(Ordering::Relaxed));
        let limit = u32::try_from(room.min(RESUMED_AT_ONCE)).unwrap_or(0);
        if limit == 0 {
            return;
        }
        let alerts = self.shared.store.alerts();
        let stalled = match alerts
            .adopt_stalled_deliveries(stalled_before, now, limit)
            .await
        {
            Ok(stalled) => stalled,
            Err(error) => {
                tracing::warn!(%error, "could not look for alert deliveries left pending");
                return;
            }
        };
        for delivery in stalled {
            let Some(target) = self.shared.settings.target(&delivery.target).cloned() else {
                let gone = "the alert target is no longer configured";
                let (id, attempts) = (delivery.id, delivery.attempts);
                let failed = DeliveryStatus::Failed;
                if let Err(error) = alerts
                    .update_delivery(id, failed, attempts, Some(gone), now)
                    .await
                {
                    tracing::warn!(delivery = id, %error, "could not record an alert delivery attempt");
                }
                continue;
            };
            // Past the bound it stays pending, and is taken over again once it has gone
            // untouched as long again.
            self.under_way(|shared| deliver::resume(shared, target, delivery));
        }
    }

    /// Runs a delivery in the background, unless [`MAX_UNDER_WAY`] are under way.
    fn under_way<F, Fut>(&self, delivery: F) -> bool
    where
        F: FnOnce(Arc<Shared>) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let before = self.shared.under_way.fetch_add(1, Ordering::Relaxed);
        let under_way = UnderWay(Arc::clone(&self.shared));
        if before >= MAX_UNDER_WAY {
            return false;
        }
        let delivery = delivery(Arc::clone(&self.shared));
        tokio::spawn(async move {
            delivery.await;
            drop(under_way);
        });
        true
    }
}
