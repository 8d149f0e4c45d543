package config

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Workloads lets workloads sign in without a keygate key (a CI job, a pod,
// a cloud VM presenting the OIDC identity token its platform gives it, at
// the gateway's /oauth/token) and lets keys read vault secrets at the
// gateway's /secrets endpoint.
type Workloads struct {
	// Trust lists the trust policies, tried in order: the first that the
	// token satisfies decides which token it gets. A token no policy
	// accepts is refused.
	Trust []TrustPolicy `yaml:"trust"`
	// Issuers tunes how a trust policy's issuer is reached, by issuer URL;
	// by default its keys are found through OIDC discovery.
	Issuers map[string]Issuer `yaml:"issuers"`
	// SecretGrants names, per keygate key id, the vault secrets the key
	// may read at /secrets: names, or patterns whose * and ? stop at a
	// slash ("ci/*"). No key reads any secret unless it is listed here,
	// and a token of the key reads only what its scope names besides
	// (secret:NAME items, within the grant).
	SecretGrants map[string][]string `yaml:"secret_grants"`
}

// TrustPolicy says which workload identity tokens are exchanged for
// keygate access tokens, and what those tokens allow.
type TrustPolicy struct {
	// Name names the policy in logs and the audit trail.
	Name string `yaml:"name"`
	// Issuer is the token's iss, exactly: https://token.actions.githubusercontent.com,
	// https://gitlab.com, a cluster's service-account issuer.
	Issuer string `yaml:"issuer"`
	// Audience must be in the token's aud, such as keygate's own URL. Set
	// it on the workload's side too (GitHub: id-token audience;
	// Kubernetes: the projected token's audience).
	Audience string `yaml:"audience"`
	// Subject is a pattern the token's sub must match: * matches any run
	// of characters, ? one; everything else is literal.
	Subject string `yaml:"subject"`
	// Claims are patterns other claims must match, by claim name, or path
	// into nested claims with / between levels (kubernetes.io/namespace).
	// A claim may list several patterns; one must match. A list claim
	// matches when one of its values does.
	Claims map[string]Patterns `yaml:"claims"`
	// Key is the id of the keygate key the tokens stand for (key_...):
	// they have its allowances and limits, narrowed by Scope, never more.
	Key string `yaml:"key"`
	// Scope narrows the tokens, in /oauth/token's scope grammar
	// (model:PATTERN provider:NAME service:NAME secret:NAME rpm:N ...),
	// with ${claim} filled from the token: secret:ci/${repository}.
	Scope string `yaml:"scope"`
}

// Issuer tunes how keygate reads an issuer's signing keys.
type Issuer struct {
	// JWKSURL reads the keys here instead of through discovery, for an
	// issuer whose discovery document keygate cannot read (a cluster's
	// API server without anonymous discovery).
	JWKSURL string `yaml:"jwks_url"`
	// CAFile is a PEM file of the CAs to trust for the issuer's
	// certificate, besides the system's (a cluster's CA).
	CAFile string `yaml:"ca_file"`
}

// Patterns is one pattern or a list of them.
type Patterns []string

// UnmarshalYAML reads a single value or a list.
func (p *Patterns) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*p = Patterns{n.Value}
		return nil
	}
	var l []string
	if err := n.Decode(&l); err != nil {
		return fmt.Errorf("a claim's patterns must be a string or a list of strings")
	}
	*p = l
	return nil
}

// validateWorkloads checks workloads:, naming the field at fault. The
// scope templates' grammar is checked when the server builds the trust
// policies.
func (c Config) validateWorkloads(bad func(field, format string, args ...any)) {
	w := c.Workloads
	names := map[string]bool{}
	issuers := map[string]bool{}
	for i, p := range w.Trust {
		f := fmt.Sprintf("workloads.trust[%d]", i)
		switch {
		case p.Name == "":
			bad(f+".name", "must not be empty")
		case names[p.Name]:
			bad(f+".name", "%q is used twice; each trust policy needs its own name", p.Name)
		}
		names[p.Name] = true
		issuers[p.Issuer] = true
		if msg := httpsURL(p.Issuer); msg != "" {
			bad(f+".issuer", "%s (the exact iss of the tokens, such as https://token.actions.githubusercontent.com)", msg)
		}
		if strings.TrimSpace(p.Audience) == "" {
			bad(f+".audience", "must not be empty: name the audience the workload asks its token for, such as keygate's URL")
		}
		if !strings.HasPrefix(p.Key, "key_") {
			bad(f+".key", "must be a key's id (key_..., as keygate key list shows), not %q: an id cannot be taken by another key", p.Key)
		}
		if !constrains(p) {
			bad(f, "set subject or claims to a pattern other than *: an issuer such as GitHub signs tokens for anyone's workflows, so issuer and audience alone would admit them all")
		}
		for name, ps := range p.Claims {
			if name == "" || len(ps) == 0 {
				bad(f+".claims", "each claim needs a name and at least one pattern")
			}
		}
	}
	for u, is := range w.Issuers {
		f := fmt.Sprintf("workloads.issuers[%q]", u)
		if !issuers[u] {
			bad("workloads.issuers", "%q is no trust policy's issuer", u)
		}
		if is.JWKSURL != "" {
			if msg := httpsURL(is.JWKSURL); msg != "" {
				bad(f+".jwks_url", "%s", msg)
			}
		}
	}
	for id, pats := range w.SecretGrants {
		if !strings.HasPrefix(id, "key_") {
			bad("workloads.secret_grants", "%q must be a key's id (key_..., as keygate key list shows)", id)
		}
		for _, p := range pats {
			if !secretPattern(p) {
				bad(fmt.Sprintf("workloads.secret_grants[%q]", id), "%q is not a secret name or pattern: letters, digits, '.', '_', '-' and '/', with * or ? as wildcards", p)
			}
		}
	}
}

// constrains reports whether a policy restricts its issuer's tokens by
// subject or claims with some pattern that is not a bare *.
func constrains(p TrustPolicy) bool {
	if p.Subject != "" && strings.Trim(p.Subject, "*") != "" {
		return true
	}
	for _, ps := range p.Claims {
		if slices.ContainsFunc(ps, func(s string) bool { return strings.Trim(s, "*") != "" }) {
			return true
		}
	}
	return false
}

// httpsURL says what is wrong with an issuer or key-set URL: it must be
// https://, or http:// on a loopback host (a test, a local provider).
func httpsURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "must be an https:// URL"
	}
	host, _, err := net.SplitHostPort(u.Host)
	if err != nil {
		host = u.Host
	}
	if u.Scheme == "https" || u.Scheme == "http" && IsLoopback(host) {
		return ""
	}
	return "must be an https:// URL"
}

// secretPattern reports whether p names vault secrets: a name's
// characters with * and ? as wildcards (no character classes: path.Match
// lets a class match a slash).
func secretPattern(p string) bool {
	if p == "" || strings.Contains(p, "//") {
		return false
	}
	for _, c := range p {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._-/*?", c)) {
			return false
		}
	}
	return true
}
