package store

// Column lists, in the order the scan functions read them.
const (
	providerCols = `id, name, dialect, base_url, models, is_default, secret_id, created_at, env, preset, api_version`
	secretCols   = `id, version, format, kek_id, wrapped_dek, ciphertext, created_at, destroy_at`
	keyCols      = `id, name, env, prefix, hash, allow_models, allow_providers, created_at, expires_at, revoked_at, last_used_at, limits, group_name,
		allow_paths, allow_ips, hours, suspended_at, rotated_from,
		rotate_every, rotate_grace, deliver_to, next_rotation_at, client_cert, step_up_until, allow_services,
		team, owner_user, created_by, allow_tools, leak_action`
	adminCols      = `id, name, hash, role, created_at, revoked_at, user_id, kind, prefix, expires_at, last_used_at, last_used_from`
	secretMetaCols = `s.name, s.record_id, s.created_at, s.updated_at, s.deleted_at, s.purge_at, s.owner,
		COALESCE((SELECT MAX(v.version) FROM secret_versions v WHERE v.id = s.record_id), 0),
		(SELECT COUNT(*) FROM secret_versions v WHERE v.id = s.record_id)`
	kekCols      = `id, kind, params, created_at`
	rotationCols = `id, from_kek, to_kek, batch_size, batch_interval, rewrapped, last_error, started_at, heartbeat_at, finished_at`
)

// queries holds every statement the Store runs, with placeholders already
// rewritten for the Store's dialect when it was opened.
type queries struct {
	createProvider, getProvider, listProviders, deleteProvider                string
	putSecret, getSecret, latestSecret, deleteSecret                          string
	createKey, getKey, getKeyByName, getKeyByHash, listKeys                   string
	revokeKey, touchKey                                                       string
	createAdminToken, getAdminTokenByHash, countAdminTokens, revokeAdminToken string
	listAdminTokens                                                           string

	listSecretVersions, scheduleDestroy, destroyDue                    string
	listSecretVersionsLike, deleteSecretVersion                        string
	rewrapCandidates, rewrap, countByKEK, countNotUnder                string
	createSecretMeta, getSecretMeta, listSecretMeta, listAllSecretMeta string
	touchSecretMeta, softDeleteSecret, restoreSecret, deleteSecretMeta string
	dueForPurge                                                        string
	listKEKs, putKEK                                                   string
	createRotation, latestRotation, listRotations, rotationProgress    string
	finishRotation                                                     string
	countProviders, countKeys, countSecretMeta                         string
	clearVersions, clearAdminTokens, clearKEKs, clearRotations         string

	updateKeyLimits, updateKeyGroup                             string
	createGroup, getGroup, listGroups, updateGroup, deleteGroup string
	addUsage, listUsage, countGroups                            string
	listAllSecretVersions                                       string
}

