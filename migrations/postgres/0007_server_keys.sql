-- Keys the server signs its own cookies with: the twin of migrations/sqlite/0007_server_keys.sql.
-- Kept in the database so a restart keeps browsers' device cookies valid and several
-- instances agree. Created once by the first process that needs it; never changed.
CREATE TABLE server_keys (
    purpose    TEXT        PRIMARY KEY,
    secret     BYTEA       NOT NULL CHECK (length(secret) >= 32),
    created_at TIMESTAMPTZ NOT NULL
);
