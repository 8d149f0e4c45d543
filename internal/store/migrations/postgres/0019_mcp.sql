-- keygate schema version 19 for PostgreSQL: MCP servers keygate fronts,
-- and the MCP tools each key may call.

-- An MCP server: remote (streamable HTTP or the older HTTP+SSE, at url,
-- with a credential from the vault secret named by secret), or local
-- (stdio: keygate runs command with env, whose values may name vault
-- secrets as secret:NAME). options holds timeouts, size limits, per-key
-- call limits, as JSON.
CREATE TABLE mcp_servers (
    id            TEXT        NOT NULL PRIMARY KEY,
    name          TEXT        NOT NULL UNIQUE,
    transport     TEXT        NOT NULL,
    url           TEXT        NOT NULL DEFAULT '',
    auth          TEXT        NOT NULL DEFAULT 'none',
    auth_header   TEXT        NOT NULL DEFAULT '',
    secret        TEXT        NOT NULL DEFAULT '',
    command       TEXT        NOT NULL DEFAULT '[]',
    env           TEXT        NOT NULL DEFAULT '{}',
    options       TEXT        NOT NULL DEFAULT '{}',
    allow_private BOOLEAN     NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMPTZ NOT NULL
);

-- MCP tools are deny-by-default: a key calls server/tool only when
-- allow_tools has an entry matching it ("github/*", "pg/query") and no
-- deny entry ("!github/delete_*") does.
ALTER TABLE api_keys ADD COLUMN allow_tools TEXT NOT NULL DEFAULT '[]';
