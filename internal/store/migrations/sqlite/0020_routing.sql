-- keygate schema version 20 for SQLite: model routing (deployments and
-- aliases) and passthrough services managed through the admin API, beside
-- the ones the configuration file declares.

-- One row per entry: its kind (deployment, alias or service), its name,
-- and its definition as JSON in the configuration file's shape. No secret
-- is here: a service names the vault secret holding its credential.
CREATE TABLE routing_entries (
    kind       TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    spec       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (kind, name)
) STRICT;

-- The routing generation: every change to routing_entries adds one in
-- the same transaction. Nodes read this one row several times a second
-- and reload their routing table when it moves; a writer names the
-- generation it planned against, so two changes planned at once cannot
-- both land.
CREATE TABLE routing_generation (
    id         INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
) STRICT;

INSERT INTO routing_generation (id, generation) VALUES (1, 0);
