-- Indexes for the console's reads.

-- The dashboard's 24-hour outcome strip: each job's recent runs by start time, one range
-- per job instead of a scan of everyone's day.
CREATE INDEX runs_by_job_start ON runs (job_id, started_at);

-- The run page's links between attempts: the later attempts of a retry chain. Partial:
-- first attempts (the vast majority) have no `first_run_id` and cost nothing here.
CREATE INDEX runs_by_first_run ON runs (first_run_id) WHERE first_run_id IS NOT NULL;
