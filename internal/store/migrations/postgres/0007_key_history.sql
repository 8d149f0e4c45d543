-- keygate schema version 7 for PostgreSQL: what the risk rules learn per key.

-- The places, networks and hours a key has been used at (JSON), so what a
-- node learned survives a restart and reaches the other nodes.
CREATE TABLE key_history (
    key_id     TEXT    NOT NULL PRIMARY KEY,
    data       TEXT    NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
