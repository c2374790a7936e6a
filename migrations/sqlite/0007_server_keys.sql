-- Keys the server signs its own cookies with (device cookies of the sign-in throttle, the
-- sign-in form's CSRF cookie). SQLite flavour; the twin is migrations/postgres/0007_server_keys.sql.
-- Kept in the database rather than generated per process, so a restart does not sign
-- every browser out of its device cookie, and several instances on one database agree.
-- A key is created once by the first process that needs it (INSERT … ON CONFLICT DO
-- NOTHING) and never changes; deleting a row rotates that key at the next start.
CREATE TABLE server_keys (
    -- What the key signs, e.g. 'cookies'.
    purpose    TEXT    PRIMARY KEY,
    -- 32 random bytes.
    secret     BLOB    NOT NULL CHECK (length(secret) >= 32),
    created_at INTEGER NOT NULL
) STRICT;
