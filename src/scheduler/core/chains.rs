//! Runs by dependency: when a run's end is committed, the jobs that follow its job may
//! be due (`after`: once every listed job has succeeded since the job last started;
//! `after_failure`: when a listed job's run ended for good without success).
//!
//! Whether every upstream job has succeeded is read from the database off the scheduler
//! task, since the upstream runs may have ended on other instances. A run by dependency is
//! keyed by the upstream end that made it due (its `scheduled_for`): instances that see
//! the same ends at once insert the same key, and the database keeps one (the unique
//! index of one start per fire). A job busy with a run of its own (`forbid`) does not
//! start a second one; it looks again when that run ends.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Core, now_of};
use crate::job::chain::{Follows, upstream};
use crate::scheduler::Command;
use crate::scheduler::handoff::{Claim, Finished};
use crate::scheduler::overlap::{Hold, Start};
use crate::store::{RunStatus, Trigger};

/// Upstream job id → the jobs that follow it, and how.
pub(super) type Followers = HashMap<i64, Vec<(i64, Follows)>>;

impl Core {
    /// Publishes the followers to `published` for the console, from now on.
    pub(in crate::scheduler) fn publishing_followers(
        mut self,
        published: crate::scheduler::followers::PublishedFollowers,
    ) -> Self {
        self.published_followers = published;
        // Before the console can ask: the jobs are loaded by now.
        self.publish_followers();
        self
    }

    /// Builds the followers again and hands the console their names.
    pub(super) fn publish_followers(&mut self) {
        let by_id = self.followers().clone();
        let name_of = |id: &i64| self.jobs.get(id).map(|job| job.name.clone());
        let by_name = by_id
            .iter()
            .filter_map(|(upstream, followers)| {
                let followers = followers
                    .iter()
                    .filter_map(|(follower, follows)| Some((name_of(follower)?, *follows)))
                    .collect();
                Some((name_of(upstream)?, followers))
            })
            .collect();
        self.published_followers.replace(by_name);
    }

    /// The index of followers, built again after any job changed.
    fn followers(&mut self) -> &Followers {
        self.followers.get_or_insert_with(|| {
            let mut followers = Followers::new();
            for (&job_id, job) in &self.jobs {
                for (name, follows) in upstream(&job.spec) {
                    if let Some(&upstream_id) = self.ids.get(name.as_str()) {
                        followers
                            .entry(upstream_id)
                            .or_default()
                            .push((job_id, follows));
                    }
                }
            }
            followers
        })
    }

    /// The run of `job_id` ended as `finished`: starts what follows it.
    pub(super) fn follow_upstream(&mut self, job_id: i64, finished: Finished) {
        let followers = self.followers().get(&job_id).cloned().unwrap_or_default();
        for (follower, follows) in followers {
            match follows {
                Follows::Success if finished.status == RunStatus::Succeeded => {
                    self.check_upstream(follower);
                }
                Follows::Failure if finished.for_good && ends_in_failure(finished.status) => {
                    self.run_after(follower, finished.finished_at);
                }
                Follows::Success | Follows::Failure => {}
            }
        }
        // A follower that was busy when its upstream jobs were done looks again now.
        if self
            .jobs
            .get(&job_id)
            .is_some_and(|job| !job.spec.after.is_empty())
            && !self.is_active(job_id)
        {
            self.check_upstream(job_id);
        }
    }

    /// Reads, off this task, whether every `after` job of `follower` has succeeded since
    /// it last started; if so it is run ([`Command::UpstreamDone`]).
    fn check_upstream(&self, follower: i64) {
        let Some(job) = self.jobs.get(&follower) else {
            return;
        };
        let upstream_ids: Vec<i64> = job
            .spec
            .after
            .iter()
            .filter_map(|name| self.ids.get(name.as_str()).copied())
            .collect();
        if upstream_ids.len() != job.spec.after.len() {
            return;
        }
        let store = Arc::clone(&self.store);
        let commands = self.exec.commands().clone();
        self.tracker.spawn(async move {
            match store.upstream_succeeded(follower, &upstream_ids).await {
                Ok(Some(at)) => {
                    let _ = commands.send(Command::UpstreamDone { job_id: follower, at });
                }
                Ok(None) => {}
                Err(error) => {
                    // The next end of an upstream run (or of the follower) looks again.
                    tracing::error!(%error, "could not read whether a job's upstream jobs have run");
                }
            }
        });
    }

    /// Runs `job_id` by dependency, keyed by the upstream end `at`, unless it is paused,
    /// disabled, or (`forbid`) busy with a run of its own.
    pub(super) fn run_after(&mut self, job_id: i64, at: DateTime<Utc>) {
        let Some(job) = self.jobs.get(&job_id) else {
            return;
        };
        if job.paused || !job.spec.enabled {
            tracing::info!(job = %job.name, "not run by dependency: the job is paused or disabled");
            return;
        }
        let policy = job.spec.concurrency;
        if let Some(hold) = self.make_way(job_id, policy, Start::Dependency) {
            debug_assert_eq!(hold, Hold::LookAgainWhenEnded);
            tracing::debug!(job = %job.name, "run by dependency waits for the run going");
            return;
        }
        let now = now_of(&self.clock);
        let run = self.new_run(job_id, Trigger::Dependency, 1, None, at, now);
        // Nobody waits for the id: the run is on record like any other.
        let (reply, _) = tokio::sync::oneshot::channel();
        self.dispatch(job_id, Claim::Manual(run, reply));
    }
}

/// Whether a run that ended as `status` failed, for `after_failure`: a cancelled or
/// skipped run did not.
fn ends_in_failure(status: RunStatus) -> bool {
    matches!(
        status,
        RunStatus::Failed | RunStatus::Dead | RunStatus::TimedOut | RunStatus::Interrupted
    )
}
