-- The processes that use this database: each `serve` and each `batchboard run` registers
-- here and renews its heartbeat while it lives. PostgreSQL flavour; the twin of
-- migrations/sqlite/0012_instances.sql.
--
-- Liveness is judged with the database's clock (`now()`), never with an instance's own:
-- a run is cut off, and may be interrupted and retried by someone else, only when its
-- instance is stopped or has been silent for longer than the heartbeat lease.
CREATE TABLE instances (
    -- The id written into `runs.instance_id`: host, pid and a random suffix.
    id           TEXT        PRIMARY KEY,
    -- 'serve' (scheduler and console) or 'run' (a one-off `batchboard run`).
    kind         TEXT        NOT NULL CHECK (kind IN ('serve', 'run')),
    host         TEXT        NOT NULL,
    pid          BIGINT      NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL,
    -- Set when it stopped cleanly, or when another process proved it gone.
    stopped_at   TIMESTAMPTZ
);

-- Runs by instance: finding the runs of instances that are gone.
CREATE INDEX runs_by_instance ON runs (instance_id) WHERE status IN ('queued', 'running');
