-- Batchboard schema, SQLite flavour. The PostgreSQL twin is migrations/postgres/0001_init.sql;
-- keep the two in step.
--
-- Time: every instant is an INTEGER of microseconds since the Unix epoch (UTC).
--   * The scheduler truncates its times to whole microseconds, so they round-trip exactly,
--     and the compare-and-swap claims (`next_run_at = expected`, `retry_at = expected`)
--     compare two integers: no text formatting can make equal instants differ.
--   * Integers order correctly under ORDER BY and `<`; sqlx's chrono TEXT encoding does
--     not (it drops trailing zero fractions, so '…:05Z' sorts after '…:05.5Z').
--   * PostgreSQL's TIMESTAMPTZ has the same microsecond precision, so both backends
--     store the same values.
--   Reading by hand: `datetime(next_run_at / 1000000, 'unixepoch')`.
--
-- Tables are STRICT so that a value of the wrong type (a REAL or TEXT time, say) is
-- refused on write instead of being stored and misread later.
-- JSON is stored as TEXT.

-- One row per job ever declared. Jobs are never deleted (their history refers to them);
-- a job that leaves the settings file gets `removed_at`.
CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    -- The slug used in URLs and in the settings file: the natural key `sync_jobs` matches on.
    name        TEXT    NOT NULL UNIQUE,
    -- The file's settings (`JobSettings`), replaced on every sync.
    defaults    TEXT    NOT NULL CHECK (json_valid(defaults)),
    -- Fields operators changed at run time; they win over `defaults` and survive syncs.
    overrides   TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(overrides)),
    paused      INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
    removed_at  INTEGER,
    -- The next nominal fire time; the fire claim is a compare-and-swap on this column.
    next_run_at INTEGER,
    -- Optimistic concurrency for edits; the fire claim does not bump it.
    version     INTEGER NOT NULL DEFAULT 1,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

-- One row per run (attempt) of a job.
CREATE TABLE runs (
    -- AUTOINCREMENT: a pruned run's id is never handed out again, so a URL such as
    -- /runs/42 never silently points at a different run.
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id        INTEGER NOT NULL REFERENCES jobs (id),
    trigger       TEXT    NOT NULL
                  CHECK (trigger IN ('schedule', 'manual', 'retry', 'dependency', 'catch_up')),
    attempt       INTEGER NOT NULL CHECK (attempt >= 1),
    -- The first attempt of a retry chain. No foreign key: pruning may remove the first
    -- attempt before its later ones, and the id stays meaningful as a label.
    first_run_id  INTEGER,
    status        TEXT    NOT NULL
                  CHECK (status IN ('running', 'succeeded', 'failed', 'retrying', 'dead',
                                    'cancelled', 'timed_out', 'interrupted', 'skipped')),
    scheduled_for INTEGER NOT NULL,
    started_at    INTEGER NOT NULL,
    finished_at   INTEGER,
    duration_ms   INTEGER,
    items_checked INTEGER NOT NULL DEFAULT 0,
    items_updated INTEGER NOT NULL DEFAULT 0,
    items_total   INTEGER,
    error_kind    TEXT,
    error_message TEXT,
    summary       TEXT,
    instance_id   TEXT    NOT NULL,
    -- When a retry of this run is due; the retry claim is a compare-and-swap that
    -- clears it.
    retry_at      INTEGER
) STRICT;

-- A job's runs newest first, paged by `id < before` (the job page, the API), and the
-- latest run of each job (`MAX(id)` per job is one index probe).
CREATE INDEX runs_by_job ON runs (job_id, id DESC);

-- Runs still `running` (start-up recovery), and the history filtered by status, paged by
-- id. Every finish moves its row in this index: the price of a cheap status filter.
CREATE INDEX runs_by_status ON runs (status, id);

-- Pending retries, by due time. Partial: only the few runs waiting for a retry are in it,
-- so the many finished runs cost nothing here.
CREATE INDEX runs_pending_retry ON runs (retry_at) WHERE retry_at IS NOT NULL;

-- Pruning by age finds its victims without scanning the table.
CREATE INDEX runs_by_start ON runs (started_at);

-- The captured log of each run.
CREATE TABLE run_logs (
    -- Plain rowid (no AUTOINCREMENT): a reused id of a pruned line is harmless, because
    -- lines are only ever read and paged within one run, whose lines all outlive it.
    id      INTEGER PRIMARY KEY,
    -- The store deletes a run's lines itself when pruning (to count them); the cascade is
    -- a safety net for any other delete.
    run_id  INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    ts      INTEGER NOT NULL,
    level   TEXT    NOT NULL,
    message TEXT    NOT NULL,
    -- No json_valid check: this is the hottest insert, and the store always writes
    -- serde_json output.
    fields  TEXT    NOT NULL DEFAULT '{}'
) STRICT;

-- A run's lines in order, paged by `id > after`; also serves the cascade above.
CREATE INDEX run_logs_by_run ON run_logs (run_id, id);

-- The audit trail of operator changes: who changed which field of which job, old → new.
-- Never deleted, not even when the job is removed.
CREATE TABLE job_changes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id     INTEGER NOT NULL REFERENCES jobs (id),
    actor      TEXT    NOT NULL,
    field      TEXT    NOT NULL,
    -- JSON values; NULL when the field was unset before (or is unset after).
    old_value  TEXT CHECK (old_value IS NULL OR json_valid(old_value)),
    new_value  TEXT CHECK (new_value IS NULL OR json_valid(new_value)),
    changed_at INTEGER NOT NULL
) STRICT;

-- A job's change history, newest first, paged by id.
CREATE INDEX job_changes_by_job ON job_changes (job_id, id DESC);
