-- keygate schema version 1 for PostgreSQL.
--
-- Times are TIMESTAMPTZ (microsecond precision); NULL means unset.
-- String lists are JSON arrays stored as TEXT; an empty list is '[]'.

CREATE TABLE providers (
    id         TEXT        NOT NULL PRIMARY KEY,
    name       TEXT        NOT NULL UNIQUE,
    dialect    TEXT        NOT NULL,
    base_url   TEXT        NOT NULL,
    models     TEXT        NOT NULL DEFAULT '[]',
    is_default BOOLEAN     NOT NULL DEFAULT FALSE,
    secret_id  TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE secret_versions (
    id          TEXT        NOT NULL,
    version     INTEGER     NOT NULL CHECK (version > 0),
    format      INTEGER     NOT NULL,
    kek_id      TEXT        NOT NULL,
    wrapped_dek BYTEA       NOT NULL,
    ciphertext  BYTEA       NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (id, version)
);

CREATE TABLE api_keys (
    id              TEXT        NOT NULL PRIMARY KEY,
    name            TEXT        NOT NULL UNIQUE,
    env             TEXT        NOT NULL,
    prefix          TEXT        NOT NULL,
    hash            BYTEA       NOT NULL UNIQUE,
    allow_models    TEXT        NOT NULL DEFAULT '[]',
    allow_providers TEXT        NOT NULL DEFAULT '[]',
    created_at      TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ,
    revoked_at      TIMESTAMPTZ,
    last_used_at    TIMESTAMPTZ
);

CREATE INDEX api_keys_created_at_id ON api_keys (created_at, id);

CREATE TABLE admin_tokens (
    id         TEXT        NOT NULL PRIMARY KEY,
    name       TEXT        NOT NULL,
    hash       BYTEA       NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
