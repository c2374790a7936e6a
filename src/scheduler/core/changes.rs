//! The commands that change a job while the scheduler runs: pause, resume, an
//! operator's edit, and reloading a job from the store.

use chrono::{DateTime, Utc};

use super::{Core, JobState, now_of};
use crate::job::MisfirePolicy;
use crate::scheduler::edit::{self, Edit, EditError};
use crate::scheduler::handoff::RetryDue;
use crate::scheduler::{CommandError, SchedulerEvent, policy};
use crate::store::{JobEdit, JobRecord, StoreError};

impl Core {
    pub(super) async fn set_paused(
        &mut self,
        name: &str,
        paused: bool,
        actor: &str,
    ) -> Result<(), CommandError> {
        let job_id = self.known_job(name)?;
        let Some(job) = self.jobs.get(&job_id) else {
            return Err(CommandError::Removed(name.to_owned()));
        };
        let next = if paused {
            None
        } else {
            job.spec.schedule.next_after(now_of(&self.clock))
        };
        self.store
            .set_paused_by(job_id, paused, next, actor, now_of(&self.clock))
            .await
            .map_err(|error| CommandError::Store(error.to_string()))?;
        if let Some(job) = self.jobs.get_mut(&job_id) {
            job.paused = paused;
            job.next_run_at = None;
        }
        if let Some(next) = next {
            self.queue_fire(job_id, next, false);
            self.requeue_pending_retries(job_id).await;
        }
        self.events.send(SchedulerEvent::JobChanged {
            job: name.to_owned(),
        });
        Ok(())
    }

    async fn requeue_pending_retries(&mut self, job_id: i64) {
        match self.store.pending_retries().await {
            Ok(runs) => {
                for run in runs.into_iter().filter(|run| run.job_id == job_id) {
                    self.queue_retry(RetryDue::of_stored(&run, now_of(&self.clock)));
                }
            }
            Err(error) => tracing::error!(%error, "could not load pending retries"),
        }
    }

    /// Plans, saves and applies an operator's edit; see `SchedulerHandle::edit_job`.
    ///
    /// One read and one write: the next fire is worked out from the planned settings
    /// before the save, which writes it with the change, and memory follows only once
    /// the save succeeded, so a failed save leaves the job firing on its old schedule.
    pub(super) async fn edit(
        &mut self,
        name: &str,
        edit: &Edit,
        expected_version: i64,
        actor: &str,
    ) -> Result<JobRecord, EditError> {
        let store_error = |error: StoreError| match error {
            StoreError::Conflict => EditError::Conflict,
            StoreError::NotFound => EditError::UnknownJob(name.to_owned()),
            other => EditError::Store(other.to_string()),
        };
        let record = self
            .store
            .job_by_name(name)
            .await
            .map_err(store_error)?
            .ok_or_else(|| EditError::UnknownJob(name.to_owned()))?;
        if record.removed_at.is_some() {
            return Err(EditError::Removed(name.to_owned()));
        }
        // Checked before planning, so that a stale form is refused even when it changes
        // nothing against what it shows: its other fields would undo the newer change.
        if record.version != expected_version {
            return Err(EditError::Conflict);
        }
        let Some(plan) = edit::plan(&record, edit, actor, &self.registry)? else {
            return Ok(record);
        };
        // The plan was validated against the registry, so this only fails if the
        // settings cannot be read back; `job_state` has logged why.
        let mut state = self
            .job_state(&plan.applied_to(&record))
            .ok_or_else(|| edit::invalid("settings", "the edited job cannot run"))?;
        let now = now_of(&self.clock);
        let next_run_at = self.next_fire_after_change(record.id, &state, now, false);
        let resumed = record.paused && !plan.paused;
        let change = JobEdit {
            overrides: plan.overrides,
            paused: plan.paused,
            next_run_at,
            changes: plan.changes,
        };
        let saved = self
            .store
            .update_job_overrides(record.id, expected_version, &change, now)
            .await
            .map_err(store_error)?;
        state.next_run_at = None;
        self.ids.insert(record.name.clone(), record.id);
        self.jobs.insert(record.id, state);
        if let Some(next) = next_run_at {
            self.queue_fire(record.id, next, false);
            if resumed {
                self.requeue_pending_retries(record.id).await;
            }
        }
        self.events.send(SchedulerEvent::JobChanged {
            job: name.to_owned(),
        });
        Ok(saved)
    }

    /// When a job whose settings just changed (to `state`) fires next: its stored next
    /// fire when its schedule is the one it already had and that time is still valid, so
    /// that changing another setting does not move it; a fresh one otherwise; none while
    /// it is paused or disabled. A job that was not firing (disabled, or unable to run)
    /// and whose stored slot has passed follows its misfire policy, as at start-up.
    /// `stored_is_current`: the stored time was computed for the job's current schedule
    /// (by whoever saved it), so it stands whenever it is valid.
    fn next_fire_after_change(
        &self,
        job_id: i64,
        state: &JobState,
        now: DateTime<Utc>,
        stored_is_current: bool,
    ) -> Option<DateTime<Utc>> {
        if state.paused || !state.spec.enabled {
            return None;
        }
        let before = self.jobs.get(&job_id);
        let same_schedule =
            stored_is_current || before.is_some_and(|job| job.spec.schedule == state.spec.schedule);
        let was_firing = before.is_some_and(|job| job.spec.enabled && !job.paused);
        let schedule = &state.spec.schedule;
        let stored = state
            .next_run_at
            .filter(|at| policy::stored_next_is_valid(schedule, *at, now));
        match stored {
            Some(at) if same_schedule && (was_firing || at > now) => Some(at),
            Some(missed) if same_schedule && state.spec.misfire == MisfirePolicy::RunOnce => {
                Some(missed)
            }
            Some(missed) if same_schedule => policy::next_fire(schedule, missed, now),
            _ => schedule.next_after(now),
        }
    }

    pub(super) async fn reload(&mut self, name: &str) -> Result<(), CommandError> {
        let record = self
            .store
            .job_by_name(name)
            .await
            .map_err(|error| CommandError::Store(error.to_string()))?
            .ok_or_else(|| CommandError::UnknownJob(name.to_owned()))?;
        self.ids.insert(record.name.clone(), record.id);
        let Some(mut state) = self.job_state(&record) else {
            self.jobs.remove(&record.id);
            return Err(CommandError::Invalid {
                job: name.to_owned(),
                reason: "its settings are invalid, its handler is unknown, or it was removed"
                    .into(),
            });
        };
        // What the store holds was written by whoever changed the job last (another
        // instance's edit, the claim that beat ours): it stands when still valid.
        let next = self.next_fire_after_change(record.id, &state, now_of(&self.clock), true);
        let stored = state.next_run_at.take();
        // The new next fire is written before memory follows it: if the write fails, the
        // job keeps firing on what the store holds, never on nothing.
        let written = if next == stored {
            Ok(())
        } else {
            self.store.set_next_run(record.id, next).await.map(|_| ())
        };
        let next = if written.is_ok() { next } else { stored };
        self.jobs.insert(record.id, state);
        if let Some(next) = next {
            self.queue_fire(record.id, next, false);
        }
        written.map_err(|error| CommandError::Store(error.to_string()))?;
        self.events.send(SchedulerEvent::JobChanged {
            job: name.to_owned(),
        });
        Ok(())
    }
}
