package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/otp"
	"github.com/keygate/keygate/internal/password"
	"github.com/keygate/keygate/internal/rbac"
	"github.com/keygate/keygate/internal/session"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/web"
)

// People sign in to the admin plane three ways (a local password with a
// second factor, single sign-on with an OpenID provider, a passkey) and
// get a session; an admin token can be exchanged for one too, for the
// console. Each route here is in the route table like every other: the
// sign-in routes are public (scopePublic), the rest need a principal.
// docs/signin.md is the contract.

// SignInStore keeps what sign-in needs beside users: passwords, TOTP
// enrolments, passkeys, linked identities and ceremonies under way.
// keygate's store is one.
type SignInStore interface {
	GetUserPassword(ctx context.Context, userID string) (string, error)
	SetUserPassword(ctx context.Context, userID, hash string, at time.Time) error
	PutUserTOTP(ctx context.Context, userID string, at time.Time) error
	ConfirmUserTOTP(ctx context.Context, userID string, at time.Time) error
	GetUserTOTP(ctx context.Context, userID string) (store.UserTOTP, error)
	AddWebAuthnCredential(ctx context.Context, c store.WebAuthnCredential) error
	ListWebAuthnCredentials(ctx context.Context, userID string) ([]store.WebAuthnCredential, error)
	UpdateWebAuthnCredential(ctx context.Context, id string, credential []byte, at time.Time) error
	SwapWebAuthnCredential(ctx context.Context, id string, old, credential []byte, at time.Time) error
	DeleteWebAuthnCredential(ctx context.Context, userID, id string) error
	LinkIdentity(ctx context.Context, issuer, subject, userID string, at time.Time) error
	IdentityUser(ctx context.Context, issuer, subject string) (string, error)
	PutSignInFlow(ctx context.Context, id, kind string, data []byte, expires time.Time) error
	TakeSignInFlow(ctx context.Context, id, kind string, now time.Time) ([]byte, error)
}

// SignIn configures how people sign in. Without it (Options.SignIn nil)
// the admin plane takes admin tokens alone and the sign-in routes answer
// 501.
type SignIn struct {
	// Sessions issues and checks sessions.
	Sessions *session.Manager
	// Store keeps passwords, second factors, identities and ceremonies.
	Store SignInStore
	// TLS says the admin listener serves HTTPS: session cookies are then
	// Secure, and a session is bound to an https:// admin URL.
	TLS bool
	// MFARoles are the roles whose users must use a second factor with a
	// password; nil means every role that can change keys, providers or
	// secrets (DefaultMFARoles).
	MFARoles []string
	// OTP checks users' TOTP codes, each code once across every node.
	OTP *otp.Verifier
	// Password is the argon2id cost of new password hashes; zero means
	// password.Default.
	Password password.Params
	// SSO, when set, signs people in with an OpenID provider, under
	// SSOPolicy.
	SSO       SSO
	SSOPolicy SSOPolicy
	// DeviceWait is how long one poll of a device sign-in waits for the
	// person (default 20s; always past the provider's poll interval).
	DeviceWait time.Duration
	// WebAuthn binds passkeys to the admin plane (signin_passkeys.go).
	WebAuthn WebAuthnConfig
	// Failures throttles failed sign-ins; nil uses Options.AuthFailures.
	Failures *AuthFailureLimits
}

// DefaultMFARoles returns the roles of t that can change keys, providers
// or secrets, anywhere or on their own: their users need a second factor.
func DefaultMFARoles(t *rbac.Table) []string {
	changing := []rbac.Permission{rbac.KeysCreate, rbac.KeysUpdate, rbac.KeysRotate, rbac.KeysRevoke, rbac.KeysSuspend, rbac.KeysEnrollOTP,
		rbac.ProvidersWrite, rbac.SecretsWrite, rbac.SecretsReadValue, rbac.VaultRotateKEK, rbac.UsersManage}
	var out []string
	for _, r := range t.Roles() {
		for _, p := range changing {
			if _, ok := r.Grant(p); ok {
				out = append(out, r.Name)
				break
			}
		}
	}
	return out
}

// signInReady reports whether sign-in is configured, answering 501 when
// it is not.
func (a *API) signInReady(w http.ResponseWriter) bool {
	if a.opts.SignIn == nil || a.opts.SignIn.Sessions == nil || a.opts.SignIn.Store == nil {
		writeError(w, http.StatusNotImplemented, "not_implemented", "this keygate does not sign people in; use an admin token")
		return false
	}
	return true
}

// sessionCredential returns the session token a request carries, and
// whether it came in the cookie: a bearer session token first, then the
// cookie. ok is false when it carries none.
func sessionCredential(r *http.Request) (raw string, cookie, ok bool) {
	if b, found := bearer(r.Header.Get("Authorization")); found {
		if session.IsToken(b) {
			return b, false, true
		}
		return "", false, false
	}
	c, err := r.Cookie(session.CookieName)
	if err != nil || c.Value == "" {
		return "", false, false
	}
	return c.Value, true, true
}

