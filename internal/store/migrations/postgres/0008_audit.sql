-- keygate schema version 8 for PostgreSQL: the audit trail.

-- Every audit event as written (data is its JSON, with the hash of the one
-- before it); seq, time, type and key_id are copied out to be searched.
CREATE TABLE audit_events (
    seq    BIGINT      NOT NULL PRIMARY KEY,
    time   TIMESTAMPTZ NOT NULL,
    type   TEXT    NOT NULL,
    key_id TEXT    NOT NULL DEFAULT '',
    data   TEXT    NOT NULL
);
CREATE INDEX audit_events_key_time ON audit_events (key_id, time);
CREATE INDEX audit_events_time ON audit_events (time);

-- Signed checkpoints over the chain.
CREATE TABLE audit_checkpoints (
    seq  BIGINT NOT NULL PRIMARY KEY,
    data TEXT    NOT NULL
);
