// Package authz answers the data plane's one authorization question: may
// this principal reach this upstream target? Every kind of target asks it
// here (a provider's model named directly, a deployment of a model alias,
// a passthrough service, and in time an MCP tool), and token exchange asks
// the companion question here too: is a requested scope inside what the
// key allows? Keeping both in one place is the point: a hole once lived in
// the gaps between four copies of these rules.
//
// The rules, in full:
//   - A key's environment must match the upstream's, when the upstream is
//     tied to one.
//   - Models and providers are allowed by default: a key with no model
//     patterns may use any model, one with no provider names any provider.
//   - Passthrough services are denied by default: a key reaches a service
//     only when its service list names it. A service's credential is often
//     far more powerful than a model key (a GitHub or Stripe token), so a
//     key made for models must never reach one by accident.
//   - An access token can only take allowances away. Each kind of item in
//     its scope narrows the key's: provider items its providers, model
//     items its models. Service items narrow its services; and a token
//     whose scope names any provider, model or service but no service
//     reaches no service at all, so a token minted for one model cannot
//     drive the key's services.
//   - A model alias's deployment is reachable when its provider and
//     environment are, and either the alias name or the deployment's own
//     model passes the model patterns of both key and token.
//   - Vault secrets (read at the gateway's /secrets endpoint) are denied
//     by default, like services, and more strictly: a key reads a secret
//     only when its grant names it (a name or a path.Match pattern, whose
//   - stops at a slash), and an access token only when its own scope
//     names it as well, whatever else the scope says. A token minted for
//     models never reads a secret, and one minted for a secret reaches no
//     service.
package authz

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// Grant is what a keygate key allows.
type Grant struct {
	Env       string   // the key's environment ("live", "test"...)
	Providers []string // provider names; empty means any provider
	Models    []string // model patterns; empty means any model
	Services  []string // passthrough service names; empty means none
	Secrets   []string // vault secret names or patterns; empty means none
	Tools     []string // MCP tool patterns server/tool, !pattern denies; empty means none
}

// Scope is what an access token narrows its key's grant to. An empty list
// narrows nothing of its kind, except as the package doc says for services.
type Scope struct {
	Providers []string
	Models    []string
	Services  []string
	Secrets   []string // the secrets the token reads; empty reads none
	Tools     []string // MCP tool patterns, !pattern denies (tools.go)
}

// narrowsAllowances reports whether the scope names any provider, model or
// service: a token so narrowed reaches only the services it names.
func (s *Scope) narrowsAllowances() bool {
	return len(s.Providers)+len(s.Models)+len(s.Services)+len(s.Secrets)+len(s.Tools) > 0
}

// Principal is who asks: a key's grant and, when an access token
// authenticated the request, the token's scope.
type Principal struct {
	Grant
	Token *Scope // nil when the key itself authenticated
}

// Kind is what kind of upstream a Target is.
type Kind uint8

const (
	// Model is a provider's model, named directly or by prefix.
	Model Kind = iota + 1
	// Deployment is one deployment of a model alias.
	Deployment
	// Service is a passthrough service (/proxy/{service}/).
	Service
	// Provider is a provider as a whole, before any model is named: may
	// the principal reach some of its models (to list them)?
	Provider
	// Secret is a vault secret read at the gateway's /secrets endpoint;
	// Target.Provider holds its name.
	Secret
	// Tool is an MCP server's tool (or its resources or prompts, tools.go);
	// Target.Provider holds the server's name and Target.Model the tool's.
	Tool
)

// Target is an upstream a request would reach.
type Target struct {
	Kind     Kind
	Provider string // the provider's name, the service's or the secret's
	Env      string // the environment the upstream serves; "" serves every one
	Model    string // the model as the provider names it (Model, Deployment)
	Alias    string // the alias the client named (Deployment)
}

// Denial is a refused authorization: the code the gateway reports (and the
// audit trail records) and a message for the caller. Every denial is a 403.
type Denial struct {
	Code    string // environment_not_allowed, provider_not_allowed, model_not_allowed, service_not_allowed, secret_not_allowed
	Message string
}

