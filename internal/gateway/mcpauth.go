package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/detect"
	"github.com/keygate/keygate/internal/mcpauth"
	"github.com/keygate/keygate/internal/principal"
	"github.com/keygate/keygate/internal/token"
	"github.com/keygate/keygate/internal/web"
)

// AuthorizationServer is keygate's OAuth authorization server for MCP
// clients (internal/mcpauth): the gateway serves its metadata and
// registration endpoints, and redeems its authorization codes at
// /oauth/token, issuing tokens as for every other grant.
type AuthorizationServer interface {
	// ServeMetadata serves RFC 8414 metadata.
	ServeMetadata(w http.ResponseWriter, r *http.Request)
	// ServeRegister serves dynamic client registration (RFC 7591).
	ServeRegister(w http.ResponseWriter, r *http.Request)
	// Redeem spends an authorization code presented at origin; a refusal
	// is a *mcpauth.TokenError.
	Redeem(ctx context.Context, form url.Values, origin string) (mcpauth.Grant, error)
	// StillGranted checks, at each refresh, that the person who
	// authorized a family may still use its key; a refusal is a
	// *mcpauth.TokenError.
	StillGranted(ctx context.Context, userID, keyID string) error
}

const grantAuthorizationCode = "authorization_code"

// errWrongResource refuses a token bound to another resource (RFC 8707).
var errWrongResource = errors.New("this access token is bound to another resource: an MCP client's token is good only at the MCP endpoint it was issued for (sign in again for this one)")

// serveAuthorizationServer serves the authorization server's public
// endpoints; without one they are not found.
func (g *Gateway) serveAuthorizationServer(w http.ResponseWriter, r *http.Request) {
	var as AuthorizationServer
	if g.opts.Tokens != nil {
		as = g.opts.Tokens.Authorization
	}
	if as == nil {
		oauthError(w, http.StatusNotFound, "invalid_request", "this keygate does not sign MCP clients in; use a keygate key or access token")
		return
	}
	if r.URL.Path == mcpauth.RegisterPath {
		as.ServeRegister(w, r)
		return
	}
	as.ServeMetadata(w, r)
}

// resourceMatches reports whether a token bound to resource may be used
// for r: r is to that MCP endpoint, on the host the token was issued for
// (the gateway's public host, see origin). The scheme is not compared,
// since TLS may end at a proxy in front.
func (g *Gateway) resourceMatches(resource string, r *http.Request) bool {
	u, ok := mcpauth.MCPResource(resource)
	_, host, _ := strings.Cut(g.origin(r), "://")
	return ok && strings.EqualFold(u.Host, host) && u.EscapedPath() == r.URL.EscapedPath()
}

// codeGrant redeems an authorization code (grant_type authorization_code)
// for the key the person chose, with a new refresh family. A replayed
// code revokes the family its first exchange started, on every node.
// Failures count against the address like failed keys do.
func (g *Gateway) codeGrant(w http.ResponseWriter, r *http.Request, now time.Time) (*principal.Principal, token.Family, string, map[string]string, bool) {
	to := g.opts.Tokens
	if to.Authorization == nil {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "this keygate does not issue authorization codes")
		return nil, token.Family{}, "", nil, false
	}
	ctx := r.Context()
	grant, err := to.Authorization.Redeem(ctx, r.PostForm, g.origin(r))
	var te *mcpauth.TokenError
	if errors.As(err, &te) {
		if te.Replayed != "" {
			g.opts.Log.Warn("security: an authorization code was presented again; the tokens it granted are revoked",
				"client", web.ClientAddr(r, g.opts.TrustedProxies).String(), "family", te.Replayed, "key_id", te.KeyID)
			// A family never started (the first presentation was refused)
			// is not found: there is nothing to revoke.
			if rerr := to.Families.RevokeFamily(ctx, te.Replayed, "authorization code replayed", now); rerr != nil {
				g.opts.Log.Warn("the family of a replayed authorization code was not revoked", "family", te.Replayed, "err", rerr)
			}
			g.Revoked(Revocation{Kind: token.RevokedFamily, Subject: te.Replayed, Until: now.Add(token.MaxFamilyLifetime + token.MaxLifetime + token.Leeway)})
			g.auditEvent(r, "oauth.code_replay", te.KeyID, map[string]string{"family": te.Replayed})
			if g.opts.Detect != nil && te.KeyID != "" {
				// A replayed code is a stolen grant, like a reused refresh token.
				g.opts.Detect.Observe(detect.Observation{At: now, KeyID: te.KeyID, Client: web.ClientAddr(r, g.opts.TrustedProxies).String(), RefreshReuse: true})
			}
		}
		if den := g.authFailure(r, ""); den != nil {
			w.Header().Set("Retry-After", strconv.FormatInt(int64(den.RetryAfter/time.Second), 10))
			oauthError(w, http.StatusTooManyRequests, "too_many_auth_failures", den.Message)
			return nil, token.Family{}, "", nil, false
		}
		oauthError(w, te.Status, te.Code, te.Desc)
		return nil, token.Family{}, "", nil, false
	}
	if err != nil {
		g.opts.Log.Error("redeeming an authorization code failed", "err", err)
		unavailable(w, "keygate cannot read authorization codes right now (its database does not answer); try again shortly")
		return nil, token.Family{}, "", nil, false
	}
	k, err := g.opts.Keys.ByID(ctx, grant.KeyID, now)
	if err == nil {
		err = keyUsable(k, now)
	}
	if err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "the key this authorization was granted with is no longer usable")
		return nil, token.Family{}, "", nil, false
	}
	if err := scopeWithin(k, grant.Scope); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "the key's allowances have changed since the authorization: "+err.Error())
		return nil, token.Family{}, "", nil, false
	}
	if k.ClientCert != "" {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "this key may be used only over mutual TLS with its client certificate; choose another key")
		return nil, token.Family{}, "", nil, false
	}
	sj, _ := json.Marshal(grant.Scope)
	want := token.Family{ID: grant.FamilyID, KeyID: k.ID, Scope: sj, AMR: grant.AMR, CreatedAt: now, UserID: grant.UserID}
	f, rt, err := to.Families.Start(ctx, want)
	if err != nil {
		g.opts.Log.Error("recording the refresh family of an authorization code failed", "err", err)
		unavailable(w, "keygate cannot record the token right now (its database does not answer); sign in again shortly")
		return nil, token.Family{}, "", nil, false
	}
	fields := map[string]string{"client_id": grant.ClientID, "user_id": grant.UserID, "resource": grant.Scope.Resource}
	return k, f, rt.Reveal(), fields, true
}

// personStillGranted refuses the refresh of a family a person authorized
// once that person may no longer use its key (disabled, or no longer its
// owner). It answers the refusal itself and reports whether it did not.
func (g *Gateway) personStillGranted(w http.ResponseWriter, r *http.Request, f token.Family) bool {
	if f.UserID == "" {
		return true
	}
	as := g.opts.Tokens.Authorization
	if as == nil {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "this keygate no longer signs MCP clients in; sign in again")
		return false
	}
	err := as.StillGranted(r.Context(), f.UserID, f.KeyID)
	var te *mcpauth.TokenError
	switch {
	case errors.As(err, &te):
		oauthError(w, te.Status, te.Code, te.Desc)
		return false
	case err != nil:
		g.opts.Log.Error("checking the person behind a refresh failed", "err", err)
		unavailable(w, "keygate cannot check this refresh right now (its database does not answer); try again shortly")
		return false
	}
	return true
}
