-- keygate schema version 14 for PostgreSQL: people on the admin plane. Users
-- and service accounts with a role, teams that own keys and share a key
-- group's limits, admin credentials tied to a user with an expiry and a
-- record of their last use, and requests waiting for a second person's
-- approval.

-- A person (kind 'user') or an identity for automation (kind 'service').
-- Users are disabled, never deleted, so the audit trail's ids stay theirs.
CREATE TABLE users (
    id          TEXT    NOT NULL PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    kind        TEXT    NOT NULL CHECK (kind IN ('user', 'service')),
    role        TEXT    NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    created_by  TEXT    NOT NULL DEFAULT '',
    disabled_at TIMESTAMPTZ
);

-- A team owns keys. Its shared budget and limits are the key group
-- group_name, which every key of the team is in; policy is JSON
-- (adminapi.TeamPolicy): what keys of the team may be given.
CREATE TABLE teams (
    name       TEXT    NOT NULL PRIMARY KEY,
    group_name TEXT    NOT NULL UNIQUE,
    policy     TEXT    NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL
);

-- A user's role in a team.
CREATE TABLE team_members (
    team     TEXT    NOT NULL REFERENCES teams (name) ON DELETE CASCADE,
    user_id  TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role     TEXT    NOT NULL,
    added_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (team, user_id)
);

CREATE INDEX team_members_user ON team_members (user_id);

-- An admin credential belongs to a user or service account (user_id), or
-- to nobody (the bootstrap credential, one made offline, and every token
-- from before users existed). For a user's credential, role caps what it
-- may do ('' for no cap); for one of nobody's, it is the role.
ALTER TABLE admin_tokens ADD COLUMN user_id TEXT;
ALTER TABLE admin_tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'admin';
ALTER TABLE admin_tokens ADD COLUMN prefix TEXT NOT NULL DEFAULT '';
ALTER TABLE admin_tokens ADD COLUMN expires_at TIMESTAMPTZ;
ALTER TABLE admin_tokens ADD COLUMN last_used_at TIMESTAMPTZ;
ALTER TABLE admin_tokens ADD COLUMN last_used_from TEXT NOT NULL DEFAULT '';

CREATE INDEX admin_tokens_user ON admin_tokens (user_id);

-- The tokens of an existing install keep their powers: admin becomes
-- owner (everything), operator stays operator.
UPDATE admin_tokens SET kind = 'bootstrap' WHERE name = 'bootstrap';
UPDATE admin_tokens SET role = 'owner' WHERE role = 'admin';

-- A key belongs to a team, to a user within it (owner_user), or, as every
-- key from before teams, to neither: then only global roles manage it.
ALTER TABLE api_keys ADD COLUMN team TEXT;
ALTER TABLE api_keys ADD COLUMN owner_user TEXT;
ALTER TABLE api_keys ADD COLUMN created_by TEXT NOT NULL DEFAULT '';

CREATE INDEX api_keys_team ON api_keys (team);

-- A request waiting for a second person. Only a keyed hash of the request
-- (method, path and body) is kept, never the body, which may hold a key.
CREATE TABLE approvals (
    id             TEXT    NOT NULL PRIMARY KEY,
    permission     TEXT    NOT NULL,
    method         TEXT    NOT NULL,
    path           TEXT    NOT NULL,
    request_hash   BYTEA    NOT NULL,
    requester      TEXT    NOT NULL,
    requester_name TEXT    NOT NULL,
    credential     TEXT    NOT NULL,
    status         TEXT    NOT NULL CHECK (status IN ('pending', 'approved', 'denied')),
    created_at     TIMESTAMPTZ NOT NULL,
    expires_at     TIMESTAMPTZ NOT NULL,
    decided_by     TEXT    NOT NULL DEFAULT '',
    decided_name   TEXT    NOT NULL DEFAULT '',
    decided_at     TIMESTAMPTZ,
    used_at        TIMESTAMPTZ
);

CREATE INDEX approvals_created ON approvals (created_at);
