package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"time"

	"golang.org/x/oauth2"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/mcpoauth"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/token"
	"github.com/keygate/keygate/internal/web"
)

// A user's authorization at an MCP server that acts for a person (auth
// oauth), in a browser signed in to keygate as that user:
//
//	GET /me/mcp/{name}/oauth/start
//	  -> discovery (the server's resource metadata, its authorization
//	     server's), keygate's registration there (dynamic, kept in the
//	     vault, or the configured client id); a flow kept under a random
//	     state, bound to the user and the server, single use, 10 minutes;
//	     the state also in a short-lived cookie, so only this browser can
//	     finish it; 302 to the authorization endpoint with PKCE S256 and
//	     the resource parameter.
//	GET /auth/mcp/callback?code&state
//	  -> the cookie and the state compared in constant time, the flow
//	     taken once; a browser signed in as another user is refused; the
//	     code exchanged (with the verifier and the resource); the grant
//	     sealed in the vault as the user's.
//	GET /me/mcp/{name}/oauth      whether the caller has authorized
//	DELETE /me/mcp/{name}/oauth   forget the caller's grant
//
// keygate mcp auth NAME prints (and opens) the start URL.

const (
	mcpFlowKind   = "mcp-oauth"
	mcpFlowTTL    = 10 * time.Minute
	mcpFlowCookie = "keygate_mcp_oauth"
)

// MCPGrantStore keeps users' grants at OAuth MCP servers and keygate's
// registrations there, sealed in the vault; internal/gatewaystore's
// MCPGrants implements it.
type MCPGrantStore interface {
	Grant(ctx context.Context, serverID, userID string) (*mcpoauth.Grant, error)
	PutGrant(ctx context.Context, serverID, userID string, g *mcpoauth.Grant) error
	DeleteGrant(ctx context.Context, serverID, userID string) error
	DeleteServer(ctx context.Context, serverID string) error
	Client(ctx context.Context, serverID string) (mcpoauth.Client, error)
	PutClient(ctx context.Context, serverID string, c mcpoauth.Client) error
}

// mcpFlow is what an authorization in progress keeps until its callback.
// Nothing in it is a credential but the PKCE verifier, which is worth
// nothing without the code the user's browser carries.
type mcpFlow struct {
	User     string            `json:"user"`
	Server   string            `json:"server"`
	ServerID string            `json:"server_id"`
	Verifier string            `json:"verifier"`
	Meta     mcpoauth.Metadata `json:"meta"`
	Redirect string            `json:"redirect"`
	ClientID string            `json:"client_id"` // the client the code is issued to
}

// mcpOAuthServer resolves the route's server for the calling user, or
// answers why not.
func (a *API) mcpOAuthServer(w http.ResponseWriter, r *http.Request) (store.MCPServer, string, bool) {
	p := principal(r)
	if a.mcpStore(w) == nil {
		return store.MCPServer{}, "", false
	}
	if a.opts.MCPGrants == nil {
		writeError(w, http.StatusNotImplemented, "not_implemented", "this keygate keeps no MCP authorizations")
		return store.MCPServer{}, "", false
	}
	if p.UserID == "" {
		writeError(w, http.StatusForbidden, "forbidden", "an MCP authorization is a person's own: use your own credential (keygate login, or a personal admin credential), not "+describe(p))
		return store.MCPServer{}, "", false
	}
	m, err := a.opts.MCP.GetMCPServer(r.Context(), r.PathValue("name"))
	if err != nil {
		a.lookupError(w, "MCP server", r.PathValue("name"), err)
		return m, "", false
	}
	if m.Auth != "oauth" {
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("MCP server %s uses auth %s: only servers registered with --auth oauth take each user's own authorization", m.Name, m.Auth))
		return m, "", false
	}
	return m, p.UserID, true
}

// mcpOAuthStatus is GET /me/mcp/{name}/oauth.
func (a *API) mcpOAuthStatus(w http.ResponseWriter, r *http.Request) {
	m, user, ok := a.mcpOAuthServer(w, r)
	if !ok {
		return
	}
	out := adminapi.MCPAuthorization{Server: m.Name, StartPath: adminapi.Prefix + "/me/mcp/" + url.PathEscape(m.Name) + "/oauth/start"}
	g, err := a.opts.MCPGrants.Grant(r.Context(), m.ID, user)
	switch {
	case errors.Is(err, mcpoauth.ErrNoGrant):
	case err != nil:
		a.internal(w, "read the MCP authorization", err)
		return
	case g.Server == m.ID:
		out.Authorized = true
		if !g.Expiry.IsZero() {
			exp := g.Expiry.UTC()
			out.ExpiresAt = &exp
		}
	}
	web.WriteJSON(w, http.StatusOK, out)
}

