-- Console users, PostgreSQL flavour: the twin of migrations/sqlite/0002_users.sql.
-- Users are never deleted, only disabled, so the history of changes can name them.
CREATE TABLE users (
    id            BIGSERIAL   PRIMARY KEY,
    -- The sign-in name: lowercase letters, digits, '-', '_', '.' (checked by the app).
    -- Bytewise order, as on SQLite (see 0001).
    name          TEXT        COLLATE "C" NOT NULL UNIQUE,
    -- A PHC string (argon2id); never the password itself.
    password_hash TEXT        NOT NULL,
    role          TEXT        NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    disabled      BOOLEAN     NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
