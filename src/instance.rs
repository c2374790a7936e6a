//! This process as one of the instances sharing the database: it registers, renews a
//! heartbeat while it lives, and says it stopped when it does. A run is another
//! process's to interrupt only once its instance is gone (see [`live_instance_ids`]),
//! so a `serve` starting beside a `batchboard run` never takes over that run.

pub mod job_changes;
pub mod leader;
mod serve_lock;

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::store::{InstanceKind, NewInstance, SharedStore, StoreResult};

pub use leader::{Elector, Leading};
pub use serve_lock::ServeLock;

/// How often an instance renews its heartbeat.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

/// How often each instance prepares storage for the coming days (PostgreSQL's log
/// partitions, made a week ahead; see [`crate::store::Store::prepare_storage`]).
const PREPARE_STORAGE_EVERY: Duration = Duration::from_secs(3600);

/// How long an instance counts as alive after its last heartbeat: three missed beats,
/// so one slow write does not make a live process look gone.
pub const LEASE: chrono::Duration = chrono::Duration::seconds(15);

/// The time liveness is judged by: the database's when it has a clock of its own,
/// `clock` otherwise.
///
/// # Errors
/// When the database does not answer.
pub async fn now(store: &SharedStore, clock: &SharedClock) -> StoreResult<DateTime<Utc>> {
    Ok(store.database_now().await?.unwrap_or_else(|| clock.now()))
}

/// The ids of the instances alive now.
///
/// # Errors
/// When the database does not answer.
pub async fn live_instance_ids(
    store: &SharedStore,
    clock: &SharedClock,
) -> StoreResult<HashSet<String>> {
    let now = now(store, clock).await?;
    Ok(store
        .instances(now)
        .await?
        .into_iter()
        .filter(|instance| instance.is_alive(now, LEASE))
        .map(|instance| instance.id)
        .collect())
}

/// How far back stopped instances are still shown.
pub const STOPPED_SHOWN_FOR: chrono::Duration = chrono::Duration::hours(24);

/// The instances as the console and the API show them.
pub struct Overview {
    /// The time liveness was judged by.
    pub now: DateTime<Utc>,
    /// Running instances and those stopped within [`STOPPED_SHOWN_FOR`], newest first.
    pub instances: Vec<crate::store::InstanceRecord>,
    /// The instance holding a live scheduler lease.
    pub leader: Option<String>,
}

impl Overview {
    /// Reads the instances and the leader.
    ///
    /// # Errors
    /// When the database does not answer.
    pub async fn read(store: &SharedStore, clock: &SharedClock) -> StoreResult<Self> {
        let now = now(store, clock).await?;
        let leader = store
            .leadership(leader::SCHEDULER_LEASE)
            .await?
            .filter(|term| term.expires_at > now)
            .map(|term| term.holder);
        let instances = store.instances(now - STOPPED_SHOWN_FOR).await?;
        Ok(Self {
            now,
            instances,
            leader,
        })
    }

    /// Whether `instance` is alive and leads.
    pub fn leads(&self, instance: &crate::store::InstanceRecord) -> bool {
        self.leader.as_deref() == Some(instance.id.as_str()) && instance.is_alive(self.now, LEASE)
    }
}

/// This process's registration, with its heartbeat task.
pub struct Registration {
    id: String,
    store: SharedStore,
    clock: SharedClock,
    stop: CancellationToken,
    heartbeat: JoinHandle<()>,
}

impl Registration {
    /// Registers this process as `id` and starts its heartbeat.
    ///
    /// # Errors
    /// When the database does not answer.
    pub async fn register(
        store: SharedStore,
        clock: SharedClock,
        id: &str,
        kind: InstanceKind,
    ) -> StoreResult<Self> {
        let instance = NewInstance {
            id: id.to_owned(),
            kind,
            host: hostname(),
            pid: std::process::id(),
        };
        store
            .register_instance(&instance, now(&store, &clock).await?)
            .await?;
        let stop = CancellationToken::new();
        let heartbeat = tokio::spawn(beat(
            store.clone(),
            clock.clone(),
            id.to_owned(),
            stop.clone(),
        ));
        Ok(Self {
            id: id.to_owned(),
            store,
            clock,
            stop,
            heartbeat,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Stops the heartbeat and records that this process stopped, so that nobody waits
    /// for its lease to run out.
    pub async fn deregister(self) {
        self.stop.cancel();
        if let Err(error) = self.heartbeat.await {
            tracing::error!(%error, "the heartbeat task failed");
        }
        let stopped = match now(&self.store, &self.clock).await {
            Ok(now) => self.store.stop_instance(&self.id, now).await,
            Err(error) => Err(error),
        };
        if let Err(error) = stopped {
            tracing::warn!(%error, "could not record that this instance stopped; its lease runs out instead");
        }
    }
}

async fn beat(store: SharedStore, clock: SharedClock, id: String, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(HEARTBEAT_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    // Start-up prepared storage; a server that runs for days prepares the days ahead.
    let mut storage_prepared = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if storage_prepared.elapsed() >= PREPARE_STORAGE_EVERY {
            storage_prepared = tokio::time::Instant::now();
            if let Err(error) = store.prepare_storage(clock.now()).await {
                tracing::warn!(%error, "could not prepare storage for the coming days");
            }
        }
        let renewed = match now(&store, &clock).await {
            Ok(now) => store.heartbeat_instance(&id, now).await,
            Err(error) => Err(error),
        };
        match renewed {
            Ok(true) => {}
            Ok(false) => tracing::error!(
                instance = %id,
                "this instance is marked stopped in the database; its runs may be taken over"
            ),
            Err(error) => tracing::warn!(%error, "could not renew this instance's heartbeat"),
        }
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|name| name.trim().to_owned())
        })
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
