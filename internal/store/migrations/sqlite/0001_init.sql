-- keygate schema version 1 for SQLite.
--
-- Times are INTEGER microseconds since the Unix epoch (UTC); NULL means unset.
-- Inspect them with datetime(col / 1000000, 'unixepoch').
-- String lists are JSON arrays stored as TEXT; an empty list is '[]'.

CREATE TABLE providers (
    id         TEXT    NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    dialect    TEXT    NOT NULL,
    base_url   TEXT    NOT NULL,
    models     TEXT    NOT NULL DEFAULT '[]',
    is_default INTEGER NOT NULL DEFAULT 0,
    secret_id  TEXT    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE secret_versions (
    id          TEXT    NOT NULL,
    version     INTEGER NOT NULL CHECK (version > 0),
    format      INTEGER NOT NULL,
    kek_id      TEXT    NOT NULL,
    wrapped_dek BLOB    NOT NULL,
    ciphertext  BLOB    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (id, version)
) STRICT;

CREATE TABLE api_keys (
    id              TEXT    NOT NULL PRIMARY KEY,
    name            TEXT    NOT NULL UNIQUE,
    env             TEXT    NOT NULL,
    prefix          TEXT    NOT NULL,
    hash            BLOB    NOT NULL UNIQUE,
    allow_models    TEXT    NOT NULL DEFAULT '[]',
    allow_providers TEXT    NOT NULL DEFAULT '[]',
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER,
    revoked_at      INTEGER,
    last_used_at    INTEGER
) STRICT;

CREATE INDEX api_keys_created_at_id ON api_keys (created_at, id);

CREATE TABLE admin_tokens (
    id         TEXT    NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    hash       BLOB    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;
