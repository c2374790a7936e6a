-- Runs waiting for a free slot, and the true start of every run: the twin of
-- migrations/sqlite/0011_queued_runs.sql.
-- * status gains 'queued': claimed and due, but waiting for a free executor slot.
-- * started_at is when the handler really started: NULL while queued and for runs
--   cancelled before they ever started.
ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'retrying', 'dead',
                      'cancelled', 'timed_out', 'interrupted', 'skipped'));
ALTER TABLE runs ALTER COLUMN started_at DROP NOT NULL;

-- Runs that never started: pruning finds the old ones by their slot.
CREATE INDEX runs_never_started ON runs (scheduled_for) WHERE started_at IS NULL;