// Error implements error.
func (d *Denial) Error() string { return d.Message }

// Authorize reports whether p may reach t, or why not. It allocates only
// when it refuses.
func Authorize(p Principal, t Target) *Denial {
	if t.Kind == Secret {
		return authorizeSecret(p, t.Provider)
	}
	if t.Kind == Tool {
		return authorizeTool(p, t.Provider, t.Model)
	}
	if t.Env != "" && p.Env != t.Env {
		what := "provider"
		if t.Kind == Service {
			what = "service"
		}
		return &Denial{"environment_not_allowed", fmt.Sprintf("%s %q serves the %s environment; this is a %s key", what, t.Provider, t.Env, p.Env)}
	}
	if t.Kind == Service {
		if !slices.Contains(p.Services, t.Provider) {
			return &Denial{"service_not_allowed", fmt.Sprintf(
				"this API key may not use service %q: services are reachable only by keys that name them (keygate key create --allow-service %s, or keygate key update --allow-service)", t.Provider, t.Provider)}
		}
		if tok := p.Token; tok != nil && tok.narrowsAllowances() && !slices.Contains(tok.Services, t.Provider) {
			return &Denial{"service_not_allowed", fmt.Sprintf("this access token may not use service %q; ask for service:%s in its scope", t.Provider, t.Provider)}
		}
		return nil
	}
	if !providerAllowed(p.Providers, t.Provider) {
		return &Denial{"provider_not_allowed", fmt.Sprintf("this API key may not use provider %q", t.Provider)}
	}
	if tok := p.Token; tok != nil && !providerAllowed(tok.Providers, t.Provider) {
		return &Denial{"provider_not_allowed", fmt.Sprintf("this access token may not use provider %q", t.Provider)}
	}
	if t.Kind == Provider {
		return nil
	}
	name := t.Model
	if t.Kind == Deployment {
		// Both the key and the token must allow the alias, or both the
		// deployment's own model.
		if modelAllowed(p.Models, "", t.Alias) && (p.Token == nil || modelAllowed(p.Token.Models, "", t.Alias)) {
			return nil
		}
		if modelAllowed(p.Models, t.Provider, t.Model) && (p.Token == nil || modelAllowed(p.Token.Models, t.Provider, t.Model)) {
			return nil
		}
		if !modelAllowed(p.Models, t.Provider, t.Model) && !modelAllowed(p.Models, "", t.Alias) {
			return &Denial{"model_not_allowed", fmt.Sprintf("this API key may not use model %q", name)}
		}
		return &Denial{"model_not_allowed", fmt.Sprintf("this access token may not use model %q", name)}
	}
	if !modelAllowed(p.Models, t.Provider, t.Model) {
		return &Denial{"model_not_allowed", fmt.Sprintf("this API key may not use model %q", name)}
	}
	if tok := p.Token; tok != nil && !modelAllowed(tok.Models, t.Provider, t.Model) {
		return &Denial{"model_not_allowed", fmt.Sprintf("this access token may not use model %q", name)}
	}
	return nil
}

// providerAllowed reports whether a provider list permits a provider; an
// empty list permits every one.
func providerAllowed(allowed []string, provider string) bool {
	return len(allowed) == 0 || slices.Contains(allowed, provider)
}

// modelAllowed reports whether model patterns permit a model, written
// bare or with its provider prefix ("openai/gpt-4o"). No patterns permit
// every model.
func modelAllowed(patterns []string, provider, model string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if ok, _ := path.Match(p, model); ok {
			return true
		}
		if provider != "" && strings.Contains(p, "/") {
			if ok, _ := path.Match(p, provider+"/"+model); ok {
				return true
			}
		}
	}
	return false
}

// ValidPattern reports whether p is a model pattern Authorize can apply:
// * and ? wildcards and [ ] classes, as path.Match reads them.
func ValidPattern(p string) bool {
	_, err := path.Match(p, "")
	return p != "" && err == nil
}

