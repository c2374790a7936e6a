-- The outcome strip reads each job's recent runs through `runs_by_job` (job_id, id) from
-- the first run of the window on, so `runs_by_job_start` is not needed: every index on
-- `runs` is paid for by every claim, and the scheduler claims thousands a second.
DROP INDEX IF EXISTS runs_by_job_start;
