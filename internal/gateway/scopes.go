package gateway

import (
	"net/http"
	"slices"
	"time"

	"github.com/keygate/keygate/internal/policy"
	"github.com/keygate/keygate/internal/principal"
	"github.com/keygate/keygate/internal/web"
)

// checkScope applies what a key may do regardless of model: not
// suspended, no second factor owed, its client certificate, this API path
// and method, from an allowed network, within its hours. The rules were
// parsed when the key's principal was compiled.
func (g *Gateway) checkScope(r *http.Request, c *call, p *principal.Principal) *Denial {
	now := g.opts.Now()
	if p.Suspended() {
		return deny(http.StatusForbidden, "key_suspended", "this API key is suspended; ask its administrator to resume it")
	}
	if p.StepUpOwed(now) && (c.tokenScope == nil || !slices.Contains(c.tokenAMR, "otp")) {
		c.risk = "step-up"
		return deny(http.StatusUnauthorized, "step_up_required",
			"an alert on this API key requires a second factor until "+p.StepUpUntil.UTC().Format(time.RFC3339)+
				": exchange your key with a one-time password for an access token (keygate token issue --totp CODE, "+
				"or POST /oauth/token with totp=CODE) and send that token instead, or ask the key's administrator to resume it")
	}
	if p.ClientCert != "" {
		if cert := clientCert(r); cert == nil || !certMatches(cert, p.ClientCert) {
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
	s := &p.Scope
	if !s.Restricted {
		return nil
	}
	if s.Err != nil {
		g.opts.Log.Error("a key's scopes cannot be read; refusing its requests until they are fixed", "key_id", p.ID, "err", s.Err)
		return deny(http.StatusInternalServerError, "scopes_unreadable", "keygate cannot read this API key's scopes; ask its administrator to set them again")
	}
	if !policy.PathsAllow(s.Paths, r.Method, r.URL.Path) {
		return denyf(http.StatusForbidden, "path_not_allowed", "this API key may not call %s %s", r.Method, r.URL.Path)
	}
	if len(s.IPs) > 0 && !policy.AddrAllowed(s.IPs, web.ClientAddr(r, g.opts.TrustedProxies)) {
		return deny(http.StatusForbidden, "address_not_allowed", "this API key may not be used from this network address")
	}
	if !s.Hours.IsZero() && !s.Hours.Allows(now) {
		return denyf(http.StatusForbidden, "outside_allowed_hours", "this API key may be used only %s", s.Hours)
	}
	return nil
}
