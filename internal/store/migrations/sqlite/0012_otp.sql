-- keygate schema version 12 for SQLite: one-time passwords checked alike by
-- every node sharing the database.

-- The newest time step of a one-time password accepted for each subject
-- ("key/<id>", later "user/<id>"): a code of that step or an earlier one is
-- refused on every node.
CREATE TABLE otp_steps (
    subject   TEXT    NOT NULL PRIMARY KEY,
    last_step INTEGER NOT NULL,
    used_at   INTEGER NOT NULL
) STRICT;

-- Attempts at one-time passwords counted per subject and per client
-- address within a window, and the lockout that follows too many wrong ones.
CREATE TABLE otp_failures (
    scope        TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    failures     INTEGER NOT NULL,
    since        INTEGER NOT NULL,
    locked_until INTEGER,
    PRIMARY KEY (scope, name)
) STRICT;
