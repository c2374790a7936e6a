//! The watcher: reads the scheduler's events and the clock, and decides which alerts
//! are due. It awaits the database only for the rare writes that decide an episode
//! (a dead run, the first success after trouble, a job found late); deliveries run on
//! their own tasks.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::payload::{Alert, Detail};
use super::{AlertEvent, Alerts};
use crate::scheduler::SchedulerEvent;
use crate::store::{RunStatus, Trouble};

/// How often jobs with `expect_success_within` are checked, and the jobs in trouble
/// re-read (other instances open and close troubles too).
pub const CHECK_EVERY: Duration = Duration::from_secs(30);

impl Alerts {
    /// Watches `events` until `stop`; with nothing to watch (see
    /// [`AlertSettings::is_empty`](super::AlertSettings::is_empty)), does nothing.
    pub fn watch(
        &self,
        events: broadcast::Receiver<SchedulerEvent>,
        stop: CancellationToken,
    ) -> Option<JoinHandle<()>> {
        if self.settings().is_empty() {
            return None;
        }
        let mut watch = Watch {
            alerts: self.clone(),
            troubled: HashSet::new(),
            baselines: HashMap::new(),
            slow_at: BinaryHeap::new(),
            watched_runs: HashMap::new(),
            next_check: self.shared.clock.now(),
        };
        Some(tokio::spawn(async move {
            watch.run(events, stop).await;
        }))
    }
}

struct Watch {
    alerts: Alerts,
    /// Jobs in trouble (dead or late), as this instance last knew.
    troubled: HashSet<String>,
    /// Per job with `expect_success_within`: its last success, or when it appeared.
    baselines: HashMap<String, DateTime<Utc>>,
    /// When runs become `slow`, soonest first.
    slow_at: BinaryHeap<Reverse<(DateTime<Utc>, i64)>>,
    /// Runs going here whose job expects a duration: run id → job.
    watched_runs: HashMap<i64, String>,
    next_check: DateTime<Utc>,
}

