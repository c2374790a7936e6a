-- Runs that every instance executes, and `forbid` held by the database itself: the twin
-- of migrations/sqlite/0013_shared_runs.sql.

-- A run of a job that forbids overlap. At most one exclusive run of a job is queued or
-- running at a time, whichever instance or process inserts it: a fire that finds one
-- going is recorded as skipped, a retry waits, a manual run is refused.
ALTER TABLE runs ADD COLUMN exclusive BOOLEAN NOT NULL DEFAULT FALSE;
CREATE UNIQUE INDEX runs_one_exclusive_going ON runs (job_id)
    WHERE exclusive AND status IN ('queued', 'running');

-- Scheduled fires the leader queued for any instance (no instance yet), by start: what
-- each instance claims with `FOR UPDATE SKIP LOCKED`. Partial: only runs waiting to be
-- claimed are in it, a handful at any moment.
CREATE INDEX runs_unclaimed ON runs (started_at, id)
    WHERE status = 'queued' AND instance_id = '';
