-- Log lines are most of the history's bulk: they are partitioned by the day of their
-- time (UTC), so that retention drops a whole day's partition instead of deleting its
-- rows one by one, and a day's lines sit together on disk. The store creates each day's
-- partition ahead of it (a week ahead, re-checked every hour by every instance); the
-- default partition catches any line outside them, so an insert never fails for want of
-- a partition, and a partition created later takes its rows from it.
--
-- `runs` stays one table: the database itself holds "one start per fire" and "one
-- exclusive run going per job" with unique indexes over all of a job's runs, which a
-- partitioned table can only enforce per partition.
--
-- There is no primary key: on a partitioned table it would have to include `ts`, and
-- lines are only ever found by their run (the `id`s stay unique, from one sequence).

ALTER TABLE run_logs RENAME TO run_logs_unpartitioned;
ALTER INDEX run_logs_by_run RENAME TO run_logs_unpartitioned_by_run;

CREATE TABLE run_logs (
    id      BIGINT      NOT NULL DEFAULT nextval('run_logs_id_seq'),
    -- The store deletes a run's lines itself when pruning (to count them); the cascade is
    -- a safety net for any other delete.
    run_id  BIGINT      NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    ts      TIMESTAMPTZ NOT NULL,
    level   TEXT        NOT NULL,
    message TEXT        NOT NULL,
    fields  JSONB       NOT NULL DEFAULT '{}'::jsonb
) PARTITION BY RANGE (ts);

-- The sequence belonged to the old table and would go with it.
ALTER SEQUENCE run_logs_id_seq OWNED BY run_logs.id;

-- A run's lines in order, paged by `id > after`; also serves the cascade above.
CREATE INDEX run_logs_by_run ON run_logs (run_id, id);

CREATE TABLE run_logs_default PARTITION OF run_logs DEFAULT;

-- Existing lines go to the default partition; the day partitions created at start-up
-- take theirs from it, older ones leave with their runs.
INSERT INTO run_logs (id, run_id, ts, level, message, fields)
    SELECT id, run_id, ts, level, message, fields FROM run_logs_unpartitioned;

DROP TABLE run_logs_unpartitioned;
