-- API tokens, PostgreSQL flavour: the twin of migrations/sqlite/0005_api_tokens.sql.
-- A token is shown to its user once; only its SHA-256 is kept. A fast hash is enough:
-- tokens are 32 random bytes, so there is nothing to guess that a slow hash would protect.
-- Revoked tokens keep their row (revoked_at set), so a leaked one can be traced afterwards.
CREATE TABLE api_tokens (
    id           BIGSERIAL   PRIMARY KEY,
    -- Users are never deleted (see 0002), so the owner always exists.
    user_id      BIGINT      NOT NULL REFERENCES users (id),
    -- The user's label for it, same rules as user names (checked by the app); bytewise
    -- order, as on SQLite (see 0001).
    name         TEXT        COLLATE "C" NOT NULL,
    -- Lowercase hex SHA-256 of the whole token text; every request looks it up.
    token_hash   TEXT        NOT NULL UNIQUE,
    -- At most the user's role when created; the lower of the two applies at each use.
    role         TEXT        NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    created_at   TIMESTAMPTZ NOT NULL,
    -- NULL: never expires.
    expires_at   TIMESTAMPTZ,
    -- Updated at most once a minute per token, so busy scripts cause few writes.
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);

-- A name picks one live token of its user (`token revoke NAME --user USER`); a revoked
-- token frees its name for a new one.
CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens (user_id, name) WHERE revoked_at IS NULL;
