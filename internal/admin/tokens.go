package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/rbac"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/web"
)

// Lifetimes of admin credentials: every one expires.
const (
	// DefaultTokenTTL is a new personal or service token's life when none is asked.
	DefaultTokenTTL = 90 * 24 * time.Hour
	// MaxTokenTTL is the longest life a personal or service token may have.
	MaxTokenTTL = 365 * 24 * time.Hour
	// BootstrapTTL is the bootstrap credential's life: it is meant to add
	// the first user, then be revoked.
	BootstrapTTL = 30 * 24 * time.Hour
)

// TokenSpec says what admin credential to issue.
type TokenSpec struct {
	Name   string
	Kind   string // store.AdminTokenBootstrap, ...; empty is store.AdminTokenAdmin
	UserID string // the user or service account it belongs to; "" for none
	// Role is the role of a credential of no user, or the cap of a user's
	// ("" for none).
	Role string
	TTL  time.Duration // how long it works; it must be positive
}

// TokenStore keeps admin credentials, for EnsureBootstrapToken and NewToken.
type TokenStore interface {
	CountAdminTokens(ctx context.Context) (int, error)
	CreateAdminToken(ctx context.Context, t store.AdminToken) error
}

// EnsureBootstrapToken creates the first admin credential, an owner's that
// expires after BootstrapTTL, when none exists, and returns it for a
// one-time display. On later starts it returns created=false.
func EnsureBootstrapToken(ctx context.Context, st TokenStore, h Hasher, now time.Time) (secret.String, bool, error) {
	n, err := st.CountAdminTokens(ctx)
	if err != nil {
		return secret.String{}, false, err
	}
	if n > 0 {
		return secret.String{}, false, nil
	}
	tok, _, err := NewToken(ctx, st, h, TokenSpec{Name: "bootstrap", Kind: store.AdminTokenBootstrap, Role: rbac.Owner, TTL: BootstrapTTL}, now)
	return tok, err == nil, err
}

// TokenCreator stores new admin credentials.
type TokenCreator interface {
	CreateAdminToken(ctx context.Context, t store.AdminToken) error
}

// NewToken issues an admin credential and returns it for a one-time
// display; only its HMAC is stored.
func NewToken(ctx context.Context, st TokenCreator, h Hasher, spec TokenSpec, now time.Time) (secret.String, store.AdminToken, error) {
	if spec.TTL <= 0 {
		return secret.String{}, store.AdminToken{}, errors.New("an admin credential needs a positive lifetime, such as 90d")
	}
	if spec.UserID == "" && spec.Role == "" {
		return secret.String{}, store.AdminToken{}, errors.New("an admin credential of no user needs a role, such as owner")
	}
	raw, err := apikey.GenerateAdmin()
	if err != nil {
		return secret.String{}, store.AdminToken{}, err
	}
	parsed, err := apikey.Parse(raw.Reveal())
	if err != nil {
		return secret.String{}, store.AdminToken{}, err
	}
	hash := h.Hash(raw.Reveal())
	exp := now.UTC().Add(spec.TTL)
	t := store.AdminToken{ID: newID("adm_"), Name: spec.Name, Role: spec.Role, Hash: hash[:], CreatedAt: now.UTC(),
		UserID: spec.UserID, Kind: spec.Kind, Prefix: parsed.Prefix, ExpiresAt: &exp}
	if t.Kind == "" {
		t.Kind = store.AdminTokenAdmin
	}
	if err := st.CreateAdminToken(ctx, t); err != nil {
		return secret.String{}, store.AdminToken{}, fmt.Errorf("store the admin credential: %w", err)
	}
	t.Hash = nil
	return raw, t, nil
}

// tokenTTL reads a requested lifetime: empty is DefaultTokenTTL, and no
// more than MaxTokenTTL is given.
func tokenTTL(s string) (time.Duration, error) {
	if strings.TrimSpace(s) == "" {
		return DefaultTokenTTL, nil
	}
	d, err := adminapi.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("ttl: %w", err)
	}
	if d > MaxTokenTTL {
		return 0, fmt.Errorf("ttl: %s is longer than the %s an admin credential may live; ask for less", s, formatDuration(MaxTokenTTL))
	}
	return d, nil
}

// checkCap checks the role a new credential of p's is capped at: known,
// and nothing p does not hold itself.
func (a *API) checkCap(p rbac.Principal, role string) error {
	if err := a.opts.Roles.CheckRole(role); err != nil {
		return badRequestf("role: %v", err)
	}
	if missing := a.opts.Roles.MissingToCap(p, role); len(missing) > 0 {
		return httpError{http.StatusForbidden, "forbidden", fmt.Sprintf("role: a credential capped at %s could do what %s may not: %s; a credential is never stronger than its user",
			role, describe(p), grantList(missing))}
	}
	return nil
}

func grantList(gs []rbac.Grant) string {
	s := make([]string, len(gs))
	for i, g := range gs {
		s[i] = g.String()
	}
	return strings.Join(s, ", ")
}

