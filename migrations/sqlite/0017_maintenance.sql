-- Maintenance: at most one row while every job is held paused by an admin, with the
-- reason the console shows and the jobs it paused (to resume only those). Twin of
-- migrations/postgres/0017_maintenance.sql.
CREATE TABLE maintenance (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    reason      TEXT    NOT NULL,
    started_by  TEXT    NOT NULL,
    started_at  INTEGER NOT NULL,
    -- JSON array of the names of the jobs this maintenance paused.
    paused_jobs TEXT    NOT NULL DEFAULT '[]'
);
