-- keygate schema version 2 for PostgreSQL: the vault as a secrets store.

-- A superseded version (such as a rotated provider key) is destroyed once
-- destroy_at has passed. NULL keeps it.
ALTER TABLE secret_versions ADD COLUMN destroy_at TIMESTAMPTZ;

-- Secrets stored by users (keygate secret put). The values live in
-- secret_versions under record_id; this table holds names and lifecycle.
CREATE TABLE secrets (
    name       TEXT        NOT NULL PRIMARY KEY,
    record_id  TEXT        NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    deleted_at TIMESTAMPTZ,
    purge_at   TIMESTAMPTZ
);

-- What keygate keeps about each key-encryption key: never the key, only
-- what is needed to re-derive it (a passphrase KEK's salt and cost).
CREATE TABLE vault_keks (
    id         TEXT        NOT NULL PRIMARY KEY,
    kind       TEXT        NOT NULL,
    params     TEXT        NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL
);

-- Key-encryption key rotations, newest last. A rotation is running while
-- finished_at is NULL; heartbeat_at tells whether a node is working on it.
CREATE TABLE kek_rotations (
    id             TEXT        NOT NULL PRIMARY KEY,
    from_kek       TEXT        NOT NULL,
    to_kek         TEXT        NOT NULL,
    batch_size     INTEGER     NOT NULL,
    batch_interval BIGINT      NOT NULL,
    rewrapped      BIGINT      NOT NULL DEFAULT 0,
    last_error     TEXT        NOT NULL DEFAULT '',
    started_at     TIMESTAMPTZ NOT NULL,
    heartbeat_at   TIMESTAMPTZ NOT NULL,
    finished_at    TIMESTAMPTZ
);

CREATE INDEX kek_rotations_started_at ON kek_rotations (started_at, id);
CREATE INDEX secret_versions_kek_id ON secret_versions (kek_id);

ALTER TABLE admin_tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';