// createPersonalToken issues the caller a personal access token:
// POST /me/tokens.
func (a *API) createPersonalToken(w http.ResponseWriter, r *http.Request) {
	var req adminapi.CreateTokenRequest
	if err := decodeOptional(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	p := principal(r)
	if p.Kind != rbac.KindUser {
		writeError(w, http.StatusBadRequest, "bad_request", "only a user has personal access tokens; "+describe(p)+
			" is not one (add a user with keygate user add, or issue a service account's token with keygate service-account token create)")
		return
	}
	a.issueToken(w, r, req, store.User{ID: p.UserID, Name: p.Name}, store.AdminTokenPersonal, p)
}

// createServiceToken issues a service account another token:
// POST /service-accounts/{name}/tokens.
func (a *API) createServiceToken(w http.ResponseWriter, r *http.Request) {
	var req adminapi.CreateTokenRequest
	if err := decodeOptional(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	name := r.PathValue("name")
	u, err := a.opts.People.GetUserByName(r.Context(), name)
	if err == nil && u.Kind != store.UserService {
		err = store.ErrNotFound
	}
	if err != nil {
		a.lookupError(w, "service account", name, err)
		return
	}
	if u.DisabledAt != nil {
		writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("service account %q is disabled; enable it first (keygate user enable %s)", name, name))
		return
	}
	// Issuing its token is acting as it: only who holds all it holds may.
	if err := a.checkActOn(r, u); err != nil {
		a.targetError(w, err)
		return
	}
	sa, err := a.UserPrincipal(r.Context(), u.ID, "", "", "", nil)
	if err != nil {
		a.internal(w, "read the service account", err)
		return
	}
	a.issueToken(w, r, req, u, store.AdminTokenService, sa)
}

// issueToken issues owner (whose principal is holder) a credential.
func (a *API) issueToken(w http.ResponseWriter, r *http.Request, req adminapi.CreateTokenRequest, owner store.User, kind string, holder rbac.Principal) {
	ttl, err := tokenTTL(req.TTL)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	role := strings.TrimSpace(req.Role)
	if role == "" {
		role = holder.Cap // a capped credential makes only capped ones
	}
	if role != "" {
		if err := a.checkCap(holder, role); err != nil {
			a.targetError(w, err)
			return
		}
	}
	name := strings.TrimSpace(req.Name)
	if name == "" {
		name = kind
	}
	if !keyName.MatchString(name) {
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("name %q must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", name))
		return
	}
	raw, tok, err := NewToken(r.Context(), a.opts.Credentials, a.opts.Hasher, TokenSpec{Name: name, Kind: kind, UserID: owner.ID, Role: role, TTL: ttl}, a.opts.Now())
	if err != nil {
		a.internal(w, "issue the admin credential", err)
		return
	}
	a.opts.Log.Info("admin credential issued", "actor", principal(r).ID, "token_id", tok.ID, "owner", owner.ID, "kind", kind, "cap", role)
	web.WriteJSON(w, http.StatusCreated, adminapi.CreatedToken{Token: tokenView(tok, map[string]store.User{owner.ID: owner}, a.opts.Now()), Secret: raw.Reveal()})
}

// listAdminTokens lists the credentials the caller may manage: every
// one, or only its own.
func (a *API) listAdminTokens(w http.ResponseWriter, r *http.Request) {
	toks, err := a.opts.Credentials.ListAdminTokens(r.Context())
	if err != nil {
		a.internal(w, "list admin credentials", err)
		return
	}
	users, err := a.usersByID(r.Context())
	if err != nil {
		a.internal(w, "list users", err)
		return
	}
	now := a.opts.Now()
	out := adminapi.AdminTokenList{Tokens: []adminapi.AdminToken{}}
	for _, t := range toks {
		if a.can(r, rbac.AdminTokensManage, rbac.Resource{Owner: t.UserID}) {
			out.Tokens = append(out.Tokens, tokenView(t, users, now))
		}
	}
	web.WriteJSON(w, http.StatusOK, out)
}

// revokeAdminToken revokes one credential: POST /admin-tokens/{id}/revoke.
// It stops on its next request on every node: credentials are checked
// against the database on each request.
func (a *API) revokeAdminToken(w http.ResponseWriter, r *http.Request) {
	t := *state(r).cred
	now := a.opts.Now().UTC()
	if err := a.opts.Credentials.RevokeAdminToken(r.Context(), t.ID, now); err != nil {
		a.lookupError(w, "admin credential", t.ID, err)
		return
	}
	if t.RevokedAt == nil {
		t.RevokedAt = &now
	}
	users, err := a.usersByID(r.Context())
	if err != nil {
		a.internal(w, "list users", err)
		return
	}
	a.auditChange(r, "admin_token "+t.ID, "status", "active", "revoked")
	a.opts.Log.Info("admin credential revoked", "actor", principal(r).ID, "token_id", t.ID)
	web.WriteJSON(w, http.StatusOK, tokenView(t, users, now))
}

func (a *API) usersByID(ctx context.Context) (map[string]store.User, error) {
	us, err := a.opts.People.ListUsers(ctx)
	if err != nil {
		return nil, err
	}
	m := make(map[string]store.User, len(us))
	for _, u := range us {
		m[u.ID] = u
	}
	return m, nil
}

// tokenView shows a credential: never its hash.
func tokenView(t store.AdminToken, users map[string]store.User, now time.Time) adminapi.AdminToken {
	v := adminapi.AdminToken{ID: t.ID, Name: t.Name, Kind: t.Kind, OwnerID: t.UserID, Role: t.Role, Prefix: t.Prefix, Status: "active",
		CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, RevokedAt: t.RevokedAt, LastUsedAt: t.LastUsedAt, LastUsedFrom: t.LastUsedFrom}
	if u, ok := users[t.UserID]; ok {
		v.Owner = u.Name
		if v.Role == "" {
			v.Role = u.Role
		}
	}
	switch {
	case t.RevokedAt != nil:
		v.Status = "revoked"
	case t.ExpiresAt != nil && !now.Before(*t.ExpiresAt):
		v.Status = "expired"
	}
	return v
}

// decodeOptional decodes a JSON body that may be left out.
func decodeOptional(w http.ResponseWriter, r *http.Request, v any) error {
	if r.ContentLength == 0 {
		return nil
	}
	return web.DecodeJSON(w, r, maxAdminBody, v)
}
