// Package sources reads secrets from where teams already keep them (AWS
// Secrets Manager, Azure Key Vault, Google Secret Manager, HashiCorp Vault
// or OpenBao KV v2) with each service's official SDK and keygate's own
// cloud identity. It backs two features: imports, which copy secrets into
// keygate's vault once, and references, which keep a provider key or a
// secret in its source and let keygate follow it: read on a schedule and
// on demand, sealed in the vault as a cache, served for a bounded grace
// when the source cannot be read, and never served unverified.
package sources

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Schemes a reference may use.
const (
	SchemeAWS   = "awssm" // awssm://NAME[#field]
	SchemeAzure = "azkv"  // azkv://VAULT/NAME[#field]
	SchemeGCP   = "gcpsm" // gcpsm://PROJECT/NAME[#field]
	SchemeVault = "vault" // vault://MOUNT/PATH#field
)

// Ref points at one secret in a source. Field, when set, selects one key of
// a JSON object (AWS, Azure, Google) or of a KV v2 secret's data (Vault).
type Ref struct {
	Scheme  string
	Vault   string // azkv: the key vault's name (NAME.vault.azure.net)
	Project string // gcpsm: the Google Cloud project
	Mount   string // vault: the KV v2 mount
	Name    string // the secret's name (awssm, azkv, gcpsm) or path under the mount (vault)
	Field   string
}

var (
	awsName   = regexp.MustCompile(`^[A-Za-z0-9/_+=.@:-]+$`)
	azName    = regexp.MustCompile(`^[0-9A-Za-z-]{1,127}$`)
	azVault   = regexp.MustCompile(`^[0-9A-Za-z-]{3,24}$`)
	gcpName   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)
	gcpProj   = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{3,61}[a-z0-9]$|^[0-9]+$`)
	vaultPart = regexp.MustCompile(`^[A-Za-z0-9._/-]+$`)
	fieldName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)
)

// refForms is the reminder every parse error ends with.
const refForms = "use awssm://NAME, azkv://VAULT/NAME, gcpsm://PROJECT/NAME or vault://MOUNT/PATH#FIELD"

// ParseRef parses a reference such as awssm://prod/openai or
// vault://kv/team/openai#api_key. Errors name what is wrong and the forms
// accepted; a reference holds no secret, so it may be echoed.
func ParseRef(s string) (Ref, error) {
	s = strings.TrimSpace(s)
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || rest == "" {
		return Ref{}, fmt.Errorf("reference %q is not a URL; %s", s, refForms)
	}
	rest, field, hasField := strings.Cut(rest, "#")
	if hasField && !fieldName.MatchString(field) {
		return Ref{}, fmt.Errorf("reference %q: the #field must be 1-128 letters, digits, '.', '_' or '-'", s)
	}
	r := Ref{Scheme: scheme, Field: field}
	if strings.ContainsAny(rest, "?%") {
		return Ref{}, fmt.Errorf("reference %q must not carry a query or escapes; %s", s, refForms)
	}
	first, tail, _ := strings.Cut(rest, "/")
	switch scheme {
	case SchemeAWS:
		r.Name = rest
		if len(r.Name) > 2048 || !awsName.MatchString(r.Name) {
			return Ref{}, fmt.Errorf("reference %q: an AWS Secrets Manager name or ARN holds letters, digits and /_+=.@:- only", s)
		}
	case SchemeAzure:
		r.Vault, r.Name = first, tail
		if !azVault.MatchString(r.Vault) || !azName.MatchString(r.Name) {
			return Ref{}, fmt.Errorf("reference %q: write azkv://VAULT/NAME with the key vault's name (3-24 letters, digits, '-') and the secret's name (letters, digits, '-')", s)
		}
	case SchemeGCP:
		r.Project, r.Name = first, tail
		if !gcpProj.MatchString(r.Project) || !gcpName.MatchString(r.Name) {
			return Ref{}, fmt.Errorf("reference %q: write gcpsm://PROJECT/NAME with the project id and the secret's name (letters, digits, '_', '-')", s)
		}
	case SchemeVault:
		r.Mount, r.Name = first, strings.Trim(tail, "/")
		if r.Mount == "" || r.Name == "" || !vaultPart.MatchString(r.Mount) || len(rest) > 1024 || !vaultPart.MatchString(r.Name) || strings.Contains(r.Name, "..") {
			return Ref{}, fmt.Errorf("reference %q: write vault://MOUNT/PATH#FIELD, as in vault://kv/team/openai#api_key", s)
		}
	default:
		return Ref{}, fmt.Errorf("reference %q: scheme %q is not known; %s", s, scheme, refForms)
	}
	return r, nil
}

// String returns the reference in the form ParseRef reads.
func (r Ref) String() string {
	var s string
	switch r.Scheme {
	case SchemeAWS:
		s = "awssm://" + r.Name
	case SchemeAzure:
		s = "azkv://" + r.Vault + "/" + r.Name
	case SchemeGCP:
		s = "gcpsm://" + r.Project + "/" + r.Name
	case SchemeVault:
		s = "vault://" + r.Mount + "/" + r.Name
	}
	if r.Field != "" {
		s += "#" + r.Field
	}
	return s
}

// redactURL drops anything but scheme, host and path from u, for errors.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparseable URL)"
	}
	return p.Scheme + "://" + p.Host + p.Path
}
