-- keygate schema version 21 for SQLite: a change to what every node caches
-- (providers and services, key groups, token signing keys, key-encryption
-- keys, the revocation log, the vault's records, MCP servers) reaches every node at once.
--
-- Each watched table bumps its topic's generation in the same transaction
-- as the change, from a trigger, so no code path can forget to. A node
-- reads the few generations several times a second and reloads only the
-- topics that moved.

CREATE TABLE changes (
    topic TEXT NOT NULL PRIMARY KEY,
    gen   BIGINT NOT NULL DEFAULT 0
);

INSERT INTO changes (topic) VALUES ('providers'), ('key_groups'), ('signing_keys'), ('keks'), ('revocations'), ('secrets'), ('mcp_servers');

CREATE TRIGGER providers_insert_changed AFTER INSERT ON providers
BEGIN
    UPDATE changes SET gen = gen + 1 WHERE topic = 'providers';
END;

CREATE TRIGGER providers_update_changed AFTER UPDATE ON providers
BEGIN
    UPDATE changes SET gen = gen + 1 WHERE topic = 'providers';
END;

CREATE TRIGGER providers_delete_changed AFTER DELETE ON providers
BEGIN
    UPDATE changes SET gen = gen + 1 WHERE topic = 'providers';
END;

CREATE TRIGGER key_groups_insert_changed AFTER INSERT ON key_groups
BEGIN
    UPDATE changes SET gen = gen + 1 WHERE topic = 'key_groups';
END;

CREATE TRIGGER key_groups_update_changed AFTER UPDATE ON key_groups
BEGIN
    UPDATE changes SET gen = gen + 1 WHERE topic = 'key_groups';
END;

CREATE TRIGGER key_groups_delete_changed AFTER DELETE ON key_groups
BEGIN
    UPDATE changes SET gen = gen + 1 WHERE topic = 'key_groups';
END;

CREATE TRIGGER signing_keys_insert_changed AFTER INSERT ON signing_keys
BEGIN
    UPDATE changes SET gen = gen + 1 WHERE topic = 'signing_keys';
END;

CREATE TRIGGER signing_keys_update_changed AFTER UPDATE ON signing_keys
BEGIN
    UPDATE changes SET gen = gen + 1 WHERE topic = 'signing_keys';
END;

CREATE TRIGGER signing_keys_delete_changed AFTER DELETE ON signing_keys
BEGIN
    UPDATE changes SET gen = gen + 1 WHERE topic = 'signing_keys';
END;

CREATE TRIGGER vault_keks_insert_changed AFTER INSERT ON vault_keks
BEGIN
    UPDATE changes SET gen = gen + 1 WHERE topic = 'keks';
END;

CREATE TRIGGER vault_keks_update_changed AFTER UPDATE ON vault_keks
BEGIN
    UPDATE changes SET gen = gen + 1 WHERE topic = 'keks';
END;

CREATE TRIGGER vault_keks_delete_changed AFTER DELETE ON vault_keks
BEGIN
    UPDATE changes SET gen = gen + 1 WHERE topic = 'keks';
END;

CREATE TRIGGER kek_rotations_insert_changed AFTER INSERT ON kek_rotations
BEGIN
    UPDATE changes SET gen = gen + 1 WHERE topic = 'keks';
END;

CREATE TRIGGER revocations_insert_changed AFTER INSERT ON revocations
BEGIN
    UPDATE changes SET gen = gen + 1 WHERE topic = 'revocations';
END;

CREATE TRIGGER secret_versions_insert_changed AFTER INSERT ON secret_versions
BEGIN
    UPDATE changes SET gen = gen + 1 WHERE topic = 'secrets';
END;

CREATE TRIGGER secret_versions_delete_changed AFTER DELETE ON secret_versions
BEGIN
    UPDATE changes SET gen = gen + 1 WHERE topic = 'secrets';
END;

CREATE TRIGGER mcp_servers_insert_changed AFTER INSERT ON mcp_servers
BEGIN
    UPDATE changes SET gen = gen + 1 WHERE topic = 'mcp_servers';
END;

CREATE TRIGGER mcp_servers_update_changed AFTER UPDATE ON mcp_servers
BEGIN
    UPDATE changes SET gen = gen + 1 WHERE topic = 'mcp_servers';
END;

CREATE TRIGGER mcp_servers_delete_changed AFTER DELETE ON mcp_servers
BEGIN
    UPDATE changes SET gen = gen + 1 WHERE topic = 'mcp_servers';
END;
