package mcpgate

import (
	"slices"
	"strings"

	"github.com/keygate/keygate/internal/leak"
)

// LeakCheck is the gateway's outbound credential check, applied to tool
// calls too: a call's arguments are checked before they reach the server
// (block refuses the call, redact replaces the credential by
// [REDACTED:rule], alert lets it through), and the server's answer before
// it reaches the caller (block and redact both redact there: the call has
// happened; alert lets it through). Every hit is on the call's audit event.
type LeakCheck struct {
	// Matcher returns what to look for now (it changes as the vault
	// does); nil checks nothing.
	Matcher func() *leak.Matcher
	// Action gives a hit's action; nil means leak.DefaultAction.
	Action func(leak.Hit) leak.Action
	// Found, when set, hears of each call a hit was found in (its key,
	// its caller's address, the server), for the detectors: a key whose
	// tool calls carry credentials is alerted on, or suspended, as one
	// whose prompts do.
	Found func(keyID, client, server string)
}

// policy is the action for each hit of a caller's call: its key's own
// leak action when it has one, else the configured policy.
func (lc *LeakCheck) policy(c *caller) func(leak.Hit) leak.Action {
	if c != nil && c.leak != "" {
		a := c.leak
		return func(leak.Hit) leak.Action { return a }
	}
	if lc.Action != nil {
		return lc.Action
	}
	return func(h leak.Hit) leak.Action { return leak.DefaultAction(h.Kind) }
}

// checkArgs checks what a call would send. It returns the arguments to
// send and, for block, the refusal; fields are for the audit event.
func (g *Gate) checkArgs(cl *call) (send []byte, fields map[string]string, refusal error) {
	return g.checkBytes(cl, cl.args)
}

// checkBytes checks b, which a call would send to the server (its
// arguments, or the client's answer to the server's request for input).
func (g *Gate) checkBytes(cl *call, b []byte) (send []byte, fields map[string]string, refusal error) {
	lc := g.opts.Leaks
	if lc == nil || len(b) == 0 {
		return b, nil, nil
	}
	m := lc.Matcher()
	if m == nil {
		return b, nil, nil
	}
	hits := m.Check(b)
	if len(hits) == 0 {
		return b, nil, nil
	}
	act := leak.Strictest(hits, lc.policy(cl.c))
	fields = leakFields("leak_", string(act), hits)
	switch act {
	case leak.ActionBlock:
		return nil, fields, rpcError(CodeForbidden, "credential_in_request",
			"what this call would send to the server holds a credential ("+describe(hits)+"); keygate does not send credentials to tools. Keep it in the vault and let keygate inject it")
	case leak.ActionRedact:
		return leak.Redacted(b, hits), fields, nil
	}
	return b, fields, nil
}

// checkResult checks a server's answer; it returns the answer to pass on
// (redacted where the policy says) and the fields for the audit event.
func (g *Gate) checkResult(cl *call, b []byte) ([]byte, map[string]string) {
	lc := g.opts.Leaks
	if lc == nil {
		return b, nil
	}
	m := lc.Matcher()
	if m == nil {
		return b, nil
	}
	hits := m.Check(b)
	if len(hits) == 0 {
		return b, nil
	}
	var redact []leak.Hit
	policy := lc.policy(cl.c)
	for _, h := range hits {
		if policy(h) != leak.ActionAlert {
			redact = append(redact, h)
		}
	}
	act := leak.ActionAlert
	if len(redact) > 0 {
		act = leak.ActionRedact
		b = leak.Redacted(b, redact)
	}
	return b, leakFields("answer_leak_", string(act), hits)
}

// leakFields describes hits for the audit trail: the action, the rules
// and the vault records' names, never a value.
func leakFields(prefix, action string, hits []leak.Hit) map[string]string {
	var rules, names []string
	for _, h := range hits {
		if !slices.Contains(rules, h.Rule) {
			rules = append(rules, h.Rule)
		}
		if h.Name != "" && !slices.Contains(names, h.Name) {
			names = append(names, h.Name)
		}
	}
	f := map[string]string{prefix + "action": action, prefix + "rules": strings.Join(rules, ",")}
	if len(names) > 0 {
		f[prefix+"values"] = strings.Join(names, ",")
	}
	return f
}

// describe says what was found, for the caller: kinds and rules, never
// the value or which vault record it is.
func describe(hits []leak.Hit) string {
	var parts []string
	for _, h := range hits {
		d := "a credential of format " + h.Rule
		switch h.Kind {
		case leak.KindVault:
			d = "a value held in keygate's vault"
		case leak.KindKeygate:
			d = "a keygate credential"
		}
		if !slices.Contains(parts, d) {
			parts = append(parts, d)
		}
	}
	return strings.Join(parts, "; ")
}

// leakFound tells the detectors of a call a credential was found in.
func (g *Gate) leakFound(cl *call) {
	if lc := g.opts.Leaks; lc != nil && lc.Found != nil {
		lc.Found(cl.c.keyID, cl.c.client, cl.target.Provider)
	}
}
