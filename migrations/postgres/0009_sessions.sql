-- Sign-in hygiene, PostgreSQL flavour: the twin of migrations/sqlite/0009_sessions.sql.

-- Set while the user must choose a new password before doing anything else: the first
-- admin's generated password (it was printed once, possibly into a terminal's scrollback),
-- and a password an admin set for someone else in the console (two people know it).
-- Cleared when the user sets their own password, or by `batchboard user passwd`.
ALTER TABLE users ADD COLUMN must_change_password BOOLEAN NOT NULL DEFAULT FALSE;

-- Which user each signed-in session belongs to. The session layer (tower-sessions) keeps
-- its sessions as serialized records that SQL cannot look into, so ending one user's
-- sessions (disabled, role changed, password reset) needs this index, written at every
-- sign-in. Rows whose session has gone (signed out, expired) are pruned by the same
-- background task that deletes expired sessions.
CREATE TABLE user_sessions (
    -- The session's id as the session table writes it.
    session_id TEXT        PRIMARY KEY,
    -- Users are never deleted (see 0002), so the user always exists.
    user_id    BIGINT      NOT NULL REFERENCES users (id),
    -- When the user signed in with this session.
    created_at TIMESTAMPTZ NOT NULL
);

-- Ending a user's sessions looks them up by user.
CREATE INDEX user_sessions_by_user ON user_sessions (user_id);