// newQueries prepares the statement texts for dialect d.
func newQueries(d Dialect) *queries {
	r := func(q string) string { return rebind(d, q) }
	return &queries{
		createProvider: r(`INSERT INTO providers (` + providerCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		getProvider:    r(`SELECT ` + providerCols + ` FROM providers WHERE name = ?`),
		listProviders:  r(`SELECT ` + providerCols + ` FROM providers ORDER BY name`),
		deleteProvider: r(`DELETE FROM providers WHERE name = ?`),

		putSecret:    r(`INSERT INTO secret_versions (` + secretCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
		getSecret:    r(`SELECT ` + secretCols + ` FROM secret_versions WHERE id = ? AND version = ?`),
		latestSecret: r(`SELECT ` + secretCols + ` FROM secret_versions WHERE id = ? ORDER BY version DESC LIMIT 1`),
		deleteSecret: r(`DELETE FROM secret_versions WHERE id = ?`),

		createKey:    r(`INSERT INTO api_keys (` + keyCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		getKey:       r(`SELECT ` + keyCols + ` FROM api_keys WHERE id = ?`),
		getKeyByName: r(`SELECT ` + keyCols + ` FROM api_keys WHERE name = ?`),
		getKeyByHash: r(`SELECT ` + keyCols + ` FROM api_keys WHERE hash = ?`),
		listKeys:     r(`SELECT ` + keyCols + ` FROM api_keys ORDER BY created_at, id`),
		// The first revocation time wins: revoking again changes nothing.
		revokeKey: r(`UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? RETURNING ` + keyCols),
		// last_used_at only moves forward, so out-of-order touches from
		// concurrent requests cannot make a key look less recently used.
		touchKey: r(`UPDATE api_keys SET last_used_at = CASE WHEN last_used_at >= ? THEN last_used_at ELSE ? END WHERE id = ?`),

		createAdminToken:    r(`INSERT INTO admin_tokens (` + adminCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		getAdminTokenByHash: r(`SELECT ` + adminCols + ` FROM admin_tokens WHERE hash = ?`),
		countAdminTokens:    r(`SELECT COUNT(*) FROM admin_tokens WHERE revoked_at IS NULL`),
		revokeAdminToken:    r(`UPDATE admin_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`),
		listAdminTokens:     r(`SELECT ` + adminCols + ` FROM admin_tokens ORDER BY created_at, id`),

		listSecretVersions:     r(`SELECT ` + secretCols + ` FROM secret_versions WHERE id = ? ORDER BY version`),
		listSecretVersionsLike: r(`SELECT ` + secretCols + ` FROM secret_versions WHERE id LIKE ? ORDER BY id, version`),
		// Only a version still as the caller read it is deleted, so a
		// rewrap or a new value racing the delete is not lost with it.
		deleteSecretVersion: r(`DELETE FROM secret_versions WHERE id = ? AND version = ? AND kek_id = ? AND wrapped_dek = ?`),
		scheduleDestroy:     r(`UPDATE secret_versions SET destroy_at = ? WHERE id = ? AND version < ? AND destroy_at IS NULL`),
		// The newest version of a record is never destroyed, whatever its
		// destroy_at says: a record always keeps a current value.
		destroyDue: r(`DELETE FROM secret_versions WHERE destroy_at IS NOT NULL AND destroy_at <= ?
			AND version < (SELECT MAX(n.version) FROM secret_versions n WHERE n.id = secret_versions.id)`),
		rewrapCandidates: r(`SELECT ` + secretCols + ` FROM secret_versions WHERE kek_id <> ? AND id NOT LIKE ?
			AND (id > ? OR (id = ? AND version > ?)) ORDER BY id, version LIMIT ?`),
		// Only a version still wrapped as the caller read it is rewrapped, so
		// two nodes rewrapping at once, or a put racing a rewrap, lose nothing.
		rewrap:        r(`UPDATE secret_versions SET kek_id = ?, wrapped_dek = ? WHERE id = ? AND version = ? AND kek_id = ? AND wrapped_dek = ?`),
		countByKEK:    r(`SELECT kek_id, format, COUNT(*) FROM secret_versions GROUP BY kek_id, format ORDER BY kek_id, format`),
		countNotUnder: r(`SELECT COUNT(*) FROM secret_versions WHERE kek_id <> ? AND id NOT LIKE ?`),

		createSecretMeta:  r(`INSERT INTO secrets (name, record_id, created_at, updated_at, deleted_at, purge_at, owner) VALUES (?, ?, ?, ?, ?, ?, ?)`),
		getSecretMeta:     r(`SELECT ` + secretMetaCols + ` FROM secrets s WHERE s.name = ?`),
		listSecretMeta:    r(`SELECT ` + secretMetaCols + ` FROM secrets s WHERE s.deleted_at IS NULL ORDER BY s.name`),
		listAllSecretMeta: r(`SELECT ` + secretMetaCols + ` FROM secrets s ORDER BY s.name`),
		touchSecretMeta:   r(`UPDATE secrets SET updated_at = ? WHERE name = ?`),
		softDeleteSecret:  r(`UPDATE secrets SET deleted_at = ?, purge_at = ? WHERE name = ? AND deleted_at IS NULL`),
		restoreSecret:     r(`UPDATE secrets SET deleted_at = NULL, purge_at = NULL, updated_at = ? WHERE name = ? AND deleted_at IS NOT NULL`),
		deleteSecretMeta:  r(`DELETE FROM secrets WHERE name = ?`),
		dueForPurge:       r(`SELECT name FROM secrets WHERE purge_at IS NOT NULL AND purge_at <= ? ORDER BY name`),

		listKEKs: r(`SELECT ` + kekCols + ` FROM vault_keks ORDER BY created_at, id`),
		putKEK:   r(`INSERT INTO vault_keks (` + kekCols + `) VALUES (?, ?, ?, ?)`),

		createRotation:   r(`INSERT INTO kek_rotations (` + rotationCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		latestRotation:   r(`SELECT ` + rotationCols + ` FROM kek_rotations ORDER BY started_at DESC, id DESC LIMIT 1`),
		listRotations:    r(`SELECT ` + rotationCols + ` FROM kek_rotations ORDER BY started_at, id`),
		rotationProgress: r(`UPDATE kek_rotations SET rewrapped = rewrapped + ?, last_error = ?, heartbeat_at = ? WHERE id = ?`),
		finishRotation:   r(`UPDATE kek_rotations SET finished_at = ?, heartbeat_at = ?, last_error = '' WHERE id = ? AND finished_at IS NULL`),

		countProviders:        r(`SELECT COUNT(*) FROM providers`),
		countKeys:             r(`SELECT COUNT(*) FROM api_keys`),
		countSecretMeta:       r(`SELECT COUNT(*) FROM secrets`),
		clearVersions:         r(`DELETE FROM secret_versions`),
		clearAdminTokens:      r(`DELETE FROM admin_tokens`),
		clearKEKs:             r(`DELETE FROM vault_keks`),
		clearRotations:        r(`DELETE FROM kek_rotations`),
		listAllSecretVersions: r(`SELECT ` + secretCols + ` FROM secret_versions ORDER BY id, version`),

		updateKeyLimits: r(`UPDATE api_keys SET limits = ? WHERE id = ? RETURNING ` + keyCols),
		// A key can join only a group that exists, checked in the same statement.
		updateKeyGroup: r(`UPDATE api_keys SET group_name = ? WHERE id = ?
			AND (CAST(? AS TEXT) IS NULL OR EXISTS (SELECT 1 FROM key_groups g WHERE g.name = ?)) RETURNING ` + keyCols),
		createGroup: r(`INSERT INTO key_groups (name, limits, created_at) VALUES (?, ?, ?)`),
		getGroup:    r(`SELECT g.name, g.limits, g.created_at, (SELECT COUNT(*) FROM api_keys k WHERE k.group_name = g.name) FROM key_groups g WHERE g.name = ?`),
		listGroups:  r(`SELECT g.name, g.limits, g.created_at, (SELECT COUNT(*) FROM api_keys k WHERE k.group_name = g.name) FROM key_groups g ORDER BY g.name`),
		updateGroup: r(`UPDATE key_groups SET limits = ? WHERE name = ?`),
		// A group with keys in it is not deleted; the caller reports why.
		deleteGroup: r(`DELETE FROM key_groups WHERE name = ? AND NOT EXISTS (SELECT 1 FROM api_keys k WHERE k.group_name = key_groups.name)`),
		addUsage: r(`INSERT INTO usage_daily (key_id, day, model, requests, input_tokens, output_tokens, micro_usd, denials)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (key_id, day, model) DO UPDATE SET
				requests = usage_daily.requests + excluded.requests,
				input_tokens = usage_daily.input_tokens + excluded.input_tokens,
				output_tokens = usage_daily.output_tokens + excluded.output_tokens,
				micro_usd = usage_daily.micro_usd + excluded.micro_usd,
				denials = usage_daily.denials + excluded.denials`),
		countGroups: r(`SELECT COUNT(*) FROM key_groups`),
		listUsage: r(`SELECT key_id, day, model, requests, input_tokens, output_tokens, micro_usd, denials
			FROM usage_daily WHERE key_id = ? AND day >= ? ORDER BY day DESC, model`),
	}
}
