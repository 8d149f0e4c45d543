package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// ErrTokenReused is returned by UseRefreshToken for a refresh token that
// was already exchanged: someone holds a copy.
var ErrTokenReused = errors.New("refresh token already used")

// tokenQueries are the statements of this file, prepared per dialect.
type tokenQueries struct {
	addRevocation, revocationsSince, latestRevocation, pruneRevocations string
	putSigningKey, listSigningKeys                                      string
	createFamily, getFamily, revokeFamily, revokeKeyFamilies            string
	putRefresh, useRefresh, getRefresh                                  string
	setKeyScopes, setKeySuspended, setKeyExpiry, setKeyStepUp           string
	setKeyServices                                                      string
	setKeyRotation, dueRotations, claimRotation                         string
	setKeyClientCert                                                    string
}

const (
	familyCols  = `id, key_id, scope, cnf, amr, created_at, expires_at, revoked_at, reason, user_id`
	refreshCols = `hash, family_id, created_at, expires_at, used_at`
	signingCols = `kid, alg, public_key, created_at, sign_from, sign_until, publish_until`
)

func newTokenQueries(d Dialect) tokenQueries {
	r := func(q string) string { return rebind(d, q) }
	return tokenQueries{
		addRevocation:    r(`INSERT INTO revocations (kind, subject, at, until) VALUES (?, ?, ?, ?) RETURNING seq`),
		revocationsSince: r(`SELECT seq, kind, subject, at, until FROM revocations WHERE seq > ? ORDER BY seq LIMIT 1000`),
		latestRevocation: r(`SELECT COALESCE(MAX(seq), 0) FROM revocations`),
		pruneRevocations: r(`DELETE FROM revocations WHERE until < ?`),
		putSigningKey:    r(`INSERT INTO signing_keys (` + signingCols + `) VALUES (?, ?, ?, ?, ?, ?, ?)`),
		listSigningKeys:  r(`SELECT ` + signingCols + ` FROM signing_keys ORDER BY sign_from, kid`),
		createFamily:     r(`INSERT INTO token_families (` + familyCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		getFamily:        r(`SELECT ` + familyCols + ` FROM token_families WHERE id = ?`),
		// The first revocation wins, with its reason.
		revokeFamily: r(`UPDATE token_families SET revoked_at = COALESCE(revoked_at, ?),
			reason = CASE WHEN revoked_at IS NULL THEN ? ELSE reason END WHERE id = ?`),
		revokeKeyFamilies: r(`UPDATE token_families SET revoked_at = ?, reason = ? WHERE key_id = ? AND revoked_at IS NULL`),
		putRefresh:        r(`INSERT INTO refresh_tokens (` + refreshCols + `) VALUES (?, ?, ?, ?, ?)`),
		// Only one exchange of a refresh token can mark it used.
		useRefresh:       r(`UPDATE refresh_tokens SET used_at = ? WHERE hash = ? AND used_at IS NULL RETURNING ` + refreshCols),
		getRefresh:       r(`SELECT ` + refreshCols + ` FROM refresh_tokens WHERE hash = ?`),
		setKeyClientCert: r(`UPDATE api_keys SET client_cert = ? WHERE id = ? RETURNING ` + keyCols),
		setKeyScopes:     r(`UPDATE api_keys SET allow_paths = ?, allow_ips = ?, hours = ? WHERE id = ? RETURNING ` + keyCols),
		setKeyServices:   r(`UPDATE api_keys SET allow_services = ? WHERE id = ? RETURNING ` + keyCols),
		setKeyRotation:   r(`UPDATE api_keys SET rotate_every = ?, rotate_grace = ?, deliver_to = ?, next_rotation_at = ? WHERE id = ? RETURNING ` + keyCols),
		dueRotations: r(`SELECT ` + keyCols + ` FROM api_keys WHERE rotate_every > 0 AND next_rotation_at IS NOT NULL AND next_rotation_at <= ?
			AND revoked_at IS NULL ORDER BY next_rotation_at LIMIT 100`),
		// Only one node claims a due rotation: the one that moves its time.
		claimRotation:   r(`UPDATE api_keys SET next_rotation_at = NULL WHERE id = ? AND next_rotation_at = ?`),
		setKeySuspended: r(`UPDATE api_keys SET suspended_at = ? WHERE id = ? RETURNING ` + keyCols),
		setKeyStepUp:    r(`UPDATE api_keys SET step_up_until = ? WHERE id = ? RETURNING ` + keyCols),
		// A key's expiry only ever moves earlier.
		setKeyExpiry: r(`UPDATE api_keys SET expires_at = CASE WHEN expires_at IS NOT NULL AND expires_at < ? THEN expires_at ELSE ? END
			WHERE id = ? RETURNING ` + keyCols),
	}
}

// AddRevocation records a revocation for every node to apply and returns
// its sequence number.
func (s *Store) AddRevocation(ctx context.Context, r Revocation) (int64, error) {
	var seq int64
	err := s.w.QueryRowContext(ctx, s.t.addRevocation, r.Kind, r.Subject, s.timeArg(r.At), s.timeArg(r.Until)).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("store: record revocation of %s %q: %w", r.Kind, r.Subject, mapErr(err))
	}
	return seq, nil
}

