-- keygate schema version 24 for SQLite: invitations to join a team.

-- An invitation for an e-mail address to join a team with a role. Its link
-- is shown once to whoever made it; only a keyed hash of its token is kept
-- (hash). It is accepted once (accepted_at), before expires_at, unless
-- revoked first (revoked_at); rows stay for the record.
CREATE TABLE invitations (
    id              TEXT    NOT NULL PRIMARY KEY,
    hash            BLOB    NOT NULL UNIQUE,
    email           TEXT    NOT NULL,
    team            TEXT    NOT NULL REFERENCES teams (name),
    role            TEXT    NOT NULL,
    created_by      TEXT    NOT NULL,
    created_by_name TEXT    NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    revoked_at      INTEGER,
    revoked_by      TEXT    NOT NULL DEFAULT '',
    accepted_at     INTEGER,
    accepted_by     TEXT    NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX invitations_team ON invitations (team, created_at);
