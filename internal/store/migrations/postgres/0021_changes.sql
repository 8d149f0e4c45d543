-- keygate schema version 21 for PostgreSQL: a change to what every node caches
-- (providers and services, key groups, token signing keys, key-encryption
-- keys, the revocation log, the vault's records, MCP servers) reaches every node at once.
--
-- Each watched table bumps its topic's generation in the same transaction
-- as the change, from a trigger, so no code path can forget to. A node
-- reads the few generations several times a second and reloads only the
-- topics that moved. On PostgreSQL the trigger also sends
-- NOTIFY keygate_changes with the topic, delivered at commit, so a listening
-- node reloads within milliseconds; the generations stay as the fallback
-- while its listening connection is down.

CREATE TABLE changes (
    topic TEXT NOT NULL PRIMARY KEY,
    gen   BIGINT NOT NULL DEFAULT 0
);

INSERT INTO changes (topic) VALUES ('providers'), ('key_groups'), ('signing_keys'), ('keks'), ('revocations'), ('secrets'), ('mcp_servers');

CREATE FUNCTION keygate_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE changes SET gen = gen + 1 WHERE topic = TG_ARGV[0];
    PERFORM pg_notify('keygate_changes', TG_ARGV[0]);
    RETURN NULL;
END;
$$;

CREATE TRIGGER providers_changed AFTER INSERT OR UPDATE OR DELETE ON providers
    FOR EACH STATEMENT EXECUTE FUNCTION keygate_changed('providers');

CREATE TRIGGER key_groups_changed AFTER INSERT OR UPDATE OR DELETE ON key_groups
    FOR EACH STATEMENT EXECUTE FUNCTION keygate_changed('key_groups');

CREATE TRIGGER signing_keys_changed AFTER INSERT OR UPDATE OR DELETE ON signing_keys
    FOR EACH STATEMENT EXECUTE FUNCTION keygate_changed('signing_keys');

CREATE TRIGGER vault_keks_changed AFTER INSERT OR UPDATE OR DELETE ON vault_keks
    FOR EACH STATEMENT EXECUTE FUNCTION keygate_changed('keks');

CREATE TRIGGER kek_rotations_changed AFTER INSERT ON kek_rotations
    FOR EACH STATEMENT EXECUTE FUNCTION keygate_changed('keks');

CREATE TRIGGER revocations_changed AFTER INSERT ON revocations
    FOR EACH STATEMENT EXECUTE FUNCTION keygate_changed('revocations');

CREATE TRIGGER secret_versions_changed AFTER INSERT OR DELETE ON secret_versions
    FOR EACH STATEMENT EXECUTE FUNCTION keygate_changed('secrets');

CREATE TRIGGER mcp_servers_changed AFTER INSERT OR UPDATE OR DELETE ON mcp_servers
    FOR EACH STATEMENT EXECUTE FUNCTION keygate_changed('mcp_servers');