// mcpOAuthRevoke is DELETE /me/mcp/{name}/oauth.
func (a *API) mcpOAuthRevoke(w http.ResponseWriter, r *http.Request) {
	m, user, ok := a.mcpOAuthServer(w, r)
	if !ok {
		return
	}
	if err := a.opts.MCPGrants.DeleteGrant(r.Context(), m.ID, user); err != nil {
		a.internal(w, "delete the MCP authorization", err)
		return
	}
	a.mcpGrantChanged(r, m.Name, user)
	a.auditMCPOAuth(r, "mcp.oauth.revoke", user, m.Name, "allow", "")
	w.WriteHeader(http.StatusNoContent)
}

// mcpOAuthStart is GET /me/mcp/{name}/oauth/start.
func (a *API) mcpOAuthStart(w http.ResponseWriter, r *http.Request) {
	m, user, ok := a.mcpOAuthServer(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	hc := a.mcpHTTPClient(m)
	md, err := mcpoauth.Discover(ctx, hc, m.URL)
	if err != nil {
		a.opts.Log.Warn("MCP authorization: discovery failed", "mcp_server", m.Name, "err", err)
		writeError(w, http.StatusBadGateway, "discovery_failed", "keygate could not find how to authorize at MCP server "+m.Name+": "+err.Error())
		return
	}
	var o adminapi.MCPOptions
	_ = json.Unmarshal(m.Options, &o)
	if o.OAuth != nil && len(o.OAuth.Scopes) > 0 {
		md.Scopes = o.OAuth.Scopes // the operator's choice over what the server asks
	}
	redirect := a.mcpCallbackURL(r)
	client, err := a.mcpClient(ctx, m, md, redirect, true)
	if err != nil {
		a.opts.Log.Warn("MCP authorization: no client registration", "mcp_server", m.Name, "err", err)
		writeError(w, http.StatusBadGateway, "registration_failed", "MCP server "+m.Name+": "+err.Error())
		return
	}
	state, verifier := randomToken(), oauth2.GenerateVerifier()
	data, _ := json.Marshal(mcpFlow{User: user, Server: m.Name, ServerID: m.ID, Verifier: verifier, Meta: *md, Redirect: redirect, ClientID: client.ID})
	if err := a.opts.SignIn.Store.PutSignInFlow(ctx, flowID(state), mcpFlowKind, data, a.opts.Now().Add(mcpFlowTTL)); err != nil {
		a.internal(w, "start the MCP authorization", err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: mcpFlowCookie, Value: state, Path: adminapi.Prefix + "/auth/mcp/", HttpOnly: true, Secure: a.opts.SignIn.TLS,
		SameSite: http.SameSiteLaxMode, MaxAge: int(mcpFlowTTL.Seconds())})
	a.auditMCPOAuth(r, "mcp.oauth.start", user, m.Name, "allow", "")
	http.Redirect(w, r, mcpoauth.AuthURL(md, client, state, verifier), http.StatusFound)
}

// mcpOAuthCallback is GET /auth/mcp/callback.
func (a *API) mcpOAuthCallback(w http.ResponseWriter, r *http.Request) {
	if a.opts.MCPGrants == nil || a.opts.MCP == nil || a.opts.SignIn == nil {
		writeError(w, http.StatusNotImplemented, "not_implemented", "this keygate keeps no MCP authorizations")
		return
	}
	q := r.URL.Query()
	state := q.Get("state")
	c, err := r.Cookie(mcpFlowCookie)
	if state == "" || err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(state)) != 1 {
		a.auditMCPOAuth(r, "mcp.oauth.callback", "", "", "deny", "state_mismatch")
		writeError(w, http.StatusBadRequest, "state_mismatch", "this MCP authorization was not started in this browser, or is over; start again with keygate mcp auth SERVER")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: mcpFlowCookie, Value: "", Path: adminapi.Prefix + "/auth/mcp/", HttpOnly: true, Secure: a.opts.SignIn.TLS, SameSite: http.SameSiteLaxMode, MaxAge: -1})
	data, err := a.opts.SignIn.Store.TakeSignInFlow(r.Context(), flowID(state), mcpFlowKind, a.opts.Now())
	if errors.Is(err, store.ErrNotFound) {
		a.auditMCPOAuth(r, "mcp.oauth.callback", "", "", "deny", "state_unknown")
		writeError(w, http.StatusBadRequest, "state_unknown", "this MCP authorization is unknown, used already or expired; start again with keygate mcp auth SERVER")
		return
	}
	if err != nil {
		a.internal(w, "finish the MCP authorization", err)
		return
	}
	var f mcpFlow
	if err := json.Unmarshal(data, &f); err != nil {
		a.internal(w, "read the MCP authorization", err)
		return
	}
	// The browser's own session, when it sends one, must be the user the
	// authorization was started for: a flow started by one user cannot
	// leave another's authorization under it.
	if p, _, ok, err := a.sessionPrincipal(r); ok && err == nil && p.UserID != f.User {
		a.auditMCPOAuth(r, "mcp.oauth.callback", f.User, f.Server, "deny", "wrong_user")
		writeError(w, http.StatusForbidden, "wrong_user", "this MCP authorization was started by another keygate user; sign in as yourself and start again")
		return
	}
	if e := q.Get("error"); e != "" {
		a.auditMCPOAuth(r, "mcp.oauth.callback", f.User, f.Server, "deny", "provider_error")
		writeError(w, http.StatusBadRequest, "authorization_refused", "the MCP server's authorization server refused: "+safeCode(e))
		return
	}
	m, err := a.opts.MCP.GetMCPServer(r.Context(), f.Server)
	if err != nil || m.ID != f.ServerID || m.Auth != "oauth" {
		writeError(w, http.StatusConflict, "server_changed", "MCP server "+f.Server+" was removed or changed since this authorization started; start again")
		return
	}
	client, err := a.mcpClient(r.Context(), m, &f.Meta, f.Redirect, false)
	if err == nil && client.ID != f.ClientID {
		// Another start registered keygate anew meanwhile.
		err = errors.New("keygate's registration at its authorization server changed since this authorization started; start again")
	}
	if err != nil {
		writeError(w, http.StatusBadGateway, "registration_failed", "MCP server "+m.Name+": "+err.Error())
		return
	}
	g, err := mcpoauth.Exchange(r.Context(), a.mcpHTTPClient(m), &f.Meta, client, q.Get("code"), f.Verifier)
	if err != nil {
		a.opts.Log.Warn("MCP authorization: the code exchange failed", "mcp_server", m.Name, "err", err)
		a.auditMCPOAuth(r, "mcp.oauth.callback", f.User, f.Server, "deny", "exchange_failed")
		writeError(w, http.StatusBadGateway, "exchange_failed", "MCP server "+m.Name+": "+err.Error()+"; start again")
		return
	}
	g.Server, g.Created = m.ID, a.opts.Now().UTC()
	if err := a.opts.MCPGrants.PutGrant(r.Context(), m.ID, f.User, g); err != nil {
		a.internal(w, "keep the MCP authorization", err)
		return
	}
	a.mcpGrantChanged(r, m.Name, f.User)
	a.auditMCPOAuth(r, "mcp.oauth.callback", f.User, f.Server, "allow", "")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = authorizedPage.Execute(w, m.Name)
}

