-- keygate schema: passthrough services are deny-by-default. A key reaches
-- a /proxy/{service}/ only when its allow_services names that service.
ALTER TABLE api_keys ADD COLUMN allow_services TEXT NOT NULL DEFAULT '[]';