// RevocationsSince returns up to 1000 revocations after seq, oldest first.
func (s *Store) RevocationsSince(ctx context.Context, seq int64) ([]Revocation, error) {
	rows, err := s.r.QueryContext(ctx, s.t.revocationsSince, seq)
	if err != nil {
		return nil, fmt.Errorf("store: read revocations: %w", err)
	}
	return collect(rows, func(r rowScanner) (Revocation, error) {
		var v Revocation
		err := r.Scan(&v.Seq, &v.Kind, &v.Subject, timeCol{&v.At}, timeCol{&v.Until})
		return v, err
	}, "read revocations")
}

// LatestRevocationSeq returns the newest revocation's sequence number, or 0.
func (s *Store) LatestRevocationSeq(ctx context.Context) (int64, error) {
	var seq int64
	if err := s.r.QueryRowContext(ctx, s.t.latestRevocation).Scan(&seq); err != nil {
		return 0, fmt.Errorf("store: read revocations: %w", err)
	}
	return seq, nil
}

// PruneRevocations forgets revocations whose subjects have expired anyway.
func (s *Store) PruneRevocations(ctx context.Context, now time.Time) (int, error) {
	res, err := s.w.ExecContext(ctx, s.t.pruneRevocations, s.timeArg(now))
	if err != nil {
		return 0, fmt.Errorf("store: prune revocations: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// PutSigningKey records a signing key's public half, or returns ErrConflict.
func (s *Store) PutSigningKey(ctx context.Context, k SigningKey) error {
	_, err := s.w.ExecContext(ctx, s.t.putSigningKey, k.KID, k.Alg, bytesArg(k.PublicKey),
		s.timeArg(k.CreatedAt), s.timeArg(k.SignFrom), s.timeArg(k.SignUntil), s.timeArg(k.PublishUntil))
	if err != nil {
		return fmt.Errorf("store: record signing key %q: %w", k.KID, mapErr(err))
	}
	return nil
}

// ListSigningKeys returns every signing key, oldest first.
func (s *Store) ListSigningKeys(ctx context.Context) ([]SigningKey, error) {
	rows, err := s.r.QueryContext(ctx, s.t.listSigningKeys)
	if err != nil {
		return nil, fmt.Errorf("store: list signing keys: %w", err)
	}
	return collect(rows, func(r rowScanner) (SigningKey, error) {
		var k SigningKey
		err := r.Scan(&k.KID, &k.Alg, &k.PublicKey, timeCol{&k.CreatedAt}, timeCol{&k.SignFrom}, timeCol{&k.SignUntil}, timeCol{&k.PublishUntil})
		return k, err
	}, "list signing keys")
}

// CreateTokenFamily stores a new refresh-token family, or ErrConflict.
func (s *Store) CreateTokenFamily(ctx context.Context, f TokenFamily) error {
	_, err := s.w.ExecContext(ctx, s.t.createFamily, f.ID, f.KeyID, limitsArg(f.Scope), f.Cnf, listArg(f.AMR),
		s.timeArg(f.CreatedAt), s.timeArg(f.ExpiresAt), s.nullTimeArg(f.RevokedAt), f.Reason, f.UserID)
	if err != nil {
		return fmt.Errorf("store: create token family: %w", mapErr(err))
	}
	return nil
}

// GetTokenFamily returns a family, or ErrNotFound.
func (s *Store) GetTokenFamily(ctx context.Context, id string) (TokenFamily, error) {
	var f TokenFamily
	err := s.r.QueryRowContext(ctx, s.t.getFamily, id).Scan(&f.ID, &f.KeyID, limitsCol{&f.Scope}, &f.Cnf, listCol{&f.AMR},
		timeCol{&f.CreatedAt}, timeCol{&f.ExpiresAt}, nullTimeCol{&f.RevokedAt}, &f.Reason, &f.UserID)
	if err != nil {
		return TokenFamily{}, fmt.Errorf("store: get token family: %w", mapErr(err))
	}
	return f, nil
}

// RevokeTokenFamily revokes a family; the first revocation keeps its time
// and reason. It returns ErrNotFound for an unknown family.
func (s *Store) RevokeTokenFamily(ctx context.Context, id string, at time.Time, reason string) error {
	res, err := s.w.ExecContext(ctx, s.t.revokeFamily, s.timeArg(at), reason, id)
	if err == nil {
		err = rowsAffectedOrNotFound(res)
	}
	if err != nil {
		return fmt.Errorf("store: revoke token family: %w", mapErr(err))
	}
	return nil
}

// RevokeKeyFamilies revokes every live family of a key and returns how many.
func (s *Store) RevokeKeyFamilies(ctx context.Context, keyID string, at time.Time, reason string) (int, error) {
	res, err := s.w.ExecContext(ctx, s.t.revokeKeyFamilies, s.timeArg(at), reason, keyID)
	if err != nil {
		return 0, fmt.Errorf("store: revoke token families of key %q: %w", keyID, mapErr(err))
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// PutRefreshToken stores a refresh token's hash, or returns ErrConflict.
func (s *Store) PutRefreshToken(ctx context.Context, t RefreshToken) error {
	_, err := s.w.ExecContext(ctx, s.t.putRefresh, bytesArg(t.Hash), t.FamilyID, s.timeArg(t.CreatedAt), s.timeArg(t.ExpiresAt), s.nullTimeArg(t.UsedAt))
	if err != nil {
		return fmt.Errorf("store: store refresh token: %w", mapErr(err))
	}
	return nil
}

// UseRefreshToken marks a refresh token used and returns it. Of concurrent
// calls with one token, exactly one succeeds; the others, and any later
// call, get the token's record with an error wrapping ErrTokenReused. An
// unknown token is ErrNotFound.
func (s *Store) UseRefreshToken(ctx context.Context, hash []byte, at time.Time) (RefreshToken, error) {
	t, err := scanRefresh(s.w.QueryRowContext(ctx, s.t.useRefresh, s.timeArg(at), bytesArg(hash)))
	if err == nil {
		return t, nil
	}
	if err = mapErr(err); !errors.Is(err, ErrNotFound) {
		return RefreshToken{}, fmt.Errorf("store: use refresh token: %w", err)
	}
	t, err = scanRefresh(s.w.QueryRowContext(ctx, s.t.getRefresh, bytesArg(hash)))
	if err != nil {
		return RefreshToken{}, fmt.Errorf("store: use refresh token: %w", mapErr(err))
	}
	return t, fmt.Errorf("store: use refresh token of family %q: %w", t.FamilyID, ErrTokenReused)
}

func scanRefresh(row rowScanner) (RefreshToken, error) {
	var t RefreshToken
	err := row.Scan(&t.Hash, &t.FamilyID, timeCol{&t.CreatedAt}, timeCol{&t.ExpiresAt}, nullTimeCol{&t.UsedAt})
	return t, err
}

// SetKeyScopes replaces a key's path rules, networks and time windows and
// returns it as stored, or ErrNotFound.
func (s *Store) SetKeyScopes(ctx context.Context, id string, paths, ips []string, hours string) (Key, error) {
	k, err := scanKey(s.w.QueryRowContext(ctx, s.t.setKeyScopes, listArg(paths), listArg(ips), hours, id))
	if err != nil {
		return Key{}, fmt.Errorf("store: update scopes of key %q: %w", id, mapErr(err))
	}
	return k, nil
}

// SetKeyServices replaces the passthrough services a key may reach and
// returns it as stored, or ErrNotFound.
func (s *Store) SetKeyServices(ctx context.Context, id string, services []string) (Key, error) {
	k, err := scanKey(s.w.QueryRowContext(ctx, s.t.setKeyServices, listArg(services), id))
	if err != nil {
		return Key{}, fmt.Errorf("store: update services of key %q: %w", id, mapErr(err))
	}
	return k, nil
}

// SetKeySuspended suspends a key (at set) or resumes it (nil) and returns
// it as stored, or ErrNotFound.
func (s *Store) SetKeySuspended(ctx context.Context, id string, at *time.Time) (Key, error) {
	k, err := scanKey(s.w.QueryRowContext(ctx, s.t.setKeySuspended, s.nullTimeArg(at), id))
	if err != nil {
		return Key{}, fmt.Errorf("store: suspend or resume key %q: %w", id, mapErr(err))
	}
	return k, nil
}

// SetKeyStepUp makes every request of a key need a second factor until
// until, or lifts that (nil), and returns the key as stored, or ErrNotFound.
func (s *Store) SetKeyStepUp(ctx context.Context, id string, until *time.Time) (Key, error) {
	k, err := scanKey(s.w.QueryRowContext(ctx, s.t.setKeyStepUp, s.nullTimeArg(until), id))
	if err != nil {
		return Key{}, fmt.Errorf("store: set or lift the step-up requirement of key %q: %w", id, mapErr(err))
	}
	return k, nil
}

// ShortenKeyExpiry makes a key expire at at, unless it already expires
// earlier, and returns it as stored, or ErrNotFound. A key's life is never
// extended this way.
func (s *Store) ShortenKeyExpiry(ctx context.Context, id string, at time.Time) (Key, error) {
	a := s.timeArg(at)
	k, err := scanKey(s.w.QueryRowContext(ctx, s.t.setKeyExpiry, a, a, id))
	if err != nil {
		return Key{}, fmt.Errorf("store: set expiry of key %q: %w", id, mapErr(err))
	}
	return k, nil
}

// SetKeyRotation sets a key's rotation policy and returns it as stored, or
// ErrNotFound. every 0 turns automatic rotation off.
func (s *Store) SetKeyRotation(ctx context.Context, id string, every, grace time.Duration, deliverTo string, next *time.Time) (Key, error) {
	k, err := scanKey(s.w.QueryRowContext(ctx, s.t.setKeyRotation, every.Microseconds(), grace.Microseconds(), deliverTo, s.nullTimeArg(next), id))
	if err != nil {
		return Key{}, fmt.Errorf("store: set rotation of key %q: %w", id, mapErr(err))
	}
	return k, nil
}

// DueRotations returns up to 100 live keys whose automatic rotation is due.
func (s *Store) DueRotations(ctx context.Context, now time.Time) ([]Key, error) {
	rows, err := s.r.QueryContext(ctx, s.t.dueRotations, s.timeArg(now))
	if err != nil {
		return nil, fmt.Errorf("store: find keys due for rotation: %w", err)
	}
	return collect(rows, scanKey, "find keys due for rotation")
}

// ClaimRotation takes a due rotation for this node: it reports true to
// exactly one of the nodes that try with the same due time.
func (s *Store) ClaimRotation(ctx context.Context, id string, due time.Time) (bool, error) {
	res, err := s.w.ExecContext(ctx, s.t.claimRotation, id, s.timeArg(due))
	if err != nil {
		return false, fmt.Errorf("store: claim rotation of key %q: %w", id, mapErr(err))
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// GetRefreshToken returns a refresh token's record by its hash, or ErrNotFound.
func (s *Store) GetRefreshToken(ctx context.Context, hash []byte) (RefreshToken, error) {
	t, err := scanRefresh(s.r.QueryRowContext(ctx, s.t.getRefresh, bytesArg(hash)))
	if err != nil {
		return RefreshToken{}, fmt.Errorf("store: get refresh token: %w", mapErr(err))
	}
	return t, nil
}

// SetKeyClientCert sets the client certificate a key's requests must
// present ("" for none) and returns the key as stored, or ErrNotFound.
func (s *Store) SetKeyClientCert(ctx context.Context, id, match string) (Key, error) {
	k, err := scanKey(s.w.QueryRowContext(ctx, s.t.setKeyClientCert, match, id))
	if err != nil {
		return Key{}, fmt.Errorf("store: set client certificate of key %q: %w", id, mapErr(err))
	}
	return k, nil
}

// KeyHistory is what the risk rules learned of one key (JSON), as of At.
type KeyHistory struct {
	KeyID string
	Data  []byte
	At    time.Time
}

// SaveKeyHistories stores what the risk rules learned of many keys,
// replacing their previous records, in one transaction: a busy gateway
// flushes thousands of keys at once, and one commit per key would cost
// more than the requests themselves.
func (s *Store) SaveKeyHistories(ctx context.Context, hs []KeyHistory) error {
	q := rebind(s.dialect, `INSERT INTO key_history (key_id, data, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (key_id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at`)
	// One order on every node: concurrent batches wait, never deadlock.
	hs = slices.Clone(hs)
	slices.SortFunc(hs, func(a, b KeyHistory) int { return cmp.Compare(a.KeyID, b.KeyID) })
	return s.InTx(ctx, func(tx *Store) error {
		for _, h := range hs {
			if _, err := tx.w.ExecContext(ctx, q, h.KeyID, string(h.Data), tx.timeArg(h.At)); err != nil {
				return fmt.Errorf("store: save history of key %q: %w", h.KeyID, mapErr(err))
			}
		}
		return nil
	})
}

// LoadKeyHistory returns what the risk rules learned of a key, or ErrNotFound.
func (s *Store) LoadKeyHistory(ctx context.Context, keyID string) ([]byte, error) {
	var data string
	err := s.r.QueryRowContext(ctx, rebind(s.dialect, `SELECT data FROM key_history WHERE key_id = ?`), keyID).Scan(&data)
	if err != nil {
		return nil, fmt.Errorf("store: load history of key %q: %w", keyID, mapErr(err))
	}
	return []byte(data), nil
}

// KeysExpiringInUse returns up to 100 live keys that expire within the
// given window after now and were used within it before now: callers still
// depend on a key about to stop working.
func (s *Store) KeysExpiringInUse(ctx context.Context, now time.Time, window time.Duration) ([]Key, error) {
	q := rebind(s.dialect, `SELECT `+keyCols+` FROM api_keys WHERE revoked_at IS NULL AND expires_at IS NOT NULL
		AND expires_at > ? AND expires_at <= ? AND last_used_at IS NOT NULL AND last_used_at >= ? ORDER BY expires_at LIMIT 100`)
	rows, err := s.r.QueryContext(ctx, q, s.timeArg(now), s.timeArg(now.Add(window)), s.timeArg(now.Add(-window)))
	if err != nil {
		return nil, fmt.Errorf("store: find keys expiring in use: %w", err)
	}
	return collect(rows, scanKey, "find keys expiring in use")
}
