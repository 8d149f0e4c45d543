package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/detect"
	"github.com/keygate/keygate/internal/limitspec"
	"github.com/keygate/keygate/internal/mcpauth"
	"github.com/keygate/keygate/internal/otp"
	"github.com/keygate/keygate/internal/policy"
	"github.com/keygate/keygate/internal/principal"
	"github.com/keygate/keygate/internal/token"
	"github.com/keygate/keygate/internal/web"
)

// TokenOptions lets the gateway exchange keygate keys for short-lived access
// tokens and accept those tokens wherever it accepts keys.
type TokenOptions struct {
	Authority *token.Authority
	Families  *token.Families
	Keyring   *token.Keyring
	// Revocations records what /oauth/revoke revokes, for every node.
	Revocations interface {
		// Announce adds r to the revocation log every node follows.
		Announce(ctx context.Context, r Revocation) error
		// RevokeKey marks a key revoked at at.
		RevokeKey(ctx context.Context, id string, at time.Time) error
	}
	// Denied holds the revoked token families and access tokens this node
	// refuses; the server feeds it from the revocation log.
	Denied *Denylist
	// Workloads, when set, lets workloads exchange OIDC identity tokens
	// from trusted issuers (workload.go).
	Workloads WorkloadTrust
	// Authorization, when set, is keygate's OAuth authorization server for
	// MCP clients: /oauth/token also redeems its authorization codes
	// (mcpauth.go).
	Authorization AuthorizationServer
	// VerifyTOTP checks a key's one-time password (step-up) presented from
	// client; a code is accepted once. An error matching otp.ErrLockedOut
	// (too many wrong codes) is answered 429 with Retry-After. nil: step-up
	// is not offered.
	VerifyTOTP func(ctx context.Context, keyID, code, client string, now time.Time) error
}

// Token exchange parameters (RFC 8693) keygate accepts.
const (
	grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	grantRefresh       = "refresh_token"
	subjectTypeAPIKey  = "urn:keygate:params:oauth:token-type:api-key"
	issuedTypeAccess   = "urn:ietf:params:oauth:token-type:access_token"
	maxOAuthForm       = 16 << 10
)

// Denylist is the set of revoked token families and access tokens (by jti)
// a node refuses, each until it would have expired anyway. It is safe for
// concurrent use.
type Denylist struct {
	mu sync.RWMutex
	m  map[string]time.Time
}

// Deny refuses kind ("family" or "token") subject until until.
func (d *Denylist) Deny(kind, subject string, until time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		d.m = map[string]time.Time{}
	}
	d.m[kind+":"+subject] = until
	if len(d.m)%1024 == 0 { // forget what has expired, now and then
		now := time.Now()
		for k, u := range d.m {
			if u.Before(now) {
				delete(d.m, k)
			}
		}
	}
}

// denied reports whether kind subject is revoked.
func (d *Denylist) denied(kind, subject string) bool {
	if d == nil || subject == "" {
		return false
	}
	d.mu.RLock()
	_, ok := d.m[kind+":"+subject]
	d.mu.RUnlock()
	return ok
}

// ForgetKey drops a key from every cache of this gateway, the key
// verifier's included, after it changed: its next request reads it again.
func (g *Gateway) ForgetKey(id string) {
	g.opts.Keys.Invalidate(id)
}

// Revocation is one entry of the revocation log every node follows: a
// key (revoked, suspended, rotated or changed), a token family or an
// access token, refused until Until.
type Revocation struct {
	Kind    string // token.RevokedKey, token.RevokedFamily or token.RevokedToken
	Subject string // the key id, family id or token id (jti)
	At      time.Time
	Until   time.Time
}

// Revoked applies a revocation to this node at once: a key (revoked,
// suspended, rotated or changed) is forgotten by every cache, a token
// family or access token is refused from now on. The node that takes a
// revocation calls it before answering; every other node calls it when
// it reads the revocation log.
func (g *Gateway) Revoked(r Revocation) {
	switch r.Kind {
	case token.RevokedKey:
		g.ForgetKey(r.Subject)
	case token.RevokedFamily, token.RevokedToken:
		if to := g.opts.Tokens; to != nil && to.Denied != nil {
			to.Denied.Deny(r.Kind, r.Subject, r.Until)
		}
	}
}

