package gateway

import (
	"net/http"
	"slices"
	"strings"

	"github.com/keygate/keygate/internal/leak"
)

// LeakOptions configure the outbound credential check: every body keygate
// forwards is checked, before anything goes upstream, for values held in
// the vault, keygate's own credentials and other credential formats.
type LeakOptions struct {
	// Action gives the action for a hit; nil means leak.DefaultAction of
	// its kind (block vault values and keygate credentials, alert on the
	// rest).
	Action func(leak.Hit) leak.Action
}

// RuleCredentialLeak names the risk finding a request carrying a
// credential raises, for the detectors (an alert, and a suspension where
// detect's actions say so).
const RuleCredentialLeak = "credential-leak"

// SetLeakMatcher replaces what the outbound check looks for: the vault's
// values change as providers and secrets do. nil checks formats only
// until a matcher is set.
func (g *Gateway) SetLeakMatcher(m *leak.Matcher) { g.leaks.Store(m) }

// checkLeaks is the step that keeps credentials from going upstream in a
// request body: a hit is refused (block), replaced by [REDACTED:rule]
// (redact), or let through (alert); every hit is recorded on the call for
// the audit trail and the detectors. The returned body is what may go on.
func (g *Gateway) checkLeaks(c *call, body []byte) ([]byte, *Denial) {
	if g.opts.Leaks == nil || len(body) == 0 {
		return body, nil
	}
	m := g.leaks.Load()
	if m == nil {
		return body, nil
	}
	hits := m.Check(body)
	if len(hits) == 0 {
		return body, nil
	}
	act := leak.Strictest(hits, g.opts.Leaks.Action)
	c.leakAction, c.leakRules, c.leakValues = string(act), leakRules(hits), leakValues(hits)
	c.riskRules = append(c.riskRules, RuleCredentialLeak)
	switch act {
	case leak.ActionBlock:
		return nil, denyf(http.StatusBadRequest, "credential_in_request",
			"the request body holds a credential (%s); keygate does not send credentials upstream. Remove it, or let keygate inject it: keep it in the vault and reference it",
			describeLeaks(hits))
	case leak.ActionRedact:
		return leak.Redacted(body, hits), nil
	}
	return body, nil
}

// leakRules lists the rules of hits once each, in order.
func leakRules(hits []leak.Hit) string {
	var rules []string
	for _, h := range hits {
		if !slices.Contains(rules, h.Rule) {
			rules = append(rules, h.Rule)
		}
	}
	return strings.Join(rules, ",")
}

// leakValues lists the vault records whose values were found, once each:
// names, never values.
func leakValues(hits []leak.Hit) string {
	var names []string
	for _, h := range hits {
		if h.Name != "" && !slices.Contains(names, h.Name) {
			names = append(names, h.Name)
		}
	}
	return strings.Join(names, ",")
}

// describeLeaks says what was found, for the caller: the rules and kinds,
// never the value or which vault record it is.
func describeLeaks(hits []leak.Hit) string {
	var parts []string
	for _, h := range hits {
		var d string
		switch h.Kind {
		case leak.KindVault:
			d = "a value held in keygate's vault"
		case leak.KindKeygate:
			d = "a keygate credential (rule " + h.Rule + ")"
		default:
			d = "a credential of format " + h.Rule
		}
		if !slices.Contains(parts, d) {
			parts = append(parts, d)
		}
	}
	return strings.Join(parts, "; ")
}
