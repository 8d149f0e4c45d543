package gateway

import (
	"fmt"
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

// scope applies what a key may do regardless of model: not suspended, this
// API path and method, from an allowed network, within its hours. It
// answers and returns false when the key may not make this call.
func (g *Gateway) scope(w http.ResponseWriter, r *http.Request, key store.Key) bool {
	if key.SuspendedAt != nil {
		g.deny(w, r, http.StatusForbidden, "key_suspended", "this API key is suspended; ask its administrator to resume it")
		return false
	}
	if key.StepUpUntil != nil && g.opts.Now().Before(*key.StepUpUntil) {
		c := callFrom(r.Context())
		if c.tokenScope == nil || !slices.Contains(c.tokenAMR, "otp") {
			c.risk = "step-up"
			g.deny(w, r, http.StatusUnauthorized, "step_up_required",
				"an alert on this API key requires a second factor until "+key.StepUpUntil.UTC().Format(time.RFC3339)+
					": exchange your key with a one-time password for an access token (keygate token issue --totp CODE, "+
					"or POST /oauth/token with totp=CODE) and send that token instead, or ask the key's administrator to resume it")
			return false
		}
	}
	if key.ClientCert != "" {
		c := clientCert(r)
		if c == nil || !certMatches(c, key.ClientCert) {
			g.deny(w, r, http.StatusUnauthorized, "client_certificate_required",
				"this API key may be used only over mutual TLS with its client certificate")
			return false
		}
	}
	if ts := callFrom(r.Context()).tokenScope; ts != nil && len(ts.Paths) > 0 {
		rules, err := policy.ParsePathRules(ts.Paths)
		if err != nil || !policy.PathsAllow(rules, r.Method, r.URL.Path) {
			g.deny(w, r, http.StatusForbidden, "path_not_allowed", fmt.Sprintf("this access token may not call %s %s", r.Method, r.URL.Path))
			return false
		}
	}
	if len(key.AllowPaths) == 0 && len(key.AllowIPs) == 0 && key.Hours == "" {
		return true
	}
	s := g.scopeFor(key)
	if s.err != nil {
		g.opts.Log.Error("a key's scopes cannot be read; refusing its requests until they are fixed", "key_id", key.ID, "err", s.err)
		g.deny(w, r, http.StatusInternalServerError, "scopes_unreadable", "keygate cannot read this API key's scopes; ask its administrator to set them again")
		return false
	}
	if !policy.PathsAllow(s.paths, r.Method, r.URL.Path) {
		g.deny(w, r, http.StatusForbidden, "path_not_allowed", fmt.Sprintf("this API key may not call %s %s", r.Method, r.URL.Path))
		return false
	}
	if len(s.ips) > 0 && !policy.AddrAllowed(s.ips, web.ClientAddr(r, g.opts.TrustedProxies)) {
		g.deny(w, r, http.StatusForbidden, "address_not_allowed", "this API key may not be used from this network address")
		return false
	}
	if !s.hours.IsZero() && !s.hours.Allows(g.opts.Now()) {
		g.deny(w, r, http.StatusForbidden, "outside_allowed_hours", fmt.Sprintf("this API key may be used only %s", s.hours))
		return false
	}
	return true
}
