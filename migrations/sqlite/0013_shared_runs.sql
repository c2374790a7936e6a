-- Runs that every instance executes, and `forbid` held by the database itself: the twin
-- of migrations/postgres/0013_shared_runs.sql.

-- A run of a job that forbids overlap. At most one exclusive run of a job is queued or
-- running at a time, whichever instance or process inserts it: a fire that finds one
-- going is recorded as skipped, a retry waits, a manual run is refused.
ALTER TABLE runs ADD COLUMN exclusive INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX runs_one_exclusive_going ON runs (job_id)
    WHERE exclusive = 1 AND status IN ('queued', 'running');

-- Scheduled fires queued for any instance (no instance yet), by start. A SQLite file
-- has one `serve`, which runs its fires itself, so this stays empty; it is here so that
-- both stores answer the same claim.
CREATE INDEX runs_unclaimed ON runs (started_at, id)
    WHERE status = 'queued' AND instance_id = '';
