//! Reloading a job from the store (another instance changed it, or a fire's claim was
//! lost to someone), off the scheduler task: the job is read and its new next fire
//! written by spawned tasks, and memory follows what they bring back, so a slow database
//! never holds up the fires of every other job.

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use super::{Core, now_of};
use crate::scheduler::{Command, CommandError, SchedulerEvent};
use crate::store::JobRecord;

type Reply = oneshot::Sender<Result<(), CommandError>>;

/// A reload's read or write, on its way back to the scheduler task.
pub(in crate::scheduler) enum Reloaded {
    Read {
        name: String,
        record: Result<Box<JobRecord>, CommandError>,
        reply: Option<Reply>,
    },
    Written {
        job_id: i64,
        name: String,
        /// The next fire memory held while the write went on.
        stored: Option<DateTime<Utc>>,
        next: Option<DateTime<Utc>>,
        result: Result<(), CommandError>,
        reply: Option<Reply>,
    },
}

/// Tells whoever asked for the reload how it went; a reload nobody asked for (after a
/// lost claim) logs a failure instead.
fn answer(reply: Option<Reply>, result: Result<(), CommandError>) {
    match (reply, result) {
        (Some(reply), result) => {
            let _ = reply.send(result);
        }
        (None, Err(error)) => tracing::warn!(%error, "could not reload a job after losing a fire"),
        (None, Ok(())) => {}
    }
}

impl Core {
    /// Re-reads job `name` and reschedules it; `reply` hears once memory follows.
    pub(super) fn start_reload(&self, name: String, reply: Option<Reply>) {
        let store = self.store.clone();
        let commands = self.exec.commands().clone();
        tokio::spawn(async move {
            let record = match store.job_by_name(&name).await {
                Ok(Some(record)) => Ok(Box::new(record)),
                Ok(None) => Err(CommandError::UnknownJob(name.clone())),
                Err(error) => Err(CommandError::Store(error.to_string())),
            };
            let read = Reloaded::Read {
                name,
                record,
                reply,
            };
            let _ = commands.send(Command::Reloaded(Box::new(read)));
        });
    }

    pub(super) fn apply_reloaded(&mut self, reloaded: Reloaded) {
        match reloaded {
            Reloaded::Read {
                name,
                record,
                reply,
            } => match record {
                Ok(record) => self.reload_read(&name, &record, reply),
                Err(error) => answer(reply, Err(error)),
            },
            Reloaded::Written {
                job_id,
                name,
                stored,
                next,
                result,
                reply,
            } => {
                let still = self
                    .jobs
                    .get(&job_id)
                    .is_some_and(|job| job.next_run_at == stored);
                // Once written, the new next fire replaces the one memory kept; unless the
                // job fired or changed meanwhile, and then what memory follows stands.
                if result.is_ok() && still {
                    if let Some(job) = self.jobs.get_mut(&job_id) {
                        job.next_run_at = None;
                    }
                    if let Some(next) = next {
                        self.queue_fire(job_id, next, false);
                    }
                }
                if result.is_ok() {
                    self.events.send(SchedulerEvent::JobChanged { job: name });
                }
                answer(reply, result);
            }
        }
    }

    fn reload_read(&mut self, name: &str, record: &JobRecord, reply: Option<Reply>) {
        // A read that an edit applied here since has overtaken is stale.
        if self
            .jobs
            .get(&record.id)
            .is_some_and(|job| job.version > record.version)
        {
            answer(reply, Ok(()));
            return;
        }
        self.ids.insert(record.name.clone(), record.id);
        let Some(state) = self.job_state(record) else {
            self.jobs.remove(&record.id);
            self.followers = None;
            let reason = "its settings are invalid, its handler is unknown, or it was removed";
            answer(
                reply,
                Err(CommandError::Invalid {
                    job: name.to_owned(),
                    reason: reason.into(),
                }),
            );
            return;
        };
        // What the store holds was written by whoever changed the job last (another
        // instance's edit, the claim that beat ours): it stands when still valid.
        let next = self.next_fire_after_change(record.id, &state, now_of(&self.clock), true);
        let stored = state.next_run_at;
        self.jobs.insert(record.id, state);
        self.followers = None;
        if let Some(stored) = stored {
            self.queue_fire(record.id, stored, false);
        }
        if next == stored {
            self.events.send(SchedulerEvent::JobChanged {
                job: name.to_owned(),
            });
            answer(reply, Ok(()));
            return;
        }
        // The job keeps firing on what the store holds until its new next fire is
        // written: a failed write never leaves it unscheduled.
        let store = self.store.clone();
        let commands = self.exec.commands().clone();
        let (job_id, name) = (record.id, name.to_owned());
        tokio::spawn(async move {
            let result = store
                .set_next_run(job_id, next)
                .await
                .map(|_| ())
                .map_err(|error| CommandError::Store(error.to_string()));
            let written = Reloaded::Written {
                job_id,
                name,
                stored,
                next,
                result,
                reply,
            };
            let _ = commands.send(Command::Reloaded(Box::new(written)));
        });
    }
}
