-- keygate schema version 6 for PostgreSQL: keys that require a client certificate.

-- "uri:spiffe://..." or "cn:NAME": the certificate (from the configured
-- client CA) a request with this key must present; '' requires none.
ALTER TABLE api_keys ADD COLUMN client_cert TEXT NOT NULL DEFAULT '';
