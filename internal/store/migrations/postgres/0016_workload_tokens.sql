-- keygate schema version 16 for PostgreSQL: workload identity tokens
-- exchanged once across every node.

-- The identity tokens (a SHA-256 of issuer and jti: neither is secret)
-- already exchanged at /oauth/token, each kept until the token expires; an
-- exchange whose id is here is a replay.
CREATE TABLE workload_tokens (
    id         TEXT        NOT NULL PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX workload_tokens_expires_at ON workload_tokens (expires_at);