// keyUsable refuses a key that is revoked, expired or suspended, saying why.
func keyUsable(k *principal.Principal, now time.Time) error {
	switch {
	case k.Revoked:
		return apikey.ErrRevoked
	case k.Expired(now):
		return apikey.ErrExpired
	case k.Suspended():
		return errSuspended
	}
	return nil
}

var errSuspended = errors.New("key suspended")

// errUnbound refuses a certificate-bound token presented without its
// certificate.
var errUnbound = errors.New("the access token is bound to a client certificate the connection did not present")

// verifyToken checks an access token and returns the key it stands for,
// with the token's narrower scope recorded on the call. A token bound to a
// client certificate (RFC 8705) is accepted only over a connection that
// presents that certificate.
func (g *Gateway) verifyToken(ctx context.Context, r *http.Request, raw string, now time.Time) (*principal.Principal, error) {
	to := g.opts.Tokens
	claims, err := to.Authority.Verify(ctx, raw, now)
	if err != nil {
		return nil, err
	}
	if claims.CnfX5t != "" {
		c := clientCert(r)
		if c == nil || thumbprint(c) != claims.CnfX5t {
			return nil, errUnbound
		}
	}
	if to.Denied.denied(token.RevokedToken, claims.JTI) || to.Denied.denied(token.RevokedFamily, claims.FamilyID) {
		return nil, apikey.ErrRevoked
	}
	// A token bound to an MCP resource is good there alone: not at
	// another MCP endpoint, not at a model or any other endpoint.
	if res := claims.Scope.Resource; res != "" && !g.resourceMatches(res, r) {
		return nil, errWrongResource
	}
	key, err := g.opts.Keys.ByID(ctx, claims.Subject, now)
	if errors.Is(err, apikey.ErrUnknown) {
		return nil, apikey.ErrRevoked
	}
	if err != nil {
		return nil, err
	}
	if err := keyUsable(key, now); err != nil {
		return nil, err
	}
	c := callFrom(ctx)
	c.tokenScope, c.tokenAMR, c.tokenFamily = &claims.Scope, claims.AMR, claims.FamilyID
	c.tokenNarrow = authz.Scope{Providers: claims.Scope.Providers, Models: claims.Scope.Models, Services: claims.Scope.Services, Secrets: claims.Scope.Secrets, Tools: claims.Scope.Tools}
	return key, nil
}

// scopeWithin refuses a token scope that names anything its key does not
// allow: a provider, model or service outside the key's, or a path rule
// the key's path rules do not cover (internal/authz and internal/policy
// decide).
func scopeWithin(k *principal.Principal, sc token.Scope) error {
	if err := authz.Within(k.Grant, authz.Scope{Providers: sc.Providers, Models: sc.Models, Services: sc.Services, Secrets: sc.Secrets, Tools: sc.Tools}); err != nil {
		return err
	}
	if k.Scope.Err != nil {
		return fmt.Errorf("this key's path rules cannot be read; ask its administrator to set them again")
	}
	for _, p := range sc.Paths {
		rule, err := policy.ParsePathRule(p)
		if err != nil {
			return err
		}
		if !policy.PathRulesCover(k.Scope.Paths, rule) {
			keyPaths := make([]string, len(k.Scope.Paths))
			for i, r := range k.Scope.Paths {
				keyPaths[i] = r.String()
			}
			return fmt.Errorf("scope item path:%s is not within this key's paths (%s)", strings.Replace(p, " ", ":", 1), strings.Join(keyPaths, ", "))
		}
	}
	return nil
}

// readOAuthForm parses a form-encoded OAuth request body of at most 16
// KiB, answering a bad or stalled one itself.
func readOAuthForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxOAuthForm)
	err := r.ParseForm()
	switch {
	case err == nil:
		return true
	case web.IsBodyTimeout(err):
		w.Header().Set("Connection", "close")
		oauthError(w, http.StatusRequestTimeout, "invalid_request", "the request body did not arrive in time")
	default:
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded and under 16 KiB")
	}
	return false
}

