//! A run by hand ("run now"): the job's overlap policy decides here whether it may start;
//! the database decides again when its row is inserted, for runs going elsewhere.

use super::{Core, now_of};
use crate::scheduler::CommandError;
use crate::scheduler::overlap::{Hold, Start};
use crate::store::{NewRun, Trigger};

impl Core {
    /// Checks that `name` may run now and returns the run to insert.
    pub(super) fn run_now(&mut self, name: &str) -> Result<(i64, NewRun), CommandError> {
        let job_id = self.known_job(name)?;
        let job = self
            .jobs
            .get(&job_id)
            .ok_or_else(|| CommandError::Invalid {
                job: name.to_owned(),
                reason: "its settings are invalid or its handler is unknown (see the server log)"
                    .into(),
            })?;
        if let Some(hold) = self.make_way(job_id, job.spec.concurrency, Start::RunNow) {
            debug_assert_eq!(hold, Hold::Refuse);
            let run_id = self
                .live
                .all()
                .into_iter()
                .find(|run| run.job_id == job_id)
                .map(|run| run.run_id);
            return Err(CommandError::AlreadyRunning {
                job: name.to_owned(),
                run_id,
            });
        }
        let now = now_of(&self.clock);
        Ok((
            job_id,
            self.new_run(job_id, Trigger::Manual, 1, None, now, now),
        ))
    }
}
