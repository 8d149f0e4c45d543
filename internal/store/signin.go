package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Session is a signed-in session of the admin plane. Only a keyed hash of
// its token is kept.
type Session struct {
	ID     string // "ses_" + random: safe to show and log
	Hash   []byte // HMAC-SHA256(pepper, token); unique
	UserID string // the user signed in; "" for a session of an unowned admin token
	// TokenID is the admin token a token sign-in exchanged; that token is
	// checked again on every request, so revoking it ends the session.
	TokenID    string
	CapRole    string // caps the user's role, as the exchanged token did; "" for none
	Method     string // how it signed in: password, oidc, webauthn, token
	MFA        string // the second factor used: totp, webauthn, or "" for none
	MFAPending bool   // signed in with a password but owes a second factor it has not enrolled: only enrolment is allowed
	Audience   string // the admin URL (scheme://host) it was made for and works at
	Client     string // the client address it was made from
	CreatedAt  time.Time
	LastUsedAt time.Time
	IdleUntil  time.Time  // it ends here unless used before; each use moves it on
	ExpiresAt  time.Time  // it ends here whatever its use
	RevokedAt  *time.Time // set once signed out or revoked
}

// UserTOTP is a user's TOTP enrolment; the secret is in the vault.
type UserTOTP struct {
	UserID      string
	CreatedAt   time.Time
	ConfirmedAt *time.Time // nil until a first code confirmed it
}

// WebAuthnCredential is one passkey of a user: public data only.
type WebAuthnCredential struct {
	ID         string // the credential id, base64url
	UserID     string
	Name       string
	Credential []byte // JSON, as the WebAuthn library keeps a credential
	CreatedAt  time.Time
	LastUsedAt *time.Time
}

const sessionCols = `id, hash, user_id, token_id, cap_role, method, mfa, mfa_pending, audience, client,
	created_at, last_used_at, idle_until, expires_at, revoked_at`

