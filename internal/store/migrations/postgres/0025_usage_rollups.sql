-- keygate schema version 25 for PostgreSQL: usage rolled up as it is
-- written, so the console's overview reads a few rows a key rather than a
-- row for every key, day and model of the last 30 days.

-- Every key's usage by day and model: the overview's totals by day and by
-- model read one row a day and model, whatever the number of keys.
CREATE TABLE usage_day_model (
    day       TEXT   NOT NULL,
    model     TEXT   NOT NULL,
    requests  BIGINT NOT NULL DEFAULT 0,
    denials   BIGINT NOT NULL DEFAULT 0,
    micro_usd BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, model)
);

-- Each key's usage by week (week is its Monday, YYYY-MM-DD): a key's sum
-- from a day on is its weeks from the first Monday on or after that day,
-- plus the days before that Monday (six at most) from usage_daily.
CREATE TABLE usage_key_week (
    week      TEXT   NOT NULL,
    key_id    TEXT   NOT NULL,
    requests  BIGINT NOT NULL DEFAULT 0,
    denials   BIGINT NOT NULL DEFAULT 0,
    micro_usd BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (week, key_id)
);
CREATE INDEX usage_key_week_key ON usage_key_week (key_id, week);

-- Each key's usage by month (month is its first day, YYYY-MM-DD): a key's
-- sum from the first of a month, as a monthly budget counts it, is one row.
CREATE TABLE usage_key_month (
    month     TEXT   NOT NULL,
    key_id    TEXT   NOT NULL,
    requests  BIGINT NOT NULL DEFAULT 0,
    denials   BIGINT NOT NULL DEFAULT 0,
    micro_usd BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (month, key_id)
);
CREATE INDEX usage_key_month_key ON usage_key_month (key_id, month);

INSERT INTO usage_day_model (day, model, requests, denials, micro_usd)
    SELECT day, model, SUM(requests), SUM(denials), SUM(micro_usd) FROM usage_daily GROUP BY day, model;
INSERT INTO usage_key_week (week, key_id, requests, denials, micro_usd)
    SELECT to_char(date_trunc('week', day::date), 'YYYY-MM-DD'), key_id, SUM(requests), SUM(denials), SUM(micro_usd)
    FROM usage_daily GROUP BY 1, 2;
INSERT INTO usage_key_month (month, key_id, requests, denials, micro_usd)
    SELECT substr(day, 1, 8) || '01', key_id, SUM(requests), SUM(denials), SUM(micro_usd)
    FROM usage_daily GROUP BY 1, 2;
