-- Batchboard schema, PostgreSQL flavour: the twin of migrations/sqlite/0001_init.sql, with
-- native types (BIGINT identities, TIMESTAMPTZ, JSONB, BOOLEAN). Keep the two in step.
--
-- TIMESTAMPTZ holds microseconds, the precision the scheduler truncates its times to, so
-- the compare-and-swap claims (`next_run_at = expected`, `retry_at = expected`) match the
-- value that was read exactly.
--
-- Several instances share this database: the claims above, not locks, decide which
-- instance owns a fire or a retry.
--
-- Names are COLLATE "C": they compare and sort bytewise, as SQLite's TEXT does, so the
-- console lists jobs (and pages through them by name) in the same order on both
-- backends, and the name index serves that order whatever the database's collation.

-- One row per job ever declared. Jobs are never deleted (their history refers to them);
-- a job that leaves the settings file gets `removed_at`.
CREATE TABLE jobs (
    id          BIGSERIAL   PRIMARY KEY,
    -- The slug used in URLs and in the settings file: the natural key `sync_jobs` matches on.
    name        TEXT        COLLATE "C" NOT NULL UNIQUE,
    -- The file's settings (`JobSettings`), replaced on every sync.
    defaults    JSONB       NOT NULL,
    -- Fields operators changed at run time; they win over `defaults` and survive syncs.
    overrides   JSONB       NOT NULL DEFAULT '{}'::jsonb
                CHECK (jsonb_typeof(overrides) = 'object'),
    paused      BOOLEAN     NOT NULL DEFAULT FALSE,
    removed_at  TIMESTAMPTZ,
    -- The next nominal fire time; the fire claim is a compare-and-swap on this column.
    next_run_at TIMESTAMPTZ,
    -- Optimistic concurrency for edits; the fire claim does not bump it.
    version     BIGINT      NOT NULL DEFAULT 1,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

-- One row per run (attempt) of a job. BIGSERIAL ids are never reused, so a URL such as
-- /runs/42 never silently points at a different run after pruning.
CREATE TABLE runs (
    id            BIGSERIAL   PRIMARY KEY,
    job_id        BIGINT      NOT NULL REFERENCES jobs (id),
    trigger       TEXT        NOT NULL
                  CHECK (trigger IN ('schedule', 'manual', 'retry', 'dependency', 'catch_up')),
    attempt       INTEGER     NOT NULL CHECK (attempt >= 1),
    -- The first attempt of a retry chain. No foreign key: pruning may remove the first
    -- attempt before its later ones, and the id stays meaningful as a label.
    first_run_id  BIGINT,
    status        TEXT        NOT NULL
                  CHECK (status IN ('running', 'succeeded', 'failed', 'retrying', 'dead',
                                    'cancelled', 'timed_out', 'interrupted', 'skipped')),
    scheduled_for TIMESTAMPTZ NOT NULL,
    started_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ,
    duration_ms   BIGINT,
    items_checked BIGINT      NOT NULL DEFAULT 0,
    items_updated BIGINT      NOT NULL DEFAULT 0,
    items_total   BIGINT,
    error_kind    TEXT,
    error_message TEXT,
    summary       TEXT,
    instance_id   TEXT        NOT NULL,
    -- When a retry of this run is due; the retry claim is a compare-and-swap that
    -- clears it.
    retry_at      TIMESTAMPTZ
);

-- A job's runs newest first, paged by `id < before` (the job page, the API), and the
-- latest run of each job (`MAX(id)` per job is one index probe).
CREATE INDEX runs_by_job ON runs (job_id, id DESC);

-- Runs still `running` (start-up recovery, expired leases), and the history filtered by
-- status, paged by id.
CREATE INDEX runs_by_status ON runs (status, id);

-- Pending retries, by due time. Partial: only the few runs waiting for a retry are in it.
CREATE INDEX runs_pending_retry ON runs (retry_at) WHERE retry_at IS NOT NULL;

-- Pruning by age finds its victims without scanning the table.
CREATE INDEX runs_by_start ON runs (started_at);

-- The captured log of each run.
CREATE TABLE run_logs (
    id      BIGSERIAL   PRIMARY KEY,
    -- The store deletes a run's lines itself when pruning (to count them); the cascade is
    -- a safety net for any other delete.
    run_id  BIGINT      NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    ts      TIMESTAMPTZ NOT NULL,
    level   TEXT        NOT NULL,
    message TEXT        NOT NULL,
    fields  JSONB       NOT NULL DEFAULT '{}'::jsonb
);

-- A run's lines in order, paged by `id > after`; also serves the cascade above.
CREATE INDEX run_logs_by_run ON run_logs (run_id, id);

-- The audit trail of operator changes: who changed which field of which job, old → new.
-- Never deleted, not even when the job is removed.
CREATE TABLE job_changes (
    id         BIGSERIAL   PRIMARY KEY,
    job_id     BIGINT      NOT NULL REFERENCES jobs (id),
    actor      TEXT        NOT NULL,
    field      TEXT        NOT NULL,
    -- NULL when the field was unset before (or is unset after).
    old_value  JSONB,
    new_value  JSONB,
    changed_at TIMESTAMPTZ NOT NULL
);

-- A job's change history, newest first, paged by id.
CREATE INDEX job_changes_by_job ON job_changes (job_id, id DESC);
