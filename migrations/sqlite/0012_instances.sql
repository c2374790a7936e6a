-- The processes that use this database: each `serve` and each `batchboard run` registers
-- here and renews its heartbeat while it lives. SQLite flavour; the twin is
-- migrations/postgres/0012_instances.sql.
--
-- A run row names its instance (`runs.instance_id`); a run is cut off, and may be
-- interrupted and retried by someone else, only when its instance is gone: stopped, or
-- silent for longer than the heartbeat lease. So a `serve` starting next to a running
-- `batchboard run` leaves that run alone.
CREATE TABLE instances (
    -- The id written into `runs.instance_id`: host, pid and a random suffix.
    id           TEXT    PRIMARY KEY,
    -- 'serve' (scheduler and console) or 'run' (a one-off `batchboard run`).
    kind         TEXT    NOT NULL CHECK (kind IN ('serve', 'run')),
    host         TEXT    NOT NULL,
    pid          INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    -- Set when it stopped cleanly, or when another process proved it gone.
    stopped_at   INTEGER
) STRICT;

-- Runs by instance: finding the runs of instances that are gone.
CREATE INDEX runs_by_instance ON runs (instance_id) WHERE status IN ('queued', 'running');

-- At most one start per fire, enforced by the database itself: the first attempt of a
-- scheduled slot exists once per job, whichever instance claims it. The fire's
-- compare-and-swap on `jobs.next_run_at` is the first fence; this is the second, for
-- the day two schedulers both believe they own a slot.
CREATE UNIQUE INDEX runs_one_start_per_fire ON runs (job_id, scheduled_for)
    WHERE trigger IN ('schedule', 'catch_up') AND attempt = 1;

-- Leadership leases: the instance named here decides the scheduled fires while its
-- lease runs (`expires_at`, set from the database's time). A leader renews its own
-- live lease; anyone may take an expired one, which starts a new term (`elected_at`),
-- so a leader that was away past its expiry learns that its term ended.
CREATE TABLE leadership (
    name       TEXT    PRIMARY KEY,
    holder     TEXT    NOT NULL,
    elected_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
