package mcpgate

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/keygate/keygate/internal/mcpoauth"
	"github.com/keygate/keygate/internal/secret"
)

// OAuth upstreams. A server registered with auth oauth acts for a person:
// each keygate user authorizes keygate there once (the admin plane runs
// that flow, see internal/mcpoauth) and keygate keeps the user's grant
// sealed in the vault. A caller's key belongs to a user (its owner, or the
// user who created it); keygate connects to the server as that user, one
// client session per user, with the user's access token, refreshed shortly
// before it expires, one refresh at a time per user and server. A key of
// no user, or of a user who has not authorized, is refused with a
// JSON-RPC error that says how to authorize. A server registered with
// auth client-credentials acts as keygate: its token comes from the OAuth
// client credentials grant and is refreshed the same way. Either way the
// caller's own keygate credential never goes upstream.

// Grants keeps users' grants at OAuth MCP servers, sealed in the vault;
// internal/gatewaystore implements it.
type Grants interface {
	// Grant returns the user's grant at the server (by registration id),
	// or an error wrapping mcpoauth.ErrNoGrant.
	Grant(ctx context.Context, serverID, userID string) (*mcpoauth.Grant, error)
	// PutGrant replaces the user's grant, after a refresh.
	PutGrant(ctx context.Context, serverID, userID string, g *mcpoauth.Grant) error
}

// refreshSkew is how long before its expiry a token is refreshed, and
// grantTTL how long a grant read from the vault is used before it is
// read again (another node's refresh, the user's re-authorization or
// revocation).
const (
	refreshSkew = time.Minute
	grantTTL    = 30 * time.Second
)

// AuthRequiredError is a call for a server that acts for a person, by a
// caller whose user has not authorized keygate there.
type AuthRequiredError struct {
	Server string
	// NoUser: the caller's key belongs to no user.
	NoUser bool
	// Expired: the authorization ended (refused at refresh).
	Expired bool
}

func (e *AuthRequiredError) Error() string {
	switch {
	case e.NoUser:
		return "MCP server " + e.Server + " acts for a person, and this key acts for no one (a team's shared key, or one made with an admin credential): use your own key, after `keygate mcp auth " + e.Server + "`"
	case e.Expired:
		return "your authorization at MCP server " + e.Server + " has ended (expired or revoked there): run `keygate mcp auth " + e.Server + "` again, then retry"
	}
	return "MCP server " + e.Server + " needs your own authorization: run `keygate mcp auth " + e.Server + "` (it opens the authorization page; sign in to keygate's console in that browser), then retry"
}

// as returns the connection of u that serves caller c: u itself, or for
// an OAuth server the connection of c's user, made on first use.
func (u *upstream) as(c *caller) (*upstream, error) {
	if u.cfg.Auth != "oauth" {
		return u, nil
	}
	if c == nil || c.user == "" {
		return nil, &AuthRequiredError{Server: u.cfg.Name, NoUser: true}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return nil, errUnavailable(u.cfg.Name, errors.New("the server was removed"))
	}
	if cu, ok := u.users[c.user]; ok {
		return cu, nil
	}
	if u.users == nil {
		u.users = map[string]*upstream{}
	}
	cu := &upstream{cfg: u.cfg, g: u.g, user: c.user}
	cu.tokens = &userToken{g: u.g, cfg: &cu.cfg, user: c.user}
	u.users[c.user] = cu
	return cu, nil
}

// authRequired says why the user of this connection has no token now, or
// nil: a call that failed for it is answered with how to authorize.
func (u *upstream) authRequired() *AuthRequiredError {
	if t, ok := u.tokens.(*userToken); ok {
		return t.deniedErr()
	}
	return nil
}

// forget drops the cached grant of user at the server named name, so the
// next call reads it again: after the user authorized again or revoked.
func (g *Gate) forget(name, user string) {
	u := g.upstream(name)
	if u == nil {
		return
	}
	u.mu.Lock()
	cu := u.users[user]
	delete(u.users, user)
	u.mu.Unlock()
	if cu != nil {
		cu.close()
	}
}

