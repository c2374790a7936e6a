//! One leader decides the scheduled fires. Leadership is a lease in the database
//! (`leadership`), taken and renewed by one statement whose time is the database's: a
//! live term is renewed by its holder only; an expired one may be taken by anyone, as a
//! new term. No session advisory lock, so it works behind transaction-mode poolers.
//!
//! The leader trusts its term only until its own monotonic clock says that the lease
//! may be about to run out, counted from when it *asked* for the renewal: a slow or
//! failed renewal never stretches the trust, and the leader steps down before anyone
//! else may be elected.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::store::SharedStore;

/// The lease of the instance that decides scheduled fires.
pub const SCHEDULER_LEASE: &str = "scheduler";

/// How often the lease is renewed (or asked for).
pub const RENEW_EVERY: Duration = Duration::from_secs(5);

/// How long a term lasts without renewal, by the database's clock.
pub const TERM: chrono::Duration = chrono::Duration::seconds(15);

/// How long after asking for a renewal the leader still trusts its term: a renewal
/// period short of the term, so that it steps down well before the lease can expire.
pub const TRUST: Duration = Duration::from_secs(10);

/// The current term of this instance, as the scheduler follows it: `Some(elected_at)`
/// while it leads (a new value is a new term), `None` while it does not.
pub type Leading = watch::Receiver<Option<DateTime<Utc>>>;

/// Asks for the scheduler lease in the background and publishes whether this instance
/// holds it.
pub struct Elector {
    stop: CancellationToken,
    task: JoinHandle<()>,
    leading: Leading,
}

impl Elector {
    /// Asks once at once (so the scheduler starts knowing whether it leads), then every
    /// [`RENEW_EVERY`].
    pub async fn start(store: SharedStore, clock: SharedClock, id: &str) -> Self {
        let (sender, leading) = watch::channel(None);
        let mut candidate = Candidate {
            store,
            clock,
            id: id.to_owned(),
            sender,
            trusted_until: None,
        };
        candidate.ask().await;
        let stop = CancellationToken::new();
        let task = tokio::spawn(candidate.run(stop.clone()));
        Self {
            stop,
            task,
            leading,
        }
    }

    /// Follows this instance's leadership.
    pub fn leading(&self) -> Leading {
        self.leading.clone()
    }

    /// Stops asking, and resigns a term held, so another instance takes over at once.
    pub async fn stop(self) {
        self.stop.cancel();
        if let Err(error) = self.task.await {
            tracing::error!(%error, "the leadership task failed");
        }
    }
}

struct Candidate {
    store: SharedStore,
    clock: SharedClock,
    id: String,
    sender: watch::Sender<Option<DateTime<Utc>>>,
    /// While leading: when the trust in the term runs out.
    trusted_until: Option<Instant>,
}

impl Candidate {
    async fn run(mut self, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(RENEW_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            let trust_ends = self.trusted_until;
            tokio::select! {
                () = stop.cancelled() => break,
                _ = ticks.tick() => self.ask().await,
                () = async {
                    match trust_ends {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {
                    tracing::warn!("stepping down: the scheduler lease could not be renewed in time");
                    self.step_down();
                }
            }
        }
        self.resign().await;
    }

    async fn ask(&mut self) {
        let asked = Instant::now();
        let answer = match crate::instance::now(&self.store, &self.clock).await {
            Ok(now) => {
                self.store
                    .claim_leadership(SCHEDULER_LEASE, &self.id, TERM, now)
                    .await
            }
            Err(error) => Err(error),
        };
        match answer {
            Ok(Some(term)) if term.holder == self.id => {
                self.trusted_until = Some(asked + TRUST);
                let elected_at = Some(term.elected_at);
                if *self.sender.borrow() != elected_at {
                    tracing::info!(elected_at = %term.elected_at, "leading the scheduler");
                    self.sender.send_replace(elected_at);
                }
            }
            Ok(_) => self.step_down(),
            Err(error) => {
                // Trust runs out on its own timer; a failed renewal does not end it early
                // either, so a blip does not move the leadership.
                tracing::warn!(%error, "could not ask for the scheduler lease");
            }
        }
    }

    fn step_down(&mut self) {
        self.trusted_until = None;
        if self.sender.borrow().is_some() {
            tracing::info!("no longer leading the scheduler");
            self.sender.send_replace(None);
        }
    }

    async fn resign(&mut self) {
        let Some(elected_at) = *self.sender.borrow() else {
            return;
        };
        self.step_down();
        if let Err(error) = self
            .store
            .resign_leadership(SCHEDULER_LEASE, &self.id, elected_at)
            .await
        {
            tracing::warn!(%error, "could not resign the scheduler lease; it expires instead");
        }
    }
}