// oauthError answers in RFC 6749's error shape.
func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Cache-Control", "no-store")
	web.WriteJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// unavailable answers a token request keygate could not record: 503
// temporarily_unavailable with Retry-After, which token clients retry,
// rather than a 500 they treat as final.
func unavailable(w http.ResponseWriter, desc string) {
	w.Header().Set("Retry-After", "1")
	oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", desc)
}

// tokenEndpoint is POST /oauth/token: a keygate key (RFC 8693 token
// exchange), a refresh token (RFC 6749 §6) or an authorization code an MCP
// client got from a person (RFC 6749 §4.1.3 with PKCE; mcpauth.go) for a
// short-lived access token and the next refresh token. It is public: the
// grant presented is the credential.
func (g *Gateway) tokenEndpoint(w http.ResponseWriter, r *http.Request) {
	if mcpauth.PublicCORS(w, r) { // MCP clients in a browser exchange codes here
		return
	}
	to := g.opts.Tokens
	if to == nil {
		oauthError(w, http.StatusNotFound, "unsupported_grant_type", "this keygate does not issue tokens")
		return
	}
	if r.Method != http.MethodPost {
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "use POST with a form-encoded body")
		return
	}
	if !readOAuthForm(w, r) {
		return
	}
	ctx, now := r.Context(), g.opts.Now()
	var key *principal.Principal
	var fam token.Family
	var refresh string
	var extra map[string]string
	switch r.PostForm.Get("grant_type") {
	case grantAuthorizationCode:
		var ok bool
		if key, fam, refresh, extra, ok = g.codeGrant(w, r, now); !ok {
			return
		}
	case grantTokenExchange:
		if st := r.PostForm.Get("subject_token_type"); st == subjectTypeIDToken || st == subjectTypeJWT {
			var ok bool
			if key, fam, refresh, ok = g.workloadExchange(w, r, now); !ok {
				return
			}
			break
		}
		if r.PostForm.Get("subject_token_type") != subjectTypeAPIKey {
			oauthError(w, http.StatusBadRequest, "invalid_request", "subject_token_type must be "+subjectTypeAPIKey+" (a keygate key), or "+subjectTypeIDToken+" or "+subjectTypeJWT+" (a workload identity token)")
			return
		}
		raw := r.PostForm.Get("subject_token")
		k, err := g.opts.Keys.Verify(ctx, raw, now)
		if errors.Is(err, apikey.ErrMalformed) || errors.Is(err, apikey.ErrUnknown) {
			if t := g.authFailure(r, raw); t != nil {
				w.Header().Set("Retry-After", strconv.FormatInt(int64(t.RetryAfter/time.Second), 10))
				oauthError(w, http.StatusTooManyRequests, "too_many_auth_failures", t.Message)
				return
			}
		}
		if err == nil {
			err = keyUsable(k, now)
		}
		if err != nil {
			oauthError(w, http.StatusUnauthorized, "invalid_client", "the subject token is not a usable keygate key")
			return
		}
		scope, err := parseScope(r.PostForm.Get("scope"))
		if err == nil {
			err = scopeWithin(k, scope)
		}
		if err != nil {
			oauthError(w, http.StatusBadRequest, "invalid_scope", err.Error())
			return
		}
		var amr []string
		if code := r.PostForm.Get("totp"); code != "" {
			if to.VerifyTOTP == nil {
				oauthError(w, http.StatusBadRequest, "invalid_request", "this keygate does not take one-time passwords")
				return
			}
			client := web.ClientAddr(r, g.opts.TrustedProxies).String()
			if err := to.VerifyTOTP(ctx, k.ID, code, client, now); err != nil {
				g.opts.Log.Warn("a one-time password was refused", "key_id", k.ID, "client", client, "err", err)
				// A lockout is invalid_grant (the grant is refused, RFC 6749 §5.2)
				// with 429 and Retry-After, so clients and proxies back off;
				// slow_down (RFC 8628) means "poll slower", not "stop".
				if locked := (*otp.LockedError)(nil); errors.As(err, &locked) {
					secs := strconv.Itoa(int((locked.RetryAfter + time.Second - 1) / time.Second))
					w.Header().Set("Retry-After", secs)
					oauthError(w, http.StatusTooManyRequests, "invalid_grant", "too many wrong one-time passwords for this key or from this address: "+
						"every one-time password, even a right one, is refused until "+locked.Until.UTC().Format(time.RFC3339)+" (retry after "+secs+" s)")
					return
				}
				oauthError(w, http.StatusBadRequest, "invalid_grant", "the one-time password is wrong, expired or already used, or the key has none enrolled")
				return
			}
			amr = []string{"otp"}
		}
		if k.ClientCert != "" {
			if c := clientCert(r); c == nil || !certMatches(c, k.ClientCert) {
				oauthError(w, http.StatusUnauthorized, "invalid_client", "this key may be exchanged only over mutual TLS with its client certificate")
				return
			}
		}
		// A token minted over mutual TLS is bound to the certificate: a
		// stolen copy is useless without the private key.
		var cnf string
		if c := clientCert(r); c != nil {
			cnf = thumbprint(c)
		}
		sj, _ := json.Marshal(scope)
		want := token.Family{KeyID: k.ID, Scope: sj, AMR: amr, Cnf: cnf, CreatedAt: now}
		f, rt, err := to.Families.Start(ctx, want)
		if err != nil {
			// The database does not answer (the key was verified from
			// the cache). The caller still gets its access token, short-lived
			// and refused with its key like any other, but no refresh token:
			// one that cannot be recorded could not be checked for reuse.
			// RFC 6749 §5.1 makes the refresh token optional; clients
			// exchange their key again when the access token runs out.
			g.opts.Log.Warn("token exchange without a refresh token: the token family could not be recorded", "key_id", k.ID, "err", err)
			if f, err = token.UnrecordedFamily(want); err != nil {
				g.opts.Log.Error("token exchange failed", "err", err)
				unavailable(w, "keygate cannot issue a token right now; try again shortly")
				return
			}
		}
		key, fam, refresh = k, f, rt.Reveal()
	case grantRefresh:
		// A refresh is bound to the resource of the grant it continues
		// (RFC 8707 §2.2): without resource, the new token has the
		// family's; naming another is refused before the refresh token is
		// spent, so the client keeps it.
		if res := r.PostForm.Get("resource"); res != "" {
			if f, err := to.Families.FamilyOf(ctx, r.PostForm.Get("refresh_token")); err == nil {
				var fs token.Scope
				if len(f.Scope) > 0 {
					_ = json.Unmarshal(f.Scope, &fs)
				}
				if fs.Resource != res {
					desc := "resource differs from the one this refresh token's grant is bound to; omit it, or sign in again for the other resource"
					if fs.Resource == "" {
						desc = "this refresh token's grant is bound to no resource; omit resource"
					}
					oauthError(w, http.StatusBadRequest, "invalid_target", desc)
					return
				}
			}
		}
		f, rt, err := to.Families.Exchange(ctx, r.PostForm.Get("refresh_token"), now)
		if errors.Is(err, token.ErrRefreshReused) {
			g.opts.Log.Warn("security: a spent refresh token was presented again; its family is revoked",
				"client", web.ClientAddr(r, g.opts.TrustedProxies).String(), "family", f.ID, "key_id", f.KeyID)
			if g.opts.Detect != nil {
				g.opts.Detect.Observe(detect.Observation{At: now, KeyID: f.KeyID, Client: web.ClientAddr(r, g.opts.TrustedProxies).String(), RefreshReuse: true})
			}
			g.auditEvent(r, "token.refresh_reuse", f.KeyID, map[string]string{"family": f.ID})
			g.Revoked(Revocation{Kind: token.RevokedFamily, Subject: f.ID, Until: now.Add(token.MaxFamilyLifetime + token.MaxLifetime + token.Leeway)})
		}
		if err != nil {
			if errors.Is(err, token.ErrInvalid) {
				oauthError(w, http.StatusBadRequest, "invalid_grant", "the refresh token is invalid, expired, revoked or already used")
				return
			}
			g.opts.Log.Error("refresh failed", "err", err)
			unavailable(w, "keygate cannot record the refresh right now (its database does not answer); try again shortly")
			return
		}
		if f.Cnf != "" {
			if c := clientCert(r); c == nil || thumbprint(c) != f.Cnf {
				oauthError(w, http.StatusBadRequest, "invalid_grant", "this refresh token is bound to a client certificate the connection did not present")
				return
			}
		}
		k, err := g.opts.Keys.ByID(ctx, f.KeyID, now)
		if err == nil {
			err = keyUsable(k, now)
		}
		if err != nil {
			oauthError(w, http.StatusBadRequest, "invalid_grant", "the key this token was issued for is no longer usable")
			return
		}
		if !g.personStillGranted(w, r, f) {
			return
		}
		// The key's allowances may have narrowed since the exchange: a
		// refreshed token never claims more than the key allows now.
		// A token exchanged without a scope has an empty one, which the
		// store reads back as no bytes at all.
		var fs token.Scope
		if (len(f.Scope) > 0 && json.Unmarshal(f.Scope, &fs) != nil) || scopeWithin(k, fs) != nil {
			oauthError(w, http.StatusBadRequest, "invalid_grant", "the key's allowances have changed since this token was issued; exchange the key again")
			return
		}
		key, fam, refresh = k, f, rt.Reveal()
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be "+grantTokenExchange+", "+grantRefresh+" or "+grantAuthorizationCode)
		return
	}
	var scope token.Scope
	_ = json.Unmarshal(fam.Scope, &scope)
	access, err := to.Authority.Issue(ctx, token.Claims{Subject: key.ID, ClientID: key.Name, Scope: scope, FamilyID: fam.ID, AMR: fam.AMR, CnfX5t: fam.Cnf})
	if err != nil {
		g.opts.Log.Error("issuing an access token failed", "err", err)
		oauthError(w, http.StatusInternalServerError, "server_error", "keygate could not issue a token; try again")
		return
	}
	fields := map[string]string{"family": fam.ID, "scope": formatScope(scope), "grant": r.PostForm.Get("grant_type")}
	maps.Copy(fields, extra)
	answer := map[string]any{
		"access_token": access, "issued_token_type": issuedTypeAccess, "token_type": "Bearer",
		"expires_in": int(to.Authority.Lifetime().Seconds()), "scope": formatScope(scope),
	}
	if refresh != "" {
		answer["refresh_token"] = refresh
	} else {
		fields["refresh"] = "withheld: the family could not be recorded"
	}
	g.auditEvent(r, "token.issued", key.ID, fields)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	web.WriteJSON(w, http.StatusOK, answer)
}

