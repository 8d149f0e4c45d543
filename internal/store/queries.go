package store

// Column lists, in the order the scan functions read them.
const (
	providerCols = `id, name, dialect, base_url, models, is_default, secret_id, created_at`
	secretCols   = `id, version, format, kek_id, wrapped_dek, ciphertext, created_at`
	keyCols      = `id, name, env, prefix, hash, allow_models, allow_providers, created_at, expires_at, revoked_at, last_used_at`
	adminCols    = `id, name, hash, created_at, revoked_at`
)

// queries holds every statement the Store runs, with placeholders already
// rewritten for the Store's dialect when it was opened.
type queries struct {
	createProvider, getProvider, listProviders, deleteProvider                string
	putSecret, getSecret, latestSecret, deleteSecret                          string
	createKey, getKey, getKeyByName, getKeyByHash, listKeys                   string
	revokeKey, touchKey                                                       string
	createAdminToken, getAdminTokenByHash, countAdminTokens, revokeAdminToken string
}

// newQueries prepares the statement texts for dialect d.
func newQueries(d Dialect) *queries {
	r := func(q string) string { return rebind(d, q) }
	return &queries{
		createProvider: r(`INSERT INTO providers (` + providerCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
		getProvider:    r(`SELECT ` + providerCols + ` FROM providers WHERE name = ?`),
		listProviders:  r(`SELECT ` + providerCols + ` FROM providers ORDER BY name`),
		deleteProvider: r(`DELETE FROM providers WHERE name = ?`),

		putSecret:    r(`INSERT INTO secret_versions (` + secretCols + `) VALUES (?, ?, ?, ?, ?, ?, ?)`),
		getSecret:    r(`SELECT ` + secretCols + ` FROM secret_versions WHERE id = ? AND version = ?`),
		latestSecret: r(`SELECT ` + secretCols + ` FROM secret_versions WHERE id = ? ORDER BY version DESC LIMIT 1`),
		deleteSecret: r(`DELETE FROM secret_versions WHERE id = ?`),

		createKey:    r(`INSERT INTO api_keys (` + keyCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		getKey:       r(`SELECT ` + keyCols + ` FROM api_keys WHERE id = ?`),
		getKeyByName: r(`SELECT ` + keyCols + ` FROM api_keys WHERE name = ?`),
		getKeyByHash: r(`SELECT ` + keyCols + ` FROM api_keys WHERE hash = ?`),
		listKeys:     r(`SELECT ` + keyCols + ` FROM api_keys ORDER BY created_at, id`),
		// The first revocation time wins: revoking again changes nothing.
		revokeKey: r(`UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? RETURNING ` + keyCols),
		// last_used_at only moves forward, so out-of-order touches from
		// concurrent requests cannot make a key look less recently used.
		touchKey: r(`UPDATE api_keys SET last_used_at = CASE WHEN last_used_at >= ? THEN last_used_at ELSE ? END WHERE id = ?`),

		createAdminToken:    r(`INSERT INTO admin_tokens (` + adminCols + `) VALUES (?, ?, ?, ?, ?)`),
		getAdminTokenByHash: r(`SELECT ` + adminCols + ` FROM admin_tokens WHERE hash = ?`),
		countAdminTokens:    r(`SELECT COUNT(*) FROM admin_tokens WHERE revoked_at IS NULL`),
		revokeAdminToken:    r(`UPDATE admin_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`),
	}
}
