// Package session keeps the sign-in sessions of the admin plane: short
// lived, revocable, bound to the admin URL they were made for, stored as
// a keyed hash in the shared store so every node sees a revocation at
// once. A session ends when it is idle for longer than its idle timeout,
// at its absolute end whatever its use, or when revoked; each use moves
// its idle end on.
package session

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
)

// CookieName is the cookie a browser's session travels in.
const CookieName = "keygate_session"

// Default timeouts.
const (
	DefaultIdle     = 30 * time.Minute
	DefaultAbsolute = 12 * time.Hour
)

// Sign-in methods, as sessions and the audit trail name them.
const (
	MethodPassword = "password"
	MethodOIDC     = "oidc"
	MethodWebAuthn = "webauthn"
	MethodToken    = "token"
)

// Errors Check returns; each is safe to show the client.
var (
	// ErrInvalid: no session has this token, or it was revoked.
	ErrInvalid = errors.New("the session is not valid; sign in again (keygate login)")
	// ErrExpired: the session is over, idle too long or past its end.
	ErrExpired = errors.New("the session has expired; sign in again (keygate login)")
	// ErrWrongAudience: the session was made for another admin URL.
	ErrWrongAudience = errors.New("the session was made for another admin URL; sign in to this one (keygate login)")
)

// Store keeps sessions; keygate's store is one.
type Store interface {
	CreateSession(ctx context.Context, s store.Session) error
	GetSessionByHash(ctx context.Context, hash []byte) (store.Session, error)
	TouchSession(ctx context.Context, id string, at, idleUntil time.Time) error
	RevokeSession(ctx context.Context, id string, at time.Time) error
	RevokeUserSessions(ctx context.Context, userID string, at time.Time) (int, error)
	ClearSessionMFA(ctx context.Context, id, mfa string) error
}

// Hasher computes the stored keyed hash of a token.
type Hasher interface {
	Hash(raw string) [32]byte
}