impl Watch {
    async fn run(
        &mut self,
        mut events: broadcast::Receiver<SchedulerEvent>,
        stop: CancellationToken,
    ) {
        let clock = self.alerts.shared.clock.clone();
        // The troubles left by earlier processes are known before the first run ends,
        // so its success can be their `recovered`.
        self.on_time().await;
        loop {
            let wake = match self.slow_at.peek() {
                Some(Reverse((at, _))) => (*at).min(self.next_check),
                None => self.next_check,
            };
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                event = events.recv() => match event {
                    Ok(event) => self.on_event(event).await,
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "alerts fell behind the scheduler and missed {missed} events: some alerts may not go out");
                    }
                    Err(RecvError::Closed) => return,
                },
                () = clock.sleep_until(wake) => self.on_time().await,
            }
        }
    }

    async fn on_event(&mut self, event: SchedulerEvent) {
        let now = self.alerts.shared.clock.now();
        match event {
            SchedulerEvent::RunStarted { run_id, job, .. } => {
                let settings = self.alerts.settings();
                let under = settings
                    .jobs
                    .get(&job)
                    .and_then(|expect| expect.duration_under);
                if let Some(under) = under
                    && settings.wanted(&job, AlertEvent::Slow)
                {
                    self.slow_at.push(Reverse((now + chrono_of(under), run_id)));
                    self.watched_runs.insert(run_id, job);
                }
            }
            SchedulerEvent::RunFinished {
                run_id,
                job,
                status,
                ..
            } => {
                self.watched_runs.remove(&run_id);
                self.on_run_end(run_id, job, status, now).await;
            }
            _ => {}
        }
    }

    async fn on_run_end(
        &mut self,
        run_id: i64,
        job: String,
        status: RunStatus,
        now: DateTime<Utc>,
    ) {
        let alert = |event| Alert {
            event,
            job: Some(job.clone()),
            run_id: Some(run_id),
            at: now,
            detail: Detail::None,
        };
        match status {
            RunStatus::Succeeded => {
                if self.baselines.contains_key(&job) {
                    self.baselines.insert(job.clone(), now);
                }
                if self.troubled.remove(&job) {
                    match self.alerts.shared.store.alerts().close_troubles(&job).await {
                        Ok(true) => self.alerts.raise(&alert(AlertEvent::Recovered)),
                        // Another instance saw the success first.
                        Ok(false) => {}
                        Err(error) => {
                            tracing::warn!(%job, %error, "could not record that a job recovered");
                            self.troubled.insert(job.clone());
                        }
                    }
                }
            }
            _ if status.is_failure() => {
                if status == RunStatus::Dead {
                    self.troubled.insert(job.clone());
                    if let Err(error) = self
                        .alerts
                        .shared
                        .store
                        .alerts()
                        .open_trouble(&job, Trouble::Dead, now)
                        .await
                    {
                        tracing::warn!(%job, %error, "could not record that a job is dead");
                    }
                    self.alerts.raise(&alert(AlertEvent::Dead));
                }
                self.alerts.raise(&alert(AlertEvent::Failed));
            }
            _ => {}
        }
    }

    async fn on_time(&mut self) {
        let now = self.alerts.shared.clock.now();
        while let Some(Reverse((at, run_id))) = self.slow_at.peek().copied() {
            if at > now {
                break;
            }
            self.slow_at.pop();
            let Some(job) = self.watched_runs.remove(&run_id) else {
                continue;
            };
            let under = self
                .alerts
                .settings()
                .jobs
                .get(&job)
                .and_then(|expect| expect.duration_under);
            if let Some(under) = under {
                self.alerts.raise(&Alert {
                    event: AlertEvent::Slow,
                    job: Some(job),
                    run_id: Some(run_id),
                    at: now,
                    detail: Detail::Slow { under },
                });
            }
        }
        if now >= self.next_check {
            self.next_check = now + chrono_of(CHECK_EVERY);
            if let Err(error) = self.check_late(now).await {
                tracing::warn!(%error, "could not check which jobs are late");
            }
            self.alerts.resume_stalled().await;
        }
    }

    /// Re-reads the troubles, then sends `late` for each job past its window whose
    /// trouble this instance opens.
    async fn check_late(&mut self, now: DateTime<Utc>) -> crate::store::StoreResult<()> {
        let store = self.alerts.shared.store.clone();
        self.troubled = store
            .alerts()
            .jobs_in_trouble()
            .await?
            .into_iter()
            .map(|(job, _)| job)
            .collect();
        let windows: Vec<(String, Duration)> = self
            .alerts
            .settings()
            .jobs
            .iter()
            .filter_map(|(job, expect)| Some((job.clone(), expect.success_within?)))
            .collect();
        let unknown: Vec<String> = windows
            .iter()
            .filter(|(job, _)| !self.baselines.contains_key(job))
            .map(|(job, _)| job.clone())
            .collect();
        if !unknown.is_empty() {
            self.baselines
                .extend(store.alerts().success_baselines(&unknown).await?);
        }
        let past = |baselines: &HashMap<String, DateTime<Utc>>, job: &str, within: Duration| {
            baselines
                .get(job)
                .is_some_and(|since| now >= *since + chrono_of(within))
        };
        let candidates: Vec<String> = windows
            .iter()
            .filter(|(job, within)| {
                !self.troubled.contains(job) && past(&self.baselines, job, *within)
            })
            .map(|(job, _)| job.clone())
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        // Another instance may have run them since: the database decides.
        self.baselines
            .extend(store.alerts().success_baselines(&candidates).await?);
        for (job, within) in windows {
            if !candidates.contains(&job) || !past(&self.baselines, &job, within) {
                continue;
            }
            let since = self.baselines.get(&job).copied().unwrap_or(now);
            self.troubled.insert(job.clone());
            if store
                .alerts()
                .open_trouble(&job, Trouble::Late, now)
                .await?
            {
                self.alerts.raise(&Alert {
                    event: AlertEvent::Late,
                    job: Some(job),
                    run_id: None,
                    at: now,
                    detail: Detail::Late { since, within },
                });
            }
        }
        Ok(())
    }
}

fn chrono_of(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}
