//! The commands that change a job while the scheduler runs: pause, resume, an
//! operator's edit, and reloading a job from the store.

use super::{Core, now_of};
use crate::scheduler::edit::{self, Edit, EditError};
use crate::scheduler::handoff::RetryDue;
use crate::scheduler::{CommandError, SchedulerEvent, policy};
use crate::store::{JobRecord, StoreError};

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
        let now = now_of(&self.clock);
        self.store
            .update_job_overrides(
                record.id,
                expected_version,
                plan.overrides,
                &plan.changes,
                now,
            )
            .await
            .map_err(store_error)?;
        self.reload(name)
            .await
            .map_err(|error| EditError::Store(error.to_string()))?;
        self.store
            .job_by_name(name)
            .await
            .map_err(store_error)?
            .ok_or_else(|| EditError::UnknownJob(name.to_owned()))
    }

    pub(super) async fn reload(&mut self, name: &str) -> Result<(), CommandError> {
        let record = self
            .store
            .job_by_name(name)
            .await
            .map_err(|error| CommandError::Store(error.to_string()))?
            .ok_or_else(|| CommandError::UnknownJob(name.to_owned()))?;
        self.ids.insert(record.name.clone(), record.id);
        let old_schedule = self
            .jobs
            .get(&record.id)
            .map(|job| job.spec.schedule.clone());
        let Some(mut state) = self.job_state(&record) else {
            self.jobs.remove(&record.id);
            return Err(CommandError::Invalid {
                job: name.to_owned(),
                reason: "its settings are invalid, its handler is unknown, or it was removed"
                    .into(),
            });
        };
        let now = now_of(&self.clock);
        let runnable = !state.paused && state.spec.enabled;
        let keep = runnable
            && old_schedule.as_ref() == Some(&state.spec.schedule)
            && state
                .next_run_at
                .is_some_and(|at| policy::stored_next_is_valid(&state.spec.schedule, at, now));
        let next = if !runnable {
            None
        } else if keep {
            state.next_run_at
        } else {
            state.spec.schedule.next_after(now)
        };
        state.next_run_at = None;
        self.jobs.insert(record.id, state);
        if keep {
            if let Some(next) = next {
                self.queue_fire(record.id, next, false);
            }
        } else {
            self.set_next(record.id, next)
                .await
                .map_err(|error| CommandError::Store(error.to_string()))?;
        }
        self.events.send(SchedulerEvent::JobChanged {
            job: name.to_owned(),
        });
        Ok(())
    }
}
