package admin

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/rbac"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/web"
)

// Authenticator turns one kind of credential into a principal. Admin
// tokens are built in; sign-in sessions (single sign-on, passwords with a
// second factor) plug in here and yield the same rbac.Principal, which
// every route is then decided on alike. UserPrincipal builds a user's.
type Authenticator interface {
	// Authenticate returns the request's principal. It returns an error
	// wrapping ErrNoCredential when the request carries no credential of
	// its kind, so the next authenticator is tried; one wrapping
	// ErrBadCredential refuses the request with 401 (its message is shown
	// to the client, so it must not say more than the client knows); any
	// other error answers 503.
	Authenticate(r *http.Request) (rbac.Principal, error)
}

// ErrNoCredential says a request carries no credential of an
// Authenticator's kind.
var ErrNoCredential = errors.New("no credential of this kind")

// ErrBadCredential says a request's credential is not valid.
var ErrBadCredential = errors.New("invalid admin credential")

// ErrUserDisabled is returned by UserPrincipal for a disabled user.
var ErrUserDisabled = errors.New("the user is disabled")

// lastUseEvery bounds how often a credential's last use is written: a
// busy script does not cost a database write per request.
const lastUseEvery = 10 * time.Second

// authenticate admits a request only with a valid credential, and puts
// its principal in the request's state.
func (a *API) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.isPublic(r) {
			// A sign-in route: the request signs in rather than carrying
			// a credential. Its handler checks what it is sent and
			// throttles failures per user and per address.
			next.ServeHTTP(w, r.WithContext(withState(r.Context(), &reqState{public: true})))
			return
		}
		p, ses, tok, raw, err := a.principalOf(r)
		if err != nil {
			var bad *authError
			if !errors.As(err, &bad) {
				a.opts.Log.Error("admin credential check failed", "err", err, "request_id", requestID(r))
				writeError(w, http.StatusServiceUnavailable, "unavailable", "keygate could not check the admin credential; try again")
				return
			}
			a.auditAuthFailure(r, bad.reason, failingPrefix(raw))
			if bad.status == http.StatusForbidden {
				writeError(w, http.StatusForbidden, "forbidden", bad.msg)
				return
			}
			if t := a.authFailure(r, raw); t != nil {
				w.Header().Set("Retry-After", fmt.Sprint(int64(t.retryAfter/time.Second)))
				writeError(w, http.StatusTooManyRequests, "too_many_auth_failures", t.msg)
				return
			}
			if strings.HasPrefix(bad.reason, "session_") || bad.reason == "user_disabled" {
				// A browser holding a dead session cookie drops it.
				if _, cookie, _ := sessionCredential(r); cookie {
					a.clearSessionCookie(w)
				}
			}
			writeError(w, http.StatusUnauthorized, "unauthorized", bad.msg)
			return
		}
		if tok.ID != "" {
			a.recordUse(r, tok)
		}
		st := &reqState{principal: p, token: tok, session: ses}
		next.ServeHTTP(w, r.WithContext(withState(r.Context(), st)))
	})
}

// authError is a refused credential: msg is for the client, reason for
// the audit trail.
type authError struct {
	msg, reason string
	status      int // 0 for 401
}

func (e *authError) Error() string { return e.msg }

// principalOf authenticates the request by its session (a bearer session
// token or the session cookie), with the configured authenticators, then
// as an admin token.
func (a *API) principalOf(r *http.Request) (rbac.Principal, *store.Session, store.AdminToken, string, error) {
	if p, ses, ok, err := a.sessionPrincipal(r); ok {
		return p, ses, store.AdminToken{}, "", err
	}
	for _, au := range a.opts.Authenticators {
		p, err := au.Authenticate(r)
		switch {
		case err == nil:
			return p, nil, store.AdminToken{}, "", nil
		case errors.Is(err, ErrNoCredential):
			continue
		case errors.Is(err, ErrBadCredential):
			return rbac.Principal{}, nil, store.AdminToken{}, "", &authError{msg: err.Error(), reason: "bad_credential"}
		default:
			return rbac.Principal{}, nil, store.AdminToken{}, "", err
		}
	}
	raw, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		return rbac.Principal{}, nil, store.AdminToken{}, "", &authError{msg: "send the admin credential as 'Authorization: Bearer kg_admin_...', or sign in (keygate login)", reason: "missing"}
	}
	p, tok, err := a.adminTokenPrincipal(r, raw)
	return p, nil, tok, raw, err
}

