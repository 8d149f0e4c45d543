-- keygate schema version 10 for SQLite: a provider may follow a known
-- service's preset (its auth header, paths and error shapes), with an API
-- version for services that want one (Azure OpenAI).
ALTER TABLE providers ADD COLUMN preset TEXT NOT NULL DEFAULT '';
ALTER TABLE providers ADD COLUMN api_version TEXT NOT NULL DEFAULT '';
