-- keygate schema version 9 for PostgreSQL: an alert can require a key's
-- holder to step up with a second factor until a time.
ALTER TABLE api_keys ADD COLUMN step_up_until TIMESTAMPTZ;
