-- Console users, SQLite flavour. The PostgreSQL twin is migrations/postgres/0002_users.sql.
-- Times are INTEGER microseconds since the Unix epoch, as in 0001.
-- Users are never deleted, only disabled, so the history of changes can name them.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    -- The sign-in name: lowercase letters, digits, '-', '_', '.' (checked by the app).
    name          TEXT    NOT NULL UNIQUE,
    -- A PHC string (argon2id); never the password itself.
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;
