-- keygate schema version 3 for SQLite: limits on keys and groups, and usage.

-- A key's limits as JSON (adminapi.Limits); '{}' limits nothing.
ALTER TABLE api_keys ADD COLUMN limits TEXT NOT NULL DEFAULT '{}';
-- The group whose limits the key also obeys; NULL for none.
ALTER TABLE api_keys ADD COLUMN group_name TEXT;

CREATE TABLE key_groups (
    name       TEXT    NOT NULL PRIMARY KEY,
    limits     TEXT    NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL
) STRICT;

-- What each key consumed, per day (in the limits time zone) and model.
CREATE TABLE usage_daily (
    key_id        TEXT    NOT NULL,
    day           TEXT    NOT NULL,
    model         TEXT    NOT NULL,
    requests      INTEGER NOT NULL DEFAULT 0,
    input_tokens  INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    micro_usd     INTEGER NOT NULL DEFAULT 0,
    denials       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, day, model)
) STRICT;