// GrantChanged is called after a user authorized keygate at a server, or
// revoked it, on any node (other nodes learn of it from the revocation
// log): this node's connection for the user is closed, so the next call
// uses the new grant, or none. Without it, a grant held is read again
// within 30s.
func (g *Gate) GrantChanged(server, user string) { g.forget(server, user) }

// tokenSource is what puts an OAuth token on a server's requests.
type tokenSource interface {
	token(ctx context.Context) (string, error)
	// renew answers the server's refusal (401) of token rejected: a new
	// token to retry with, or rejected itself when there is none.
	renew(ctx context.Context, rejected string) (string, error)
}

// userToken is one user's access token at one server: read from the
// vault, refreshed before it expires, one refresh at a time.
type userToken struct {
	g    *Gate
	cfg  *ServerConfig
	user string

	mu     sync.Mutex // held across a refresh: single flight per user and server
	grant  *mcpoauth.Grant
	readAt time.Time
	// denied is why the last token was refused to the user, until one is
	// given: the MCP SDK keeps only the text of a transport's error.
	denied *AuthRequiredError
}

// deniedErr returns why the user has no token now, or nil.
func (t *userToken) deniedErr() *AuthRequiredError {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.denied
}

func (t *userToken) token(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tok, err := t.tokenLocked(ctx)
	t.note(err)
	return tok, err
}

// note keeps err when it is a refusal to the user, or clears the last.
func (t *userToken) note(err error) {
	t.denied = nil
	var are *AuthRequiredError
	if errors.As(err, &are) {
		t.denied = are
	}
}

func (t *userToken) tokenLocked(ctx context.Context) (string, error) {
	now := t.g.opts.Now()
	if t.grant == nil || now.Sub(t.readAt) > grantTTL {
		if err := t.read(ctx); err != nil {
			var are *AuthRequiredError
			if t.grant == nil || errors.As(err, &are) {
				return "", err
			}
			// A vault that cannot be read for a moment does not end a
			// grant this node holds.
			t.g.opts.Log.Warn("could not read a user's MCP authorization again; using the one held", "mcp_server", t.cfg.Name, "err", err)
			t.readAt = now
		}
	}
	if t.grant.Expiry.IsZero() || now.Add(refreshSkew).Before(t.grant.Expiry) {
		return t.grant.AccessToken, nil
	}
	if err := t.refresh(ctx); err != nil {
		return "", err
	}
	return t.grant.AccessToken, nil
}

func (t *userToken) renew(ctx context.Context, rejected string) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tok, err := t.renewLocked(ctx, rejected)
	t.note(err)
	return tok, err
}

func (t *userToken) renewLocked(ctx context.Context, rejected string) (string, error) {
	if t.grant == nil {
		return rejected, nil
	}
	if t.grant.AccessToken != rejected {
		return t.grant.AccessToken, nil // renewed meanwhile
	}
	// The user may have authorized again, or another node refreshed.
	if err := t.read(ctx); err != nil {
		return "", err
	}
	if t.grant.AccessToken != rejected {
		return t.grant.AccessToken, nil
	}
	if err := t.refresh(ctx); err != nil {
		return "", err
	}
	return t.grant.AccessToken, nil
}

// read loads the user's grant from the vault.
func (t *userToken) read(ctx context.Context) error {
	if t.g.opts.Grants == nil {
		return &AuthRequiredError{Server: t.cfg.Name}
	}
	gr, err := t.g.opts.Grants.Grant(ctx, t.cfg.ID, t.user)
	if errors.Is(err, mcpoauth.ErrNoGrant) || (err == nil && gr.Server != t.cfg.ID) {
		t.grant = nil
		return &AuthRequiredError{Server: t.cfg.Name}
	}
	if err != nil {
		return errUnavailable(t.cfg.Name, fmt.Errorf("reading the user's authorization: %w", err))
	}
	t.grant, t.readAt = gr, t.g.opts.Now()
	return nil
}

