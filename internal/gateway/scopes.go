package gateway

import (
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/keygate/keygate/internal/policy"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/web"
)

// keyScope is a key's parsed path rules, networks and time windows, built
// once per change of them.
type keyScope struct {
	rawPaths, rawIPs []string
	rawHours         string
	paths            []policy.PathRule
	ips              []netip.Prefix
	hours            policy.Windows
	err              error
}

// scopes caches the parsed scopes of every key seen, by key id.
type scopes struct {
	mu sync.RWMutex
	m  map[string]*keyScope
}

func (g *Gateway) scopeFor(key store.Key) *keyScope {
	g.scopes.mu.RLock()
	s := g.scopes.m[key.ID]
	g.scopes.mu.RUnlock()
	if s != nil && slices.Equal(s.rawPaths, key.AllowPaths) && slices.Equal(s.rawIPs, key.AllowIPs) && s.rawHours == key.Hours {
		return s
	}
	s = &keyScope{rawPaths: key.AllowPaths, rawIPs: key.AllowIPs, rawHours: key.Hours}
	var err error
	if s.paths, err = policy.ParsePathRules(key.AllowPaths); err != nil {
		s.err = err
	} else if s.ips, err = policy.ParseCIDRs(key.AllowIPs); err != nil {
		s.err = err
	} else if key.Hours != "" {
		s.hours, s.err = policy.ParseWindows(key.Hours)
	}
	g.scopes.mu.Lock()
	if g.scopes.m == nil {
		g.scopes.m = map[string]*keyScope{}
	}
	g.scopes.m[key.ID] = s
	g.scopes.mu.Unlock()
	return s
}

// checkScope applies what a key may do regardless of model: not
// suspended, no second factor owed, its client certificate, this API path
// and method, from an allowed network, within its hours.
func (g *Gateway) checkScope(r *http.Request, c *call, key store.Key) *Denial {
	if key.SuspendedAt != nil {
		return deny(http.StatusForbidden, "key_suspended", "this API key is suspended; ask its administrator to resume it")
	}
	if key.StepUpUntil != nil && g.opts.Now().Before(*key.StepUpUntil) {
		if c.tokenScope == nil || !slices.Contains(c.tokenAMR, "otp") {
			c.risk = "step-up"
			return deny(http.StatusUnauthorized, "step_up_required",
				"an alert on this API key requires a second factor until "+key.StepUpUntil.UTC().Format(time.RFC3339)+
					": exchange your key with a one-time password for an access token (keygate token issue --totp CODE, "+
					"or POST /oauth/token with totp=CODE) and send that token instead, or ask the key's administrator to resume it")
		}
	}
	if key.ClientCert != "" {
		if cert := clientCert(r); cert == nil || !certMatches(cert, key.ClientCert) {
			return deny(http.StatusUnauthorized, "client_certificate_required",
				"this API key may be used only over mutual TLS with its client certificate")
		}
	}
	if ts := c.tokenScope; ts != nil && len(ts.Paths) > 0 {
		rules, err := policy.ParsePathRules(ts.Paths)
		if err != nil || !policy.PathsAllow(rules, r.Method, r.URL.Path) {
			return denyf(http.StatusForbidden, "path_not_allowed", "this access token may not call %s %s", r.Method, r.URL.Path)
		}
	}
	if len(key.AllowPaths) == 0 && len(key.AllowIPs) == 0 && key.Hours == "" {
		return nil
	}
	s := g.scopeFor(key)
	if s.err != nil {
		g.opts.Log.Error("a key's scopes cannot be read; refusing its requests until they are fixed", "key_id", key.ID, "err", s.err)
		return deny(http.StatusInternalServerError, "scopes_unreadable", "keygate cannot read this API key's scopes; ask its administrator to set them again")
	}
	if !policy.PathsAllow(s.paths, r.Method, r.URL.Path) {
		return denyf(http.StatusForbidden, "path_not_allowed", "this API key may not call %s %s", r.Method, r.URL.Path)
	}
	if len(s.ips) > 0 && !policy.AddrAllowed(s.ips, web.ClientAddr(r, g.opts.TrustedProxies)) {
		return deny(http.StatusForbidden, "address_not_allowed", "this API key may not be used from this network address")
	}
	if !s.hours.IsZero() && !s.hours.Allows(g.opts.Now()) {
		return denyf(http.StatusForbidden, "outside_allowed_hours", "this API key may be used only %s", s.hours)
	}
	return nil
}
