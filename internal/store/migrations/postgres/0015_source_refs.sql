-- keygate schema version 30 for PostgreSQL: provider keys and secrets kept
-- in a cloud secret manager or Vault and followed by keygate.

-- One reference per vault record: the record is keygate's sealed cache of
-- the value last read from the source. verified_version is the record
-- version holding that value; keygate serves the record only while it is
-- that version and verified_at + refresh_every + grace is in the future.
CREATE TABLE source_refs (
    record_id        TEXT        NOT NULL PRIMARY KEY,
    target           TEXT        NOT NULL UNIQUE,
    ref              TEXT        NOT NULL,
    refresh_every    BIGINT      NOT NULL,
    grace            BIGINT      NOT NULL,
    source_version   TEXT        NOT NULL DEFAULT '',
    verified_version INTEGER     NOT NULL DEFAULT 0,
    verified_at      TIMESTAMPTZ,
    failing_since    TIMESTAMPTZ,
    last_error       TEXT        NOT NULL DEFAULT '',
    next_refresh_at  TIMESTAMPTZ NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL
);
