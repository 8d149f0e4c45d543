-- keygate schema version 22 for PostgreSQL: what the outbound credential
-- check does with a key's requests, overriding the global leaks: policy.

-- '' follows the global policy; block, redact or alert apply to every
-- credential found in the key's requests and answers.
ALTER TABLE api_keys ADD COLUMN leak_action TEXT NOT NULL DEFAULT '';
