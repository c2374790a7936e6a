//! The commands that change a job while the scheduler runs: pause, resume, an
//! operator's edit, and reloading a job from the store.
//!
//! Pause, resume and edits are saved off the scheduler task, so a database that is slow
//! to take the write (a lock held elsewhere, a failover) never holds up the fires of
//! every other job: the task works out the change, a spawned task saves it, and the
//! result comes back as [`Saved`], which memory then follows. A pause takes effect in
//! memory at once, so no fire slips in while it is being saved.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use super::{Core, JobState, now_of};
use crate::job::chain::{Links, check_edit};
use crate::job::{MisfirePolicy, Registry};
use crate::scheduler::edit::{self, Edit, EditError};
use crate::scheduler::executor::Exec;
use crate::scheduler::handoff::RetryDue;
use crate::scheduler::{Command, CommandError, SchedulerEvent, policy};
use crate::store::{JobEdit, JobRecord, RunRecord, SharedStore, StoreError};

/// A change saved (or refused) by the store, on its way back to the scheduler task.
pub(in crate::scheduler) enum Saved {
    Paused {
        job_id: i64,
        name: String,
        paused: bool,
        /// What memory held before the pause took effect, to restore on failure.
        before: (bool, Option<DateTime<Utc>>),
        next: Option<DateTime<Utc>>,
        retries: Vec<RunRecord>,
        result: Result<(), CommandError>,
        reply: oneshot::Sender<Result<(), CommandError>>,
    },
    Edited {
        name: String,
        result: Result<Box<EditSaved>, EditError>,
        reply: oneshot::Sender<Result<JobRecord, EditError>>,
    },
}

/// An edit as saved.
pub(in crate::scheduler) enum EditSaved {
    /// The edit changed nothing; nothing was written.
    Unchanged(JobRecord),
    Changed {
        saved: JobRecord,
        state: Box<JobState>,
        next_run_at: Option<DateTime<Utc>>,
        retries: Vec<RunRecord>,
    },
}

/// What the job looked like in memory when an edit started, for its next fire.
#[derive(Clone)]
struct Before {
    schedule: crate::schedule::Schedule,
    firing: bool,
}

/// What a save task needs, cloned off the scheduler task.
struct SaveContext {
    store: SharedStore,
    registry: Registry,
    exec: Arc<Exec>,
    /// Every job's links, when the edit may change the edited job's (see
    /// [`check_edit`]).
    chains: Option<Vec<Links>>,
}

impl Core {
    pub(super) fn start_pause(
        &mut self,
        name: &str,
        paused: bool,
        actor: &str,
        reply: oneshot::Sender<Result<(), CommandError>>,
    ) {
        let job_id = match self.known_job(name) {
            Ok(job_id) => job_id,
            Err(error) => {
                let _ = reply.send(Err(error));
                return;
            }
        };
        let now = now_of(&self.clock);
        let Some(job) = self.jobs.get_mut(&job_id) else {
            let _ = reply.send(Err(CommandError::Removed(name.to_owned())));
            return;
        };
        let before = (job.paused, job.next_run_at);
        let next = if paused {
            // At once: the fires already queued find the job paused and are dropped.
            job.paused = true;
            job.next_run_at = None;
            None
        } else {
            job.spec.schedule.next_after(now)
        };
        let store = self.store.clone();
        let commands = self.exec.commands().clone();
        let (name, actor) = (name.to_owned(), actor.to_owned());
        tokio::spawn(async move {
            let result = store
                .set_paused_by(job_id, paused, next, &actor, now)
                .await
                .map(|_| ())
                .map_err(|error| CommandError::Store(error.to_string()));
            let retries = match (&result, next) {
                (Ok(()), Some(_)) => pending_retries_of(&store, job_id).await,
                _ => Vec::new(),
            };
            let _ = commands.send(Command::Saved(Box::new(Saved::Paused {
                job_id,
                name,
                paused,
                before,
                next,
                retries,
                result,
                reply,
            })));
        });
    }

    /// Plans and saves an operator's edit off this task; see `SchedulerHandle::edit_job`.
    ///
    /// One read and one write: the next fire is worked out from the planned settings
    /// before the save, which writes it with the change, and memory follows only once
    /// the save succeeded, so a failed save leaves the job firing on its old schedule.
    pub(super) fn start_edit(
        &mut self,
        name: String,
        edit: Edit,
        expected_version: i64,
        actor: String,
        reply: oneshot::Sender<Result<JobRecord, EditError>>,
    ) {
        let before = self
            .ids
            .get(&name)
            .and_then(|job_id| self.jobs.get(job_id))
            .map(|job| Before {
                schedule: job.spec.schedule.clone(),
                firing: job.spec.enabled && !job.paused,
            });
        // Only an edit of the job's links can make a chain loop or name a missing job.
        let chains = touches_links(&edit).then(|| {
            self.jobs
                .values()
                .map(|job| Links::of(&job.spec))
                .collect::<Vec<_>>()
        });
        let context = SaveContext {
            store: self.store.clone(),
            registry: self.registry.clone(),
            exec: Arc::clone(&self.exec),
            chains,
        };
        let commands = self.exec.commands().clone();
        let now = now_of(&self.clock);
        tokio::spawn(async move {
            let result = context
                .save_edit(&name, &edit, expected_version, &actor, before, now)
                .await
                .map(Box::new);
            let _ = commands.send(Command::Saved(Box::new(Saved::Edited {
                name,
                result,
                reply,
            })));
        });
    }

