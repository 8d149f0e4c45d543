-- keygate schema version 4 for PostgreSQL: least privilege and short-lived tokens.

-- Key scopes beyond providers and models: API paths and methods (JSON list
-- of "METHOD /path"), client networks (JSON list of CIDRs) and time windows.
ALTER TABLE api_keys ADD COLUMN allow_paths TEXT NOT NULL DEFAULT '[]';
ALTER TABLE api_keys ADD COLUMN allow_ips TEXT NOT NULL DEFAULT '[]';
ALTER TABLE api_keys ADD COLUMN hours TEXT NOT NULL DEFAULT '';
-- A suspended key is refused until resumed.
ALTER TABLE api_keys ADD COLUMN suspended_at TIMESTAMPTZ;
-- The key this one was rotated from, if any.
ALTER TABLE api_keys ADD COLUMN rotated_from TEXT;

-- A provider (deployment) tagged with an environment accepts only keys of it.
ALTER TABLE providers ADD COLUMN env TEXT NOT NULL DEFAULT '';

-- Revocations every node applies within a poll interval.
CREATE TABLE revocations (
    seq     BIGSERIAL PRIMARY KEY,
    kind    TEXT    NOT NULL,
    subject TEXT    NOT NULL,
    at      TIMESTAMPTZ NOT NULL,
    until   TIMESTAMPTZ NOT NULL
);

CREATE TABLE signing_keys (
    kid           TEXT    NOT NULL PRIMARY KEY,
    alg           TEXT    NOT NULL,
    public_key    BYTEA    NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    sign_from     TIMESTAMPTZ NOT NULL,
    sign_until    TIMESTAMPTZ NOT NULL,
    publish_until TIMESTAMPTZ NOT NULL
);

CREATE TABLE token_families (
    id         TEXT    NOT NULL PRIMARY KEY,
    key_id     TEXT    NOT NULL,
    scope      TEXT    NOT NULL DEFAULT '{}',
    cnf        TEXT    NOT NULL DEFAULT '',
    amr        TEXT    NOT NULL DEFAULT '[]',
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ,
    reason     TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX token_families_key_id ON token_families (key_id);

CREATE TABLE refresh_tokens (
    hash       BYTEA    NOT NULL PRIMARY KEY,
    family_id  TEXT    NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);