var authorizedPage = template.Must(template.New("ok").Parse(`<!doctype html><meta charset="utf-8"><title>keygate</title>` +
	`<p>keygate may now call MCP server <b>{{.}}</b> as you. You can close this window.</p>`))

// safeCode keeps an OAuth error code to its defined characters.
func safeCode(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			b[i] = '?'
		}
	}
	return string(b)
}

// mcpClient is keygate's client at the server's authorization server:
// the configured client id (its secret in the server's vault secret), or
// the registration kept in the vault, made now (when register is set)
// if there is none for this authorization server and redirect URL.
func (a *API) mcpClient(ctx context.Context, m store.MCPServer, md *mcpoauth.Metadata, redirect string, register bool) (mcpoauth.Client, error) {
	var o adminapi.MCPOptions
	_ = json.Unmarshal(m.Options, &o)
	if o.OAuth != nil && o.OAuth.ClientID != "" {
		c := mcpoauth.Client{ID: o.OAuth.ClientID, RedirectURL: redirect, Issuer: md.Issuer, AuthStyle: oauth2.AuthStyleInHeader}
		if m.Secret == "" || (len(md.AuthMethods) > 0 && !slices.Contains(md.AuthMethods, "client_secret_basic") && slices.Contains(md.AuthMethods, "client_secret_post")) {
			// A public client (no secret) names itself in the form.
			c.AuthStyle = oauth2.AuthStyleInParams
		}
		if m.Secret != "" {
			meta, err := a.opts.Store.GetSecretMeta(ctx, m.Secret)
			if err == nil && meta.DeletedAt != nil {
				err = errors.New("the secret is deleted; restore it or store it again with keygate secret put")
			}
			if err != nil {
				return c, fmt.Errorf("reading its client secret %s: %w", m.Secret, err)
			}
			v, _, err := a.opts.Vault.Get(ctx, meta.RecordID)
			if err != nil {
				return c, fmt.Errorf("reading its client secret %s: %w", m.Secret, err)
			}
			c.Secret = v.Reveal()
		}
		return c, nil
	}
	c, err := a.opts.MCPGrants.Client(ctx, m.ID)
	if err == nil && c.RedirectURL == redirect && c.Issuer == md.Issuer {
		return c, nil
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return c, err
	}
	if !register {
		return c, errors.New("keygate's registration at its authorization server changed since this authorization started; start again")
	}
	c, err = mcpoauth.Register(ctx, a.mcpHTTPClient(m), md, redirect, a.opts.Version)
	if err != nil {
		return c, err
	}
	if err := a.opts.MCPGrants.PutClient(ctx, m.ID, c); err != nil {
		return c, fmt.Errorf("keeping keygate's registration: %w", err)
	}
	return c, nil
}

