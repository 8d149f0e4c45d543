-- keygate schema version 23 for PostgreSQL: who does the work of a provider
-- whose keys keygate mints (rotations, deletions after the overlap).

-- One row per minted provider. A node works on the provider only while it
-- holds the lease (lease_until in the future, set by one conditional
-- statement), so two nodes never rotate the same key; next_check_at is when
-- scheduled work is next due.
CREATE TABLE mint_leases (
    provider      TEXT        NOT NULL PRIMARY KEY,
    next_check_at TIMESTAMPTZ NOT NULL,
    lease_until   TIMESTAMPTZ NOT NULL
);
