-- Runs no longer check their job with a foreign key: jobs are never deleted (a job that
-- leaves the settings file gets `removed_at`), and the check was a quarter of the cost
-- of inserting a run, the hottest write there is.
ALTER TABLE runs DROP CONSTRAINT runs_job_id_fkey;
