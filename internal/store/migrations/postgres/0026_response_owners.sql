-- keygate schema version 25 for PostgreSQL: which key created each response
-- made through the gateway (the Responses API keeps them upstream, under
-- keygate's one provider key), so that only that key reads, deletes or
-- continues it, on every gateway node.

CREATE TABLE response_owners (
    id         TEXT        NOT NULL PRIMARY KEY, -- the provider's response id
    key_id     TEXT        NOT NULL,
    provider   TEXT        NOT NULL,             -- the provider that holds it
    model      TEXT        NOT NULL,             -- as named upstream
    created_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX response_owners_created ON response_owners (created_at);
