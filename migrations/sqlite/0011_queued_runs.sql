-- Runs waiting for a free slot, and the true start of every run. SQLite flavour; the twin
-- is migrations/postgres/0011_queued_runs.sql.
--
-- * status gains 'queued': claimed and due, but waiting for a free executor slot.
-- * started_at becomes NULL-able: it is when the handler really started, so a queued
--   run, and one cancelled before it ever started, has none.
--
-- SQLite cannot change a CHECK constraint or drop a NOT NULL in place, so `runs` is
-- rebuilt (https://www.sqlite.org/lang_altertable.html, "other kinds of table schema
-- changes"). That procedure turns foreign keys off, which SQLite ignores inside a
-- transaction, and sqlx runs every SQLite migration in one. With foreign keys on,
-- dropping the old `runs` would cascade into `run_logs` and delete every log line, so
-- `run_logs` is rebuilt first, pointing at the new table: once the old `run_logs` is
-- gone, nothing refers to the old `runs` and it drops without touching anything.

CREATE TABLE runs_new (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id        INTEGER NOT NULL REFERENCES jobs (id),
    trigger       TEXT    NOT NULL
                  CHECK (trigger IN ('schedule', 'manual', 'retry', 'dependency', 'catch_up')),
    attempt       INTEGER NOT NULL CHECK (attempt >= 1),
    first_run_id  INTEGER,
    status        TEXT    NOT NULL
                  CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'retrying',
                                    'dead', 'cancelled', 'timed_out', 'interrupted',
                                    'skipped')),
    scheduled_for INTEGER NOT NULL,
    -- When the handler started; NULL while queued and for runs that never started.
    started_at    INTEGER,
    finished_at   INTEGER,
    duration_ms   INTEGER,
    items_checked INTEGER NOT NULL DEFAULT 0,
    items_updated INTEGER NOT NULL DEFAULT 0,
    items_total   INTEGER,
    error_kind    TEXT,
    error_message TEXT,
    summary       TEXT,
    instance_id   TEXT    NOT NULL,
    retry_at      INTEGER
) STRICT;

INSERT INTO runs_new (id, job_id, trigger, attempt, first_run_id, status, scheduled_for,
                      started_at, finished_at, duration_ms, items_checked, items_updated,
                      items_total, error_kind, error_message, summary, instance_id, retry_at)
SELECT id, job_id, trigger, attempt, first_run_id, status, scheduled_for, started_at,
       finished_at, duration_ms, items_checked, items_updated, items_total, error_kind,
       error_message, summary, instance_id, retry_at
FROM runs;

-- AUTOINCREMENT's high-water mark: ids of pruned runs must never be handed out again
-- (also when every run was pruned, and the copy above set no mark of its own).
INSERT INTO sqlite_sequence (name, seq)
SELECT 'runs_new', seq FROM sqlite_sequence WHERE name = 'runs'
AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'runs_new');
UPDATE sqlite_sequence
SET seq = MAX(seq, COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'runs'), 0))
WHERE name = 'runs_new';

-- As in 0001; its foreign key follows `runs_new` when that is renamed below.
CREATE TABLE run_logs_new (
    id      INTEGER PRIMARY KEY,
    run_id  INTEGER NOT NULL REFERENCES runs_new (id) ON DELETE CASCADE,
    ts      INTEGER NOT NULL,
    level   TEXT    NOT NULL,
    message TEXT    NOT NULL,
    fields  TEXT    NOT NULL DEFAULT '{}'
) STRICT;

INSERT INTO run_logs_new (id, run_id, ts, level, message, fields)
SELECT id, run_id, ts, level, message, fields FROM run_logs;

DROP TABLE run_logs;
DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;
ALTER TABLE run_logs_new RENAME TO run_logs;

-- The indexes of 0001 and 0004, as they were.
CREATE INDEX runs_by_job ON runs (job_id, id DESC);
CREATE INDEX runs_by_status ON runs (status, id);
CREATE INDEX runs_pending_retry ON runs (retry_at) WHERE retry_at IS NOT NULL;
CREATE INDEX runs_by_start ON runs (started_at);
CREATE INDEX runs_by_first_run ON runs (first_run_id) WHERE first_run_id IS NOT NULL;
CREATE INDEX run_logs_by_run ON run_logs (run_id, id);

-- Runs that never started (queued now, or cancelled while queued): pruning finds the
-- old ones by their slot. Partial, so the hot path's rows (which have a start) are not
-- in it.
CREATE INDEX runs_never_started ON runs (scheduled_for) WHERE started_at IS NULL;