// Within reports whether a requested token scope stays inside a key's
// grant, or names the first item that reaches beyond it. Token exchange
// refuses such a request (RFC 8693 invalid_scope) rather than mint a token
// whose claims say more than the key allows. Model patterns are compared
// conservatively: a requested pattern is inside the grant when a granted
// pattern is the same, or a trailing-* pattern whose literal start the
// requested one extends ("gpt-4o-mini*" inside "gpt-4o*"); a literal model
// when the grant's patterns match it.
func Within(g Grant, s Scope) error {
	for _, p := range s.Providers {
		if !providerAllowed(g.Providers, p) {
			return fmt.Errorf("scope item provider:%s is not within this key's providers (%s)", p, strings.Join(g.Providers, ", "))
		}
	}
	for _, m := range s.Models {
		if !patternWithin(g.Models, m) {
			return fmt.Errorf("scope item model:%s is not within this key's models (%s)", m, strings.Join(g.Models, ", "))
		}
	}
	for _, svc := range s.Services {
		if !slices.Contains(g.Services, svc) {
			if len(g.Services) == 0 {
				return fmt.Errorf("scope item service:%s: this key may use no passthrough service", svc)
			}
			return fmt.Errorf("scope item service:%s is not within this key's services (%s)", svc, strings.Join(g.Services, ", "))
		}
	}
	if err := toolsWithin(g.Tools, s.Tools); err != nil {
		return err
	}
	for _, sec := range s.Secrets {
		if len(g.Secrets) == 0 {
			return fmt.Errorf("scope item secret:%s: this key may read no vault secret (secrets are granted to keys by workloads.secret_grants in keygate's configuration)", sec)
		}
		if !secretPatternWithin(g.Secrets, sec) {
			return fmt.Errorf("scope item secret:%s is not within this key's secrets (%s)", sec, strings.Join(g.Secrets, ", "))
		}
	}
	return nil
}

// patternWithin reports whether every model the pattern req matches is
// matched by granted (no granted patterns match everything).
func patternWithin(granted []string, req string) bool {
	if len(granted) == 0 {
		return true
	}
	if !hasWildcard(req) {
		if provider, model, ok := strings.Cut(req, "/"); ok && modelAllowed(granted, provider, model) {
			return true
		}
		return modelAllowed(granted, "", req)
	}
	for _, k := range granted {
		if k == req || k == "*" {
			return true
		}
		stem, ok := strings.CutSuffix(k, "*")
		if ok && !hasWildcard(stem) && strings.HasPrefix(req, stem) {
			return true
		}
	}
	return false
}

func hasWildcard(p string) bool { return strings.ContainsAny(p, `*?[\`) }

// authorizeSecret decides a read of the vault secret name. Its messages
// never repeat the name: a caller that may not read a secret learns
// nothing of it.
func authorizeSecret(p Principal, name string) *Denial {
	if !secretAllowed(p.Secrets, name) {
		return &Denial{"secret_not_allowed", "this API key may not read that secret: keys read only the secrets keygate's configuration grants them (workloads.secret_grants)"}
	}
	if p.Token != nil && !secretAllowed(p.Token.Secrets, name) {
		return &Denial{"secret_not_allowed", "this access token may not read that secret; ask for secret:NAME in its scope"}
	}
	return nil
}

// secretAllowed reports whether secret patterns permit a secret name; no
// patterns permit none.
func secretAllowed(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// secretPatternWithin reports whether every secret the pattern req
// matches is matched by granted: a literal that a granted pattern
// matches, the same pattern, or one that extends the literal start of a
// granted trailing-* pattern without crossing a slash ("ci/dep*" inside
// "ci/*", but not "ci/a/*", which path.Match reads as another level). A
// character class is never inside a wider pattern: path.Match lets one
// match a slash.
func secretPatternWithin(granted []string, req string) bool {
	if !hasWildcard(req) {
		return secretAllowed(granted, req)
	}
	for _, g := range granted {
		if g == req {
			return true
		}
		if strings.ContainsAny(req, `[\`) {
			continue
		}
		stem, ok := strings.CutSuffix(g, "*")
		if ok && !hasWildcard(stem) && strings.HasPrefix(req, stem) && !strings.Contains(req[len(stem):], "/") {
			return true
		}
	}
	return false
}
