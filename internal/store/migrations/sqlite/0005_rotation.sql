-- keygate schema version 5 for SQLite: keys that rotate themselves.

-- Every rotate_every microseconds (0: never) the key is replaced by a
-- successor delivered to deliver_to ("secret:NAME" or "webhook:URL"); the
-- old key keeps working for rotate_grace microseconds.
ALTER TABLE api_keys ADD COLUMN rotate_every INTEGER NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN rotate_grace INTEGER NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN deliver_to TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN next_rotation_at INTEGER;
