-- Alerts: each delivery to a target, and the jobs in trouble (dead or late) whose next
-- success sends `recovered`. Twin of migrations/postgres/0016_alerts.sql.

CREATE TABLE alert_deliveries (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at INTEGER NOT NULL,
    event      TEXT    NOT NULL,
    target     TEXT    NOT NULL,
    job        TEXT,
    run_id     INTEGER,
    status     TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    -- The JSON sent: no secret is in it (see src/store/alerts.rs).
    payload    TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);

-- One row per job and kind of trouble: the insert that makes it is what decides, across
-- instances, who sends the `late` alert.
CREATE TABLE alert_troubles (
    job   TEXT    NOT NULL,
    kind  TEXT    NOT NULL CHECK (kind IN ('dead', 'late')),
    since INTEGER NOT NULL,
    PRIMARY KEY (job, kind)
);