// sessionPrincipal authenticates a request by its session: ok is false
// when it carries none, so the admin token check runs. A session made by
// a token sign-in stops with its token; one of a disabled user stops at
// once, on every node, since both are read on every request.
func (a *API) sessionPrincipal(r *http.Request) (rbac.Principal, *store.Session, bool, error) {
	raw, cookie, ok := sessionCredential(r)
	if !ok || a.opts.SignIn == nil || a.opts.SignIn.Sessions == nil {
		return rbac.Principal{}, nil, false, nil
	}
	if cookie && unsafeMethod(r.Method) {
		// A browser's cookie goes with every request to this origin,
		// whoever's page sent it: a change must come from this origin.
		if err := a.csrf.Check(r); err != nil {
			return rbac.Principal{}, nil, true, &authError{msg: "cross-origin request refused: changes with a session cookie must come from the keygate console itself", reason: "cross_origin", status: http.StatusForbidden}
		}
	}
	s, err := a.opts.SignIn.Sessions.Check(r.Context(), raw, session.Audience(r, a.opts.SignIn.TLS))
	switch {
	case errors.Is(err, session.ErrInvalid), errors.Is(err, session.ErrExpired), errors.Is(err, session.ErrWrongAudience):
		return rbac.Principal{}, nil, true, &authError{msg: err.Error(), reason: "session_" + sessionReason(err)}
	case err != nil:
		return rbac.Principal{}, nil, true, fmt.Errorf("check a session: %w", err)
	}
	via := viaSession(s)
	var p rbac.Principal
	if s.TokenID != "" {
		tok, err := a.opts.Credentials.GetAdminToken(r.Context(), s.TokenID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return rbac.Principal{}, nil, true, fmt.Errorf("look up a session's admin token: %w", err)
		}
		now := a.opts.Now()
		if err != nil || tok.RevokedAt != nil || (tok.ExpiresAt != nil && !now.Before(*tok.ExpiresAt)) {
			return rbac.Principal{}, nil, true, &authError{msg: "the admin token this session was signed in with is no longer valid; sign in again", reason: "session_token_revoked"}
		}
		if s.UserID == "" {
			p, err = a.tokenPrincipal(r.Context(), tok)
			if err != nil {
				return rbac.Principal{}, nil, true, err
			}
			p.Via, p.Credential, p.Expires = via, s.ID, &s.ExpiresAt
			return p, &s, true, nil
		}
	}
	p, err = a.UserPrincipal(r.Context(), s.UserID, via, s.ID, s.CapRole, &s.ExpiresAt)
	if errors.Is(err, ErrUserDisabled) || errors.Is(err, store.ErrNotFound) {
		return rbac.Principal{}, nil, true, &authError{msg: "the user this session belongs to is disabled; ask an admin", reason: "user_disabled"}
	}
	if err != nil {
		return rbac.Principal{}, nil, true, err
	}
	return p, &s, true, nil
}

func sessionReason(err error) string {
	switch {
	case errors.Is(err, session.ErrExpired):
		return "expired"
	case errors.Is(err, session.ErrWrongAudience):
		return "wrong_audience"
	}
	return "invalid"
}

// viaSession says how a session signed in, as whoami shows it.
func viaSession(s store.Session) string {
	v := "session (" + s.Method
	if s.MFA != "" {
		v += "+" + s.MFA
	}
	return v + ")"
}

func unsafeMethod(m string) bool {
	return m != http.MethodGet && m != http.MethodHead && m != http.MethodOptions
}

// setSessionCookie hands a browser its session: HttpOnly (no script
// reads it), SameSite=Strict (no other site's page sends it), Secure on
// HTTPS, for the whole admin origin, until the session's absolute end.
func (a *API) setSessionCookie(w http.ResponseWriter, tok string, s store.Session) {
	http.SetCookie(w, &http.Cookie{Name: session.CookieName, Value: tok, Path: "/", HttpOnly: true, Secure: a.opts.SignIn.TLS,
		SameSite: http.SameSiteStrictMode, Expires: s.ExpiresAt, MaxAge: int(time.Until(s.ExpiresAt).Seconds()) + 1})
}

// clearSessionCookie tells a browser to drop its session cookie.
func (a *API) clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: session.CookieName, Value: "", Path: "/", HttpOnly: true, Secure: a.opts.SignIn != nil && a.opts.SignIn.TLS,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// mfaRequired reports whether u must use a second factor: its role, or
// its role in any of its teams, is one of the MFA roles.
func (a *API) mfaRequired(ctx context.Context, u store.User) (bool, error) {
	roles := a.opts.SignIn.MFARoles
	if roles == nil {
		roles = DefaultMFARoles(a.opts.Roles)
	}
	if slices.Contains(roles, u.Role) {
		return true, nil
	}
	ms, err := a.opts.People.ListMemberships(ctx, u.ID)
	if err != nil {
		return false, err
	}
	for _, m := range ms {
		if slices.Contains(roles, m.Role) {
			return true, nil
		}
	}
	return false, nil
}

// wantsCookie reports whether a sign-in answers with a session cookie:
// asked for, or a browser's form post.
func wantsCookie(r *http.Request, asked *bool) bool {
	if asked != nil {
		return *asked
	}
	return isForm(r)
}

func isForm(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	return strings.HasPrefix(ct, "application/x-www-form-urlencoded") || strings.HasPrefix(ct, "multipart/form-data")
}

// clientOf is the request's client address, as the audit trail names it.
func (a *API) clientOf(r *http.Request) string {
	return web.ClientAddr(r, a.opts.TrustedProxies).String()
}