// parseScope reads a requested scope: space-separated provider:NAME,
// model:PATTERN, service:NAME, secret:NAME, tool:SERVER/TOOL (!deny) and path:METHOD:/path items, and rps:N,
// rpm:N, tpm:N and concurrency:N limits. Its items must lie inside the
// key's allowances (scopeWithin), and its limits count on top of the
// key's, so a scope can narrow but never widen.
func parseScope(s string) (sc token.Scope, err error) {
	var lim limitspec.Limits
	defer func() {
		if !lim.IsZero() {
			sc.Limits, _ = json.Marshal(lim)
		}
	}()
	for item := range strings.FieldsSeq(s) {
		kind, val, ok := strings.Cut(item, ":")
		if !ok || val == "" {
			return sc, fmt.Errorf("scope item %q must be provider:NAME, model:PATTERN, service:NAME or path:METHOD:/path", item)
		}
		switch kind {
		case "provider":
			sc.Providers = append(sc.Providers, val)
		case "model":
			if !authz.ValidPattern(val) {
				return sc, fmt.Errorf("scope item %q is not a valid model pattern", item)
			}
			sc.Models = append(sc.Models, val)
		case "service":
			sc.Services = append(sc.Services, val)
		case "secret":
			if !validSecretPattern(val) {
				return sc, fmt.Errorf("scope item %q: a secret is named by letters, digits, '.', '_', '-' and '/', with * or ? as wildcards", item)
			}
			sc.Secrets = append(sc.Secrets, val)
		case "tool":
			if err := authz.ValidToolPattern(val); err != nil {
				return sc, fmt.Errorf("scope item tool:%w", err)
			}
			sc.Tools = append(sc.Tools, val)
		case "path":
			method, p, ok := strings.Cut(val, ":")
			if !ok {
				return sc, fmt.Errorf("scope item %q must be path:METHOD:/path", item)
			}
			if _, err := policy.ParsePathRule(method + " " + p); err != nil {
				return sc, fmt.Errorf("scope item %q: %w", item, err)
			}
			sc.Paths = append(sc.Paths, method+" "+p)
		case "rps", "rpm", "tpm", "concurrency":
			n, perr := strconv.ParseInt(val, 10, 64)
			if perr != nil || n <= 0 {
				return sc, fmt.Errorf("scope item %q: the limit must be a positive whole number", item)
			}
			switch kind {
			case "rps":
				lim.RPS = n
			case "rpm":
				lim.RPM = n
			case "tpm":
				lim.TPM = n
			default:
				lim.Concurrency = n
			}
			if err := lim.Validate(); err != nil {
				return sc, fmt.Errorf("scope item %q: %w", item, err)
			}
		default:
			return sc, fmt.Errorf("scope item %q must be provider:NAME, model:PATTERN, service:NAME, secret:NAME, tool:SERVER/TOOL, path:METHOD:/path, rps:N, rpm:N, tpm:N or concurrency:N", item)
		}
	}
	return sc, nil
}