// refresh trades the refresh token for new tokens and keeps them. A
// refusal may mean another node refreshed first (the server rotated the
// refresh token): the vault is read again once before giving up.
func (t *userToken) refresh(ctx context.Context) error {
	if t.grant.RefreshToken == "" {
		return &AuthRequiredError{Server: t.cfg.Name, Expired: true}
	}
	hc := mcpoauth.HTTPClient(t.g.opts.Egress, privateHost(t.cfg), 30*time.Second)
	cctx := context.WithValue(context.WithoutCancel(ctx), oauth2.HTTPClient, hc)
	tok, err := t.grant.Config().TokenSource(cctx, &oauth2.Token{RefreshToken: t.grant.RefreshToken}).Token()
	if err != nil {
		var refused *mcpoauth.RefusedError
		err = mcpoauth.TokenError("refreshing the user's token", err)
		if !errors.As(err, &refused) {
			return errUnavailable(t.cfg.Name, err)
		}
		old := t.grant.RefreshToken
		if rerr := t.read(ctx); rerr != nil {
			return rerr
		}
		if t.grant.RefreshToken != old && (t.grant.Expiry.IsZero() || t.g.opts.Now().Before(t.grant.Expiry)) {
			return nil // another node's refresh
		}
		t.g.opts.Log.Info("an MCP server refused to refresh a user's authorization", "mcp_server", t.cfg.Name, "user", t.user, "err", err)
		return &AuthRequiredError{Server: t.cfg.Name, Expired: true}
	}
	next := *t.grant
	next.SetToken(tok)
	if err := t.g.opts.Grants.PutGrant(ctx, t.cfg.ID, t.user, &next); err != nil {
		// The new tokens work now; a node that restarts before the next
		// refresh needs the user to authorize again.
		t.g.opts.Log.Error("could not keep a refreshed MCP authorization in the vault", "mcp_server", t.cfg.Name, "user", t.user, "err", err)
	}
	t.grant, t.readAt = &next, t.g.opts.Now()
	return nil
}

// clientToken is keygate's own token at a client-credentials server.
type clientToken struct {
	name string
	src  oauth2.TokenSource // reuses its token until shortly before expiry; goroutine safe
}

// renew gives no new token: the source renews by expiry alone.
func (t *clientToken) renew(_ context.Context, rejected string) (string, error) { return rejected, nil }

func (t *clientToken) token(context.Context) (string, error) {
	tok, err := t.src.Token()
	if err != nil {
		return "", errUnavailable(t.name, mcpoauth.TokenError("getting keygate's token (client credentials)", err))
	}
	return tok.AccessToken, nil
}

// clientCredentials builds the token source of a client-credentials
// server, its secret read from the vault.
func (u *upstream) clientCredentials(ctx context.Context) (*clientToken, secret.String, error) {
	c := clientcredentials.Config{ClientID: u.cfg.ClientID, TokenURL: u.cfg.TokenURL, Scopes: u.cfg.Scopes,
		EndpointParams: url.Values{"resource": {u.cfg.URL}}}
	var sec secret.String
	if u.cfg.Secret != "" {
		v, err := u.g.opts.Source.Secret(ctx, u.cfg.Secret)
		if err != nil {
			return nil, sec, errUnavailable(u.cfg.Name, fmt.Errorf("reading its client secret: %w", err))
		}
		c.ClientSecret, sec = v.Reveal(), v
	}
	hc := mcpoauth.HTTPClient(u.g.opts.Egress, privateHost(&u.cfg), 30*time.Second)
	// The source outlives this request: it refreshes for the session.
	return &clientToken{name: u.cfg.Name, src: c.TokenSource(context.WithValue(context.Background(), oauth2.HTTPClient, hc))}, sec, nil
}

// privateHost is the host discovered and token URLs may share with a
// server registered with allow_private.
func privateHost(c *ServerConfig) string {
	if !c.AllowPrivate {
		return ""
	}
	if u, err := url.Parse(c.URL); err == nil {
		return u.Hostname()
	}
	return ""
}

// authError is the JSON-RPC refusal of a call that needs the user's
// authorization first.
func authError(e *AuthRequiredError) error {
	return rpcError(CodeForbidden, "authorization_required", e.Error())
}

// setBearer puts an OAuth access token on an upstream request.
func setBearer(r *http.Request, tok string) { r.Header.Set("Authorization", "Bearer "+tok) }
