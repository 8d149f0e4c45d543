-- keygate schema version 27 for PostgreSQL: keygate as the OAuth authorization
-- server of MCP clients. Clients registered themselves (RFC 7591); an
-- authorization code is kept as an HMAC only, is spent once (used_at), and
-- names the refresh family its exchange started, so a replay can revoke it.
-- A refresh family records the person who authorized it, so every refresh
-- checks that they still may use the key.

CREATE TABLE oauth_clients (
    id            TEXT    NOT NULL PRIMARY KEY, -- "mcp_" + random: the client_id
    name          TEXT    NOT NULL,
    redirect_uris TEXT    NOT NULL,             -- JSON list
    client_uri    TEXT    NOT NULL,
    created_by    TEXT    NOT NULL,             -- the registering client's address
    created_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE oauth_codes (
    hash         BYTEA   NOT NULL PRIMARY KEY,
    client_id    TEXT    NOT NULL,
    redirect_uri TEXT    NOT NULL,
    challenge    TEXT    NOT NULL,             -- PKCE S256 code challenge
    resource     TEXT    NOT NULL,             -- RFC 8707 resource the token is bound to
    user_id      TEXT    NOT NULL,
    key_id       TEXT    NOT NULL,
    scope        TEXT    NOT NULL,             -- JSON of the granted token scope
    amr          TEXT    NOT NULL,             -- JSON list
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    used_at      TIMESTAMPTZ,
    family_id    TEXT    NOT NULL              -- set when spent
);

CREATE INDEX oauth_codes_expires ON oauth_codes (expires_at);

ALTER TABLE token_families ADD COLUMN user_id TEXT NOT NULL DEFAULT '';