func formatScope(sc token.Scope) string {
	var parts []string
	var lim limitspec.Limits
	if len(sc.Limits) > 0 && json.Unmarshal(sc.Limits, &lim) == nil {
		for _, l := range []struct {
			name string
			v    int64
		}{{"rps", lim.RPS}, {"rpm", lim.RPM}, {"tpm", lim.TPM}, {"concurrency", lim.Concurrency}} {
			if l.v > 0 {
				parts = append(parts, l.name+":"+strconv.FormatInt(l.v, 10))
			}
		}
	}
	for _, p := range sc.Providers {
		parts = append(parts, "provider:"+p)
	}
	for _, m := range sc.Models {
		parts = append(parts, "model:"+m)
	}
	for _, svc := range sc.Services {
		parts = append(parts, "service:"+svc)
	}
	for _, sec := range sc.Secrets {
		parts = append(parts, "secret:"+sec)
	}
	for _, t := range sc.Tools {
		parts = append(parts, "tool:"+t)
	}
	for _, p := range sc.Paths {
		parts = append(parts, "path:"+strings.Replace(p, " ", ":", 1))
	}
	return strings.Join(parts, " ")
}

// revokeEndpoint is POST /oauth/revoke (RFC 7009): an access token, a
// refresh token (its whole family) or a keygate key (and every token
// exchanged for it). Presenting the token is the authority to revoke it;
// an unknown token is not an error.
func (g *Gateway) revokeEndpoint(w http.ResponseWriter, r *http.Request) {
	to := g.opts.Tokens
	if to == nil || r.Method != http.MethodPost {
		oauthError(w, http.StatusBadRequest, "invalid_request", "use POST with a form-encoded token")
		return
	}
	if !readOAuthForm(w, r) {
		return
	}
	ctx, now := r.Context(), g.opts.Now()
	raw := r.PostForm.Get("token")
	var err error
	switch {
	case token.LooksLikeJWT(raw):
		var claims token.Claims
		if claims, err = to.Authority.Verify(ctx, raw, now); err == nil {
			rev := Revocation{Kind: token.RevokedToken, Subject: claims.JTI, At: now.UTC(), Until: claims.Expiry.Add(token.Leeway).UTC()}
			g.Revoked(rev)
			err = to.Revocations.Announce(ctx, rev)
		} else if errors.Is(err, token.ErrInvalid) {
			err = nil
		}
	case token.IsRefresh(raw):
		var fam string
		if fam, err = to.Families.RevokeRefresh(ctx, raw, "revoked by its holder", now); fam != "" {
			// Its access tokens are refused here before the answer;
			// other nodes read the family's revocation from the log.
			g.Revoked(Revocation{Kind: token.RevokedFamily, Subject: fam, Until: now.Add(token.MaxFamilyLifetime + token.MaxLifetime + token.Leeway)})
		}
	default:
		var k *principal.Principal
		if k, err = g.opts.Keys.Verify(ctx, raw, now); err == nil {
			if err = to.Revocations.RevokeKey(ctx, k.ID, now.UTC()); err == nil {
				_, err = to.Families.RevokeKey(ctx, k.ID, "key revoked by its holder", now)
			}
			// Forgotten here before the answer, whatever else failed:
			// the next request reads the key, revoked, from the store.
			g.Revoked(Revocation{Kind: token.RevokedKey, Subject: k.ID})
		} else if !errors.Is(err, apikey.ErrMalformed) && !errors.Is(err, apikey.ErrUnknown) && !errors.Is(err, apikey.ErrRevoked) && !errors.Is(err, apikey.ErrExpired) {
			break
		} else {
			err = nil
		}
	}
	if err == nil {
		g.auditEvent(r, "token.revoked", "", map[string]string{"token_kind": revokedKind(raw)})
	}
	if err != nil {
		g.opts.Log.Error("revocation failed", "err", err)
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "keygate could not record the revocation; try again")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// introspectEndpoint is POST /oauth/introspect (RFC 7662) for resource
// servers, which authenticate with a keygate key of their own.
func (g *Gateway) introspectEndpoint(w http.ResponseWriter, r *http.Request) {
	to := g.opts.Tokens
	if to == nil || r.Method != http.MethodPost {
		oauthError(w, http.StatusBadRequest, "invalid_request", "use POST with a form-encoded token")
		return
	}
	c := callFrom(r.Context())
	c.dialect = g.openai
	if _, den := g.authenticate(r, c); den != nil {
		g.refuse(w, r, den)
		return
	}
	if !readOAuthForm(w, r) {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	now := g.opts.Now()
	raw := r.PostForm.Get("token")
	if !token.LooksLikeJWT(raw) {
		web.WriteJSON(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	claims, err := to.Authority.Verify(r.Context(), raw, now)
	active := err == nil && !to.Denied.denied(token.RevokedToken, claims.JTI) && !to.Denied.denied(token.RevokedFamily, claims.FamilyID)
	if active {
		k, kerr := g.opts.Keys.ByID(r.Context(), claims.Subject, now)
		active = kerr == nil && keyUsable(k, now) == nil
	}
	if !active {
		web.WriteJSON(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{
		"active": true, "token_type": "Bearer", "sub": claims.Subject, "client_id": claims.ClientID,
		"scope": formatScope(claims.Scope), "jti": claims.JTI, "exp": claims.Expiry.Unix(), "iat": claims.IssuedAt.Unix(),
		"amr": claims.AMR,
	})
}

// jwks serves the public signing keys (GET /.well-known/jwks.json).
func (g *Gateway) jwks(w http.ResponseWriter, r *http.Request) {
	if g.opts.Tokens == nil {
		g.refuse(w, r, deny(http.StatusNotFound, "unknown_url", "this keygate does not issue tokens"))
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(g.opts.Tokens.Keyring.JWKS())
}

// revokedKind names what /oauth/revoke was given, never the token itself.
func revokedKind(raw string) string {
	switch {
	case token.LooksLikeJWT(raw):
		return "access_token"
	case token.IsRefresh(raw):
		return "refresh_token"
	}
	return "api_key"
}

// auditEvent records a token event on the audit trail, if there is one.
func (g *Gateway) auditEvent(r *http.Request, typ, keyID string, fields map[string]string) {
	if g.opts.Audit == nil {
		return
	}
	fields["request_id"] = web.RequestID(r.Context())
	ev := audit.Event{Type: typ, KeyID: keyID, Client: web.ClientAddr(r, g.opts.TrustedProxies).String(), Resource: r.Method + " " + r.URL.Path, Decision: "allow", Fields: fields}
	if err := g.opts.Audit.Record(ev); err != nil {
		g.opts.Log.Error("could not record a token event in the audit trail", "err", err)
	}
}