    /// Makes memory follow a saved change, and answers whoever asked for it.
    pub(super) fn apply_saved(&mut self, saved: Saved) {
        match saved {
            Saved::Paused {
                job_id,
                name,
                paused,
                before,
                next,
                retries,
                result,
                reply,
            } => {
                if let Some(job) = self.jobs.get_mut(&job_id) {
                    if result.is_ok() {
                        job.paused = paused;
                        job.next_run_at = None;
                    } else {
                        (job.paused, job.next_run_at) = before;
                    }
                }
                match (&result, next, before) {
                    (Ok(()), Some(next), _) => {
                        self.queue_fire(job_id, next, false);
                        self.queue_stored_retries(&retries);
                    }
                    // The pause was refused: the job goes on as before.
                    (Err(_), _, (false, Some(next))) => self.queue_fire(job_id, next, false),
                    _ => {}
                }
                if result.is_ok() {
                    self.events.send(SchedulerEvent::JobChanged { job: name });
                }
                let _ = reply.send(result);
            }
            Saved::Edited {
                name,
                result,
                reply,
            } => {
                let answer = match result.map(|saved| *saved) {
                    Ok(EditSaved::Unchanged(record)) => Ok(record),
                    Ok(EditSaved::Changed {
                        saved,
                        state,
                        next_run_at,
                        retries,
                    }) => {
                        self.ids.insert(saved.name.clone(), saved.id);
                        self.jobs.insert(saved.id, *state);
                        self.followers = None;
                        if let Some(next) = next_run_at {
                            self.queue_fire(saved.id, next, false);
                            self.queue_stored_retries(&retries);
                        }
                        self.events.send(SchedulerEvent::JobChanged { job: name });
                        Ok(saved)
                    }
                    Err(error) => Err(error),
                };
                let _ = reply.send(answer);
            }
        }
    }

    fn queue_stored_retries(&mut self, runs: &[RunRecord]) {
        let now = now_of(&self.clock);
        for run in runs {
            self.queue_retry(RetryDue::of_stored(run, now));
        }
    }

    /// When a job whose settings just changed (to `state`) fires next: its stored next
    /// fire when its schedule is the one it already had and that time is still valid, so
    /// that changing another setting does not move it; a fresh one otherwise; none while
    /// it is paused or disabled. A job that was not firing (disabled, or unable to run)
    /// and whose stored slot has passed follows its misfire policy, as at start-up.
    /// `stored_is_current`: the stored time was computed for the job's current schedule
    /// (by whoever saved it), so it stands whenever it is valid.
    pub(super) fn next_fire_after_change(
        &self,
        job_id: i64,
        state: &JobState,
        now: DateTime<Utc>,
        stored_is_current: bool,
    ) -> Option<DateTime<Utc>> {
        let before = self.jobs.get(&job_id).map(|job| Before {
            schedule: job.spec.schedule.clone(),
            firing: job.spec.enabled && !job.paused,
        });
        next_fire_after(before.as_ref(), state, now, stored_is_current)
    }
}

/// See [`Core::next_fire_after_change`]; `before` is the job in memory before the change.
fn next_fire_after(
    before: Option<&Before>,
    state: &JobState,
    now: DateTime<Utc>,
    stored_is_current: bool,
) -> Option<DateTime<Utc>> {
    if state.paused || !state.spec.enabled {
        return None;
    }
    let same_schedule =
        stored_is_current || before.is_some_and(|job| job.schedule == state.spec.schedule);
    let was_firing = before.is_some_and(|job| job.firing);

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

async fn pending_retries_of(store: &SharedStore, job_id: i64) -> Vec<RunRecord> {
    match store.pending_retries().await {
        Ok(runs) => runs
            .into_iter()
            .filter(|run| run.job_id == job_id)
            .collect(),
        Err(error) => {
            tracing::error!(%error, "could not load pending retries");
            Vec::new()
        }
    }
}

impl SaveContext {
    async fn save_edit(
        &self,
        name: &str,
        edit: &Edit,
        expected_version: i64,
        actor: &str,
        before: Option<Before>,
        now: DateTime<Utc>,
    ) -> Result<EditSaved, EditError> {
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
            return Ok(EditSaved::Unchanged(record));
        };
        // The plan was validated against the registry, so this only fails if the
        // settings cannot be read back; `job_state_of` has logged why.
        let mut state = super::job_state_of(&plan.applied_to(&record), &self.registry, &self.exec)
            .ok_or_else(|| edit::invalid("settings", "the edited job cannot run"))?;
        if let Some(others) = &self.chains
            && let Some(problem) = check_edit(others, &Links::of(&state.spec))
                .into_iter()
                .next()
        {
            return Err(edit::invalid(problem.field, problem.message));
        }
        let next_run_at = next_fire_after(before.as_ref(), &state, now, false);
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
        let retries = if resumed && next_run_at.is_some() {
            pending_retries_of(&self.store, record.id).await
        } else {
            Vec::new()
        };
        state.next_run_at = None;
        Ok(EditSaved::Changed {
            saved,
            state: Box::new(state),
            next_run_at,
            retries,
        })
    }
}

/// Whether `edit` may change which jobs the job follows.
fn touches_links(edit: &Edit) -> bool {
    let links = ["after", "after_failure"];
    match edit {
        Edit::Patch(patch) => links.iter().any(|field| patch.get(field).is_some()),
        Edit::Reset(None) => true,
        Edit::Reset(Some(field)) => links.contains(&field.as_str()),
    }
}
