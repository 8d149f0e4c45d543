-- keygate schema version 8 for PostgreSQL: the audit trail.

-- Every audit event as written (data is its JSON, with the hash of the one
-- before it); each keygate node keeps its own chain (node, seq). seq, time,
-- type and key_id are copied out to be searched.
CREATE TABLE audit_events (
    node   TEXT        NOT NULL,
    seq    BIGINT      NOT NULL,
    time   TIMESTAMPTZ NOT NULL,
    type   TEXT        NOT NULL,
    key_id TEXT        NOT NULL DEFAULT '',
    data   TEXT        NOT NULL,
    PRIMARY KEY (node, seq)
);
CREATE INDEX audit_events_key_time ON audit_events (key_id, time);
CREATE INDEX audit_events_time ON audit_events (time);

-- Signed checkpoints over each node's chain.
CREATE TABLE audit_checkpoints (
    node TEXT   NOT NULL,
    seq  BIGINT NOT NULL,
    data TEXT   NOT NULL,
    PRIMARY KEY (node, seq)
);