// mcpHTTPClient reaches the server's authorization endpoints through the
// egress policy; a server registered with allow_private may have them on
// its own (private) host.
func (a *API) mcpHTTPClient(m store.MCPServer) *http.Client {
	host := ""
	if m.AllowPrivate {
		if u, err := url.Parse(m.URL); err == nil {
			host = u.Hostname()
		}
	}
	pol := a.opts.Egress
	if pol.What == "" {
		pol.What = "egress.allow"
	}
	return mcpoauth.HTTPClient(pol, host, 30*time.Second)
}

// mcpCallbackURL is the callback the authorization server sends the
// browser back to: this admin plane, as the browser reached it.
func (a *API) mcpCallbackURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil || a.opts.SignIn.TLS {
		scheme = "https"
	}
	return scheme + "://" + r.Host + adminapi.Prefix + "/auth/mcp/callback"
}

// mcpGrantChanged tells this node at once, and every other node through
// the revocation log (which each follows within a second), that user's
// authorization at server was made again or revoked, so none keeps using
// the grant it holds.
func (a *API) mcpGrantChanged(r *http.Request, server, user string) {
	if a.opts.MCPGrantChanged != nil {
		a.opts.MCPGrantChanged(server, user)
	}
	now := a.opts.Now().UTC()
	rev := store.Revocation{Kind: token.RevokedMCPGrant, Subject: server + "/" + user, At: now, Until: now.Add(MaxTokenTTL)}
	if _, err := a.opts.Store.AddRevocation(r.Context(), rev); err != nil {
		a.opts.Log.Error("an MCP authorization changed but other nodes could not be told at once; they read it again within 30s",
			"mcp_server", server, "user_id", user, "err", err)
	}
}

// auditMCPOAuth records a step of a user's MCP authorization; tokens and
// codes never appear.
func (a *API) auditMCPOAuth(r *http.Request, typ, user, server, decision, reason string) {
	if a.opts.Audit == nil {
		return
	}
	f := map[string]string{"request_id": requestID(r)}
	if server != "" {
		f["mcp_server"] = server
	}
	ev := audit.Event{Type: typ, Actor: user, Client: a.clientOf(r), Resource: "mcp " + server, Decision: decision, Fields: f}
	if reason != "" {
		ev.Reasons = []string{reason}
	}
	if err := a.opts.Audit.Record(ev); err != nil {
		a.opts.Log.Error("could not record an MCP authorization in the audit trail", "err", err)
	}
}