// CreateSession stores a new session, or returns ErrConflict.
func (s *Store) CreateSession(ctx context.Context, se Session) error {
	_, err := s.w.ExecContext(ctx, rebind(s.dialect, `INSERT INTO sessions (`+sessionCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		se.ID, se.Hash, nullString(se.UserID), nullString(se.TokenID), se.CapRole, se.Method, se.MFA, boolInt(se.MFAPending), se.Audience, se.Client,
		s.timeArg(se.CreatedAt), s.timeArg(se.LastUsedAt), s.timeArg(se.IdleUntil), s.timeArg(se.ExpiresAt), s.nullTimeArg(se.RevokedAt))
	if err != nil {
		return fmt.Errorf("store: create session: %w", mapErr(err))
	}
	return nil
}

// GetSessionByHash returns the session whose token hashes to hash, or
// ErrNotFound.
func (s *Store) GetSessionByHash(ctx context.Context, hash []byte) (Session, error) {
	se, err := scanSession(s.r.QueryRowContext(ctx, rebind(s.dialect, `SELECT `+sessionCols+` FROM sessions WHERE hash = ?`), hash))
	if err != nil {
		return Session{}, fmt.Errorf("store: get session: %w", mapErr(err))
	}
	return se, nil
}

// GetSession returns the session with the given id, or ErrNotFound.
func (s *Store) GetSession(ctx context.Context, id string) (Session, error) {
	se, err := scanSession(s.r.QueryRowContext(ctx, rebind(s.dialect, `SELECT `+sessionCols+` FROM sessions WHERE id = ?`), id))
	if err != nil {
		return Session{}, fmt.Errorf("store: get session %q: %w", id, mapErr(err))
	}
	return se, nil
}

// TouchSession records a use of a live session at at and moves its idle
// end to idleUntil (never past its absolute end, never backwards). It
// returns ErrNotFound when the session is gone, revoked or over.
func (s *Store) TouchSession(ctx context.Context, id string, at, idleUntil time.Time) error {
	res, err := s.w.ExecContext(ctx, rebind(s.dialect, `UPDATE sessions SET last_used_at = ?,
		idle_until = CASE WHEN ? <= idle_until THEN idle_until WHEN ? < expires_at THEN ? ELSE expires_at END
		WHERE id = ? AND revoked_at IS NULL AND idle_until > ? AND expires_at > ?`),
		s.timeArg(at), s.timeArg(idleUntil), s.timeArg(idleUntil), s.timeArg(idleUntil), id, s.timeArg(at), s.timeArg(at))
	if err != nil {
		return fmt.Errorf("store: touch session %q: %w", id, mapErr(err))
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("store: touch session %q: %w", id, ErrNotFound)
	}
	return nil
}

// ClearSessionMFA marks a session's owed second factor as given, by mfa.
func (s *Store) ClearSessionMFA(ctx context.Context, id, mfa string) error {
	res, err := s.w.ExecContext(ctx, rebind(s.dialect, `UPDATE sessions SET mfa_pending = 0, mfa = ? WHERE id = ? AND revoked_at IS NULL`), mfa, id)
	if err != nil {
		return fmt.Errorf("store: update session %q: %w", id, mapErr(err))
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("store: update session %q: %w", id, ErrNotFound)
	}
	return nil
}

// RevokeSession ends a session at at. Revoking one already revoked keeps
// its first time; an unknown id is ErrNotFound.
func (s *Store) RevokeSession(ctx context.Context, id string, at time.Time) error {
	res, err := s.w.ExecContext(ctx, rebind(s.dialect, `UPDATE sessions SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`), s.timeArg(at), id)
	if err != nil {
		return fmt.Errorf("store: revoke session %q: %w", id, mapErr(err))
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("store: revoke session %q: %w", id, ErrNotFound)
	}
	return nil
}

// RevokeUserSessions ends every live session of a user at at and returns
// how many it ended.
func (s *Store) RevokeUserSessions(ctx context.Context, userID string, at time.Time) (int, error) {
	res, err := s.w.ExecContext(ctx, rebind(s.dialect, `UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL`), s.timeArg(at), userID)
	if err != nil {
		return 0, fmt.Errorf("store: revoke the sessions of %q: %w", userID, mapErr(err))
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// PruneSessions deletes sessions over (expired, idle or revoked) before
// now, and returns how many.
func (s *Store) PruneSessions(ctx context.Context, before time.Time) (int, error) {
	res, err := s.w.ExecContext(ctx, rebind(s.dialect, `DELETE FROM sessions WHERE expires_at < ? OR idle_until < ? OR revoked_at < ?`),
		s.timeArg(before), s.timeArg(before), s.timeArg(before))
	if err != nil {
		return 0, fmt.Errorf("store: prune sessions: %w", mapErr(err))
	}
	n, err := res.RowsAffected()
	return int(n), err
}

func scanSession(row rowScanner) (Session, error) {
	var se Session
	var user, token sql.NullString
	var pending int64
	err := row.Scan(&se.ID, &se.Hash, &user, &token, &se.CapRole, &se.Method, &se.MFA, &pending, &se.Audience, &se.Client,
		timeCol{&se.CreatedAt}, timeCol{&se.LastUsedAt}, timeCol{&se.IdleUntil}, timeCol{&se.ExpiresAt}, nullTimeCol{&se.RevokedAt})
	se.UserID, se.TokenID, se.MFAPending = user.String, token.String, pending != 0
	return se, err
}

// SetUserPassword stores a user's password hash (an argon2id PHC string),
// replacing any earlier one.
func (s *Store) SetUserPassword(ctx context.Context, userID, hash string, at time.Time) error {
	_, err := s.w.ExecContext(ctx, rebind(s.dialect, `INSERT INTO user_passwords (user_id, hash, set_at) VALUES (?, ?, ?)
		ON CONFLICT (user_id) DO UPDATE SET hash = excluded.hash, set_at = excluded.set_at`), userID, hash, s.timeArg(at))
	if err != nil {
		return fmt.Errorf("store: set the password of %q: %w", userID, mapErr(err))
	}
	return nil
}

// GetUserPassword returns a user's password hash, or ErrNotFound when it
// has none.
func (s *Store) GetUserPassword(ctx context.Context, userID string) (string, error) {
	var h string
	if err := s.r.QueryRowContext(ctx, rebind(s.dialect, `SELECT hash FROM user_passwords WHERE user_id = ?`), userID).Scan(&h); err != nil {
		return "", fmt.Errorf("store: get the password of %q: %w", userID, mapErr(err))
	}
	return h, nil
}

// PutUserTOTP starts (or restarts) a user's TOTP enrolment, unconfirmed.
func (s *Store) PutUserTOTP(ctx context.Context, userID string, at time.Time) error {
	_, err := s.w.ExecContext(ctx, rebind(s.dialect, `INSERT INTO user_totp (user_id, created_at, confirmed_at) VALUES (?, ?, NULL)
		ON CONFLICT (user_id) DO UPDATE SET created_at = excluded.created_at, confirmed_at = NULL`), userID, s.timeArg(at))
	if err != nil {
		return fmt.Errorf("store: enrol TOTP for %q: %w", userID, mapErr(err))
	}
	return nil
}

// ConfirmUserTOTP marks a user's TOTP enrolment confirmed.
func (s *Store) ConfirmUserTOTP(ctx context.Context, userID string, at time.Time) error {
	res, err := s.w.ExecContext(ctx, rebind(s.dialect, `UPDATE user_totp SET confirmed_at = ? WHERE user_id = ?`), s.timeArg(at), userID)
	if err != nil {
		return fmt.Errorf("store: confirm TOTP for %q: %w", userID, mapErr(err))
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("store: confirm TOTP for %q: %w", userID, ErrNotFound)
	}
	return nil
}

// GetUserTOTP returns a user's TOTP enrolment, or ErrNotFound.
func (s *Store) GetUserTOTP(ctx context.Context, userID string) (UserTOTP, error) {
	t := UserTOTP{UserID: userID}
	err := s.r.QueryRowContext(ctx, rebind(s.dialect, `SELECT created_at, confirmed_at FROM user_totp WHERE user_id = ?`), userID).
		Scan(timeCol{&t.CreatedAt}, nullTimeCol{&t.ConfirmedAt})
	if err != nil {
		return UserTOTP{}, fmt.Errorf("store: get the TOTP enrolment of %q: %w", userID, mapErr(err))
	}
	return t, nil
}

// AddWebAuthnCredential stores a passkey, or returns ErrConflict for a
// credential id already registered.
func (s *Store) AddWebAuthnCredential(ctx context.Context, c WebAuthnCredential) error {
	_, err := s.w.ExecContext(ctx, rebind(s.dialect, `INSERT INTO webauthn_credentials (id, user_id, name, credential, created_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?)`),
		c.ID, c.UserID, c.Name, string(c.Credential), s.timeArg(c.CreatedAt), s.nullTimeArg(c.LastUsedAt))
	if err != nil {
		return fmt.Errorf("store: add a passkey: %w", mapErr(err))
	}
	return nil
}

// ListWebAuthnCredentials returns a user's passkeys, oldest first.
func (s *Store) ListWebAuthnCredentials(ctx context.Context, userID string) ([]WebAuthnCredential, error) {
	rows, err := s.r.QueryContext(ctx, rebind(s.dialect, `SELECT id, user_id, name, credential, created_at, last_used_at
		FROM webauthn_credentials WHERE user_id = ? ORDER BY created_at, id`), userID)
	if err != nil {
		return nil, fmt.Errorf("store: list passkeys: %w", mapErr(err))
	}
	return collect(rows, func(row rowScanner) (WebAuthnCredential, error) {
		var c WebAuthnCredential
		var data string
		err := row.Scan(&c.ID, &c.UserID, &c.Name, &data, timeCol{&c.CreatedAt}, nullTimeCol{&c.LastUsedAt})
		c.Credential = []byte(data)
		return c, err
	}, "list passkeys")
}

// UpdateWebAuthnCredential stores a passkey's credential after a use (its
// sign count moves on).
func (s *Store) UpdateWebAuthnCredential(ctx context.Context, id string, credential []byte, at time.Time) error {
	res, err := s.w.ExecContext(ctx, rebind(s.dialect, `UPDATE webauthn_credentials SET credential = ?, last_used_at = ? WHERE id = ?`),
		string(credential), s.timeArg(at), id)
	if err != nil {
		return fmt.Errorf("store: update a passkey: %w", mapErr(err))
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("store: update a passkey: %w", ErrNotFound)
	}
	return nil
}

// SwapWebAuthnCredential replaces a passkey's credential after a use
// (its sign count moves on) only if it still reads old: two nodes taking
// the same sign count cannot both win. A lost race, like an unknown id,
// is ErrNotFound.
func (s *Store) SwapWebAuthnCredential(ctx context.Context, id string, old, credential []byte, at time.Time) error {
	res, err := s.w.ExecContext(ctx, rebind(s.dialect, `UPDATE webauthn_credentials SET credential = ?, last_used_at = ? WHERE id = ? AND credential = ?`),
		string(credential), s.timeArg(at), id, string(old))
	if err != nil {
		return fmt.Errorf("store: update a passkey: %w", mapErr(err))
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("store: update a passkey: %w", ErrNotFound)
	}
	return nil
}

// DeleteWebAuthnCredential removes one of a user's passkeys; a passkey
// of another user, like an unknown id, is ErrNotFound.
func (s *Store) DeleteWebAuthnCredential(ctx context.Context, userID, id string) error {
	res, err := s.w.ExecContext(ctx, rebind(s.dialect, `DELETE FROM webauthn_credentials WHERE id = ? AND user_id = ?`), id, userID)
	if err != nil {
		return fmt.Errorf("store: remove a passkey: %w", mapErr(err))
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("store: remove a passkey: %w", ErrNotFound)
	}
	return nil
}

// LinkIdentity links an OpenID provider identity to a user, or returns
// ErrConflict when it is linked already.
func (s *Store) LinkIdentity(ctx context.Context, issuer, subject, userID string, at time.Time) error {
	_, err := s.w.ExecContext(ctx, rebind(s.dialect, `INSERT INTO user_identities (issuer, subject, user_id, created_at) VALUES (?, ?, ?, ?)`),
		issuer, subject, userID, s.timeArg(at))
	if err != nil {
		return fmt.Errorf("store: link an identity: %w", mapErr(err))
	}
	return nil
}

// IdentityUser returns the user an OpenID provider identity is linked to,
// or ErrNotFound.
func (s *Store) IdentityUser(ctx context.Context, issuer, subject string) (string, error) {
	var id string
	err := s.r.QueryRowContext(ctx, rebind(s.dialect, `SELECT user_id FROM user_identities WHERE issuer = ? AND subject = ?`), issuer, subject).Scan(&id)
	if err != nil {
		return "", fmt.Errorf("store: find an identity: %w", mapErr(err))
	}
	return id, nil
}

// PutSignInFlow stores a sign-in ceremony's state under id until expires.
func (s *Store) PutSignInFlow(ctx context.Context, id, kind string, data []byte, expires time.Time) error {
	_, err := s.w.ExecContext(ctx, rebind(s.dialect, `INSERT INTO signin_flows (id, kind, data, expires_at) VALUES (?, ?, ?, ?)`),
		id, kind, string(data), s.timeArg(expires))
	if err != nil {
		return fmt.Errorf("store: start a sign-in: %w", mapErr(err))
	}
	return nil
}

// TakeSignInFlow removes and returns a ceremony's state, once: a second
// take, on any node, an expired flow and one of another kind are
// ErrNotFound. Expired flows are forgotten as it goes.
func (s *Store) TakeSignInFlow(ctx context.Context, id, kind string, now time.Time) ([]byte, error) {
	if _, err := s.w.ExecContext(ctx, rebind(s.dialect, `DELETE FROM signin_flows WHERE expires_at < ?`), s.timeArg(now)); err != nil {
		return nil, fmt.Errorf("store: forget expired sign-ins: %w", mapErr(err))
	}
	var data string
	err := s.w.QueryRowContext(ctx, rebind(s.dialect, `DELETE FROM signin_flows WHERE id = ? AND kind = ? AND expires_at > ? RETURNING data`),
		id, kind, s.timeArg(now)).Scan(&data)
	if err != nil {
		return nil, fmt.Errorf("store: take a sign-in: %w", mapErr(err))
	}
	return []byte(data), nil
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
