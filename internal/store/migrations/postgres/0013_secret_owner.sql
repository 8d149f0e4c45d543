-- keygate schema version 13: a secret remembers what created it, so an
-- automatic key rotation delivers only into a secret it made itself and
-- never overwrites one a person or another key's rotation put there.
ALTER TABLE secrets ADD COLUMN owner TEXT NOT NULL DEFAULT '';