// Options tunes a Manager.
type Options struct {
	// Idle ends a session unused this long (default 30m); Absolute ends it
	// this long after sign-in whatever its use (default 12h).
	Idle, Absolute time.Duration
	// TouchEvery bounds how often a use is written: a busy console does
	// not cost a write per request (default Idle/30, at most a minute).
	TouchEvery time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Manager issues and checks sessions.
type Manager struct {
	st     Store
	hasher Hasher
	o      Options
}

// New returns a Manager over st. It refuses timeouts that make no sense.
func New(st Store, h Hasher, o Options) (*Manager, error) {
	if o.Idle == 0 {
		o.Idle = DefaultIdle
	}
	if o.Absolute == 0 {
		o.Absolute = DefaultAbsolute
	}
	if o.Idle < 0 || o.Absolute < 0 || o.Idle > o.Absolute {
		return nil, fmt.Errorf("session: the idle timeout (%s) must be positive and no longer than the absolute one (%s)", o.Idle, o.Absolute)
	}
	if o.TouchEvery == 0 {
		o.TouchEvery = min(o.Idle/30, time.Minute)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Manager{st: st, hasher: h, o: o}, nil
}

// Timeouts returns the idle and absolute timeouts.
func (m *Manager) Timeouts() (idle, absolute time.Duration) { return m.o.Idle, m.o.Absolute }

// Grant is what a sign-in establishes.
type Grant struct {
	UserID     string // the user signed in, or "" for an unowned admin token's session
	TokenID    string // the admin token exchanged by a token sign-in
	CapRole    string // caps the user's role ("" for none)
	Method     string // MethodPassword, ...
	MFA        string // the second factor used ("" for none)
	MFAPending bool   // a second factor is owed and not yet enrolled
	Audience   string // the admin URL, as Audience returns it
	Client     string // the client address
	// NotAfter, when set, ends the session no later than this: a session
	// exchanged for a token outlives it never.
	NotAfter *time.Time
}

// Issue starts a session and returns its token, shown to the client once.
func (m *Manager) Issue(ctx context.Context, g Grant) (secret.String, store.Session, error) {
	if g.Audience == "" || g.Method == "" || (g.UserID == "" && g.TokenID == "") {
		return secret.String{}, store.Session{}, errors.New("session: a session needs an audience, a method and a user or token")
	}
	tok, err := apikey.GenerateSession()
	if err != nil {
		return secret.String{}, store.Session{}, err
	}
	var id [12]byte
	if _, err := rand.Read(id[:]); err != nil {
		return secret.String{}, store.Session{}, fmt.Errorf("session: read random bytes: %w", err)
	}
	now := m.o.Now().UTC()
	sum := m.hasher.Hash(tok.Reveal())
	s := store.Session{ID: "ses_" + hex.EncodeToString(id[:]), Hash: sum[:], UserID: g.UserID, TokenID: g.TokenID, CapRole: g.CapRole,
		Method: g.Method, MFA: g.MFA, MFAPending: g.MFAPending, Audience: g.Audience, Client: g.Client,
		CreatedAt: now, LastUsedAt: now, IdleUntil: now.Add(m.o.Idle), ExpiresAt: now.Add(m.o.Absolute)}
	if g.NotAfter != nil && g.NotAfter.Before(s.ExpiresAt) {
		s.ExpiresAt = g.NotAfter.UTC()
		s.IdleUntil = earliest(s.IdleUntil, s.ExpiresAt)
	}
	if !s.ExpiresAt.After(now) {
		return secret.String{}, store.Session{}, errors.New("session: the credential signing in has expired")
	}
	if err := m.st.CreateSession(ctx, s); err != nil {
		return secret.String{}, store.Session{}, err
	}
	return tok, s, nil
}

// IsToken reports whether raw is shaped like a session token, so an
// authenticator knows the credential is its kind.
func IsToken(raw string) bool {
	p, err := apikey.Parse(raw)
	return err == nil && p.Env == apikey.SessionEnv
}

// Check returns the live session raw is the token of, at audience, and
// records its use (moving its idle end on). Errors other than ErrInvalid,
// ErrExpired and ErrWrongAudience are the store's.
func (m *Manager) Check(ctx context.Context, raw, audience string) (store.Session, error) {
	if !IsToken(raw) {
		return store.Session{}, ErrInvalid
	}
	sum := m.hasher.Hash(raw)
	s, err := m.st.GetSessionByHash(ctx, sum[:])
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Session{}, ErrInvalid
	case err != nil:
		return store.Session{}, err
	}
	if subtle.ConstantTimeCompare(s.Hash, sum[:]) != 1 || s.RevokedAt != nil {
		return store.Session{}, ErrInvalid
	}
	now := m.o.Now().UTC()
	if !now.Before(s.IdleUntil) || !now.Before(s.ExpiresAt) {
		return store.Session{}, ErrExpired
	}
	if s.Audience != audience {
		return store.Session{}, ErrWrongAudience
	}
	if now.Sub(s.LastUsedAt) >= m.o.TouchEvery {
		idle := now.Add(m.o.Idle)
		switch err := m.st.TouchSession(ctx, s.ID, now, idle); {
		case errors.Is(err, store.ErrNotFound):
			// Revoked or over between the read and the write.
			return store.Session{}, ErrInvalid
		case err != nil:
			return store.Session{}, err
		}
		s.LastUsedAt, s.IdleUntil = now, earliest(idle, s.ExpiresAt)
	}
	return s, nil
}

// Revoke ends a session.
func (m *Manager) Revoke(ctx context.Context, id string) error {
	return m.st.RevokeSession(ctx, id, m.o.Now().UTC())
}

// RevokeUser ends every session of a user and returns how many.
func (m *Manager) RevokeUser(ctx context.Context, userID string) (int, error) {
	return m.st.RevokeUserSessions(ctx, userID, m.o.Now().UTC())
}

// CompleteMFA records that a session owing a second factor has given one.
func (m *Manager) CompleteMFA(ctx context.Context, id, mfa string) error {
	return m.st.ClearSessionMFA(ctx, id, mfa)
}

// Audience is the admin URL a request reached, scheme://host as the
// client named it, which a session is bound to. tls says whether the
// admin listener serves HTTPS (behind a TLS-terminating proxy, the
// configured trusted proxy's X-Forwarded-Proto is the caller's to check).
func Audience(r *http.Request, tls bool) string {
	scheme := "http"
	if tls || r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + strings.ToLower(r.Host)
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
