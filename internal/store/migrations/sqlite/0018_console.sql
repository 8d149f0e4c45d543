-- keygate schema version 18 for SQLite: indexes the console's overview and
-- key pages read with.

-- The overview sums every key's usage over a window of days: a covering
-- index read by day, rather than every key's rows.
CREATE INDEX usage_daily_day ON usage_daily (day, key_id, model, requests, denials, micro_usd);

-- Open alerts, and a key's recent requests, newest first: by type, or by
-- key, then time.
CREATE INDEX audit_events_type_time ON audit_events (type, time);
