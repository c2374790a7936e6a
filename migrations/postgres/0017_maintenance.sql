-- Maintenance: at most one row while every job is held paused by an admin, with the
-- reason the console shows and the jobs it paused (to resume only those). Twin of
-- migrations/sqlite/0017_maintenance.sql.
CREATE TABLE maintenance (
    id          INTEGER     PRIMARY KEY CHECK (id = 1),
    reason      TEXT        NOT NULL,
    started_by  TEXT        NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    -- The names of the jobs this maintenance paused.
    paused_jobs JSONB       NOT NULL DEFAULT '[]'::jsonb
);