// adminTokenPrincipal authenticates raw as an admin token.
func (a *API) adminTokenPrincipal(r *http.Request, raw string) (rbac.Principal, store.AdminToken, error) {
	invalid := &authError{msg: "invalid admin credential", reason: "invalid"}
	parsed, err := apikey.Parse(raw)
	if err != nil || parsed.Env != apikey.AdminEnv {
		return rbac.Principal{}, store.AdminToken{}, invalid
	}
	h := a.opts.Hasher.Hash(raw)
	tok, err := a.opts.Credentials.GetAdminTokenByHash(r.Context(), h[:])
	switch {
	case errors.Is(err, store.ErrNotFound):
		return rbac.Principal{}, store.AdminToken{}, invalid
	case err != nil:
		return rbac.Principal{}, store.AdminToken{}, fmt.Errorf("look up the admin credential: %w", err)
	}
	if subtle.ConstantTimeCompare(tok.Hash, h[:]) != 1 {
		return rbac.Principal{}, store.AdminToken{}, invalid
	}
	if tok.RevokedAt != nil {
		return rbac.Principal{}, store.AdminToken{}, &authError{msg: "invalid admin credential", reason: "revoked"}
	}
	now := a.opts.Now()
	if tok.ExpiresAt != nil && !now.Before(*tok.ExpiresAt) {
		return rbac.Principal{}, store.AdminToken{}, &authError{
			msg:    fmt.Sprintf("this admin credential expired at %s; create a new one (keygate user token create, or keygate admin token create on the keygate host)", tok.ExpiresAt.UTC().Format(time.RFC3339)),
			reason: "expired"}
	}
	p, err := a.tokenPrincipal(r.Context(), tok)
	if errors.Is(err, ErrUserDisabled) || errors.Is(err, store.ErrNotFound) {
		return rbac.Principal{}, store.AdminToken{}, &authError{msg: "the user this admin credential belongs to is disabled; ask an admin", reason: "user_disabled"}
	}
	return p, tok, err
}

// tokenPrincipal is the principal an admin token stands for.
func (a *API) tokenPrincipal(ctx context.Context, tok store.AdminToken) (rbac.Principal, error) {
	via := viaOf(tok.Kind)
	if tok.UserID == "" {
		return rbac.Principal{ID: tok.ID, Name: tok.Name, Kind: rbac.KindToken, Role: tok.Role, Via: via, Credential: tok.ID, Expires: tok.ExpiresAt}, nil
	}
	return a.UserPrincipal(ctx, tok.UserID, via, tok.ID, tok.Role, tok.ExpiresAt)
}

// UserPrincipal builds the principal of a user or service account signed
// in by any means: via says how ("personal access token", later "single
// sign-on"), credential names the token or session, capRole caps it ("" for
// none), expires is when the credential stops. It returns ErrUserDisabled
// for a disabled user and store.ErrNotFound for an unknown one.
func (a *API) UserPrincipal(ctx context.Context, userID, via, credential, capRole string, expires *time.Time) (rbac.Principal, error) {
	u, err := a.opts.People.GetUser(ctx, userID)
	if err != nil {
		return rbac.Principal{}, err
	}
	if u.DisabledAt != nil {
		return rbac.Principal{}, ErrUserDisabled
	}
	ms, err := a.opts.People.ListMemberships(ctx, u.ID)
	if err != nil {
		return rbac.Principal{}, err
	}
	p := rbac.Principal{ID: u.ID, UserID: u.ID, Name: u.Name, Kind: rbac.KindUser, Role: u.Role, Cap: capRole, Via: via, Credential: credential, Expires: expires}
	if u.Kind == store.UserService {
		p.Kind = rbac.KindService
	}
	for _, m := range ms {
		p.Teams = append(p.Teams, rbac.Membership{Team: m.Team, Role: m.Role})
	}
	return p, nil
}

// viaOf says how a credential of a kind signs in, as whoami shows it.
func viaOf(kind string) string {
	switch kind {
	case store.AdminTokenBootstrap:
		return "bootstrap admin token"
	case store.AdminTokenPersonal:
		return "personal access token"
	case store.AdminTokenService:
		return "service account token"
	}
	return "admin token"
}

// recordUse writes when and from where a credential was last used, at
// most every lastUseEvery per address. A failure is logged, not fatal.
func (a *API) recordUse(r *http.Request, tok store.AdminToken) {
	now := a.opts.Now()
	from := web.ClientAddr(r, a.opts.TrustedProxies).String()
	if tok.LastUsedAt != nil && now.Sub(*tok.LastUsedAt) < lastUseEvery && tok.LastUsedFrom == from {
		return
	}
	if err := a.opts.Credentials.TouchAdminToken(r.Context(), tok.ID, now.UTC(), from); err != nil {
		a.opts.Log.Warn("could not record an admin credential's use", "token_id", tok.ID, "err", err)
	}
}

func bearer(h string) (string, bool) {
	const p = "bearer "
	if len(h) <= len(p) || !strings.EqualFold(h[:len(p)], p) {
		return "", false
	}
	t := strings.TrimSpace(h[len(p):])
	return t, t != ""
}

// failingPrefix is the public prefix of a well-formed admin credential
// that failed, for the audit trail and throttling; "" for anything else.
func failingPrefix(raw string) string {
	p, err := apikey.Parse(raw)
	if err != nil || p.Env != apikey.AdminEnv {
		return ""
	}
	return p.Prefix
}
