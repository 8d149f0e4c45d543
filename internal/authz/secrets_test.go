package authz

import (
	"path"
	"strings"
	"testing"
)

// TestAuthorizeSecret: vault secrets are read only by keys whose grant
// names them, and through a token only when its scope names them too.
func TestAuthorizeSecret(t *testing.T) {
	open := Grant{Env: "live"}
	reader := Grant{Env: "live", Secrets: []string{"ci/*", "payments/stripe"}}
	sec := func(name string) Target { return Target{Kind: Secret, Provider: name} }
	for _, tc := range []struct {
		name   string
		p      Principal
		t      Target
		denial string
	}{
		{"a key without secret grants reads none", Principal{Grant: open}, sec("ci/deploy"), "secret_not_allowed"},
		{"granted by pattern", Principal{Grant: reader}, sec("ci/deploy"), ""},
		{"granted by name", Principal{Grant: reader}, sec("payments/stripe"), ""},
		{"a pattern does not cross a slash", Principal{Grant: reader}, sec("ci/prod/deploy"), "secret_not_allowed"},
		{"other secret", Principal{Grant: reader}, sec("payments/adyen"), "secret_not_allowed"},
		{"a model or service grant is no secret grant", Principal{Grant: Grant{Env: "live", Models: []string{"*"}, Services: []string{"ci/deploy"}}}, sec("ci/deploy"), "secret_not_allowed"},
		{"a token must name the secret", Principal{Grant: reader, Token: &Scope{}}, sec("ci/deploy"), "secret_not_allowed"},
		{"a model token reads no secret", Principal{Grant: reader, Token: &Scope{Models: []string{"gpt-4o"}}}, sec("ci/deploy"), "secret_not_allowed"},
		{"a token naming it", Principal{Grant: reader, Token: &Scope{Secrets: []string{"ci/deploy"}}}, sec("ci/deploy"), ""},
		{"a token naming another", Principal{Grant: reader, Token: &Scope{Secrets: []string{"ci/other"}}}, sec("ci/deploy"), "secret_not_allowed"},
		{"a token cannot add one", Principal{Grant: open, Token: &Scope{Secrets: []string{"ci/deploy"}}}, sec("ci/deploy"), "secret_not_allowed"},
		{"environments do not apply", Principal{Grant: Grant{Env: "test", Secrets: []string{"x"}}}, Target{Kind: Secret, Provider: "x"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Authorize(tc.p, tc.t)
			got := ""
			if d != nil {
				got = d.Code
			}
			if got != tc.denial {
				t.Fatalf("Authorize = %q (%v), want %q", got, d, tc.denial)
			}
			if d != nil && strings.Contains(d.Message, tc.t.Provider) {
				t.Fatalf("a refusal repeats the secret's name: %q", d.Message)
			}
		})
	}
	// A token naming a secret reaches no passthrough service: it was made
	// for the secret.
	svcKey := Grant{Env: "live", Services: []string{"github"}, Secrets: []string{"x"}}
	if d := Authorize(Principal{Grant: svcKey, Token: &Scope{Secrets: []string{"x"}}}, Target{Kind: Service, Provider: "github"}); d == nil {
		t.Fatal("a token made for a secret reached a service")
	}
}

func TestWithinSecrets(t *testing.T) {
	g := Grant{Secrets: []string{"ci/*", "payments/stripe"}}
	for _, tc := range []struct {
		name string
		s    []string
		bad  string
	}{
		{"granted literal", []string{"payments/stripe"}, ""},
		{"literal under a pattern", []string{"ci/deploy"}, ""},
		{"same pattern", []string{"ci/*"}, ""},
		{"narrower pattern", []string{"ci/dep*"}, ""},
		{"pattern crossing a slash", []string{"ci/a/*"}, "secret:ci/a/*"},
		{"wider pattern", []string{"c*"}, "secret:c*"},
		{"other literal", []string{"payments/adyen"}, "secret:payments/adyen"},
		{"everything", []string{"*"}, "secret:*"},
		{"a class matching a slash", []string{"ci/a[/]b"}, "secret:ci/a[/]b"},
		{"a class", []string{"ci/[a-z]*"}, "secret:ci/[a-z]*"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Within(g, Scope{Secrets: tc.s})
			if tc.bad == "" {
				if err != nil {
					t.Fatalf("Within refused %v: %v", tc.s, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.bad) {
				t.Fatalf("Within(%v) = %v, want a refusal naming %s", tc.s, err, tc.bad)
			}
		})
	}
	if err := Within(Grant{Models: []string{"*"}}, Scope{Secrets: []string{"x"}}); err == nil || !strings.Contains(err.Error(), "no vault secret") {
		t.Fatalf("a key without secret grants: %v", err)
	}
}

// TestWithinSecretsNeverWidens: whatever secret scope Within accepts, every
// secret it lets a token read is one its key may read too.
func TestWithinSecretsNeverWidens(t *testing.T) {
	grants := [][]string{{"ci/*"}, {"ci/deploy"}, {"a?c"}, {"ci/*", "prod/db"}}
	scopes := []string{"ci/*", "ci/d*", "ci/a/*", "c*", "*", "ci/deploy", "a?c", "a*", "prod/*", "ci/?", "[a-z]*", "ci/a[/]b", "ci/[^x]*"}
	names := []string{"ci/deploy", "ci/a/b", "ci/d", "abc", "axc", "prod/db", "prod/x", "c", "ci", "ci/a/b/c"}
	for _, gs := range grants {
		g := Grant{Secrets: gs}
		for _, sc := range scopes {
			if Within(g, Scope{Secrets: []string{sc}}) != nil {
				continue
			}
			for _, n := range names {
				if ok, _ := path.Match(sc, n); ok && Authorize(Principal{Grant: g}, Target{Kind: Secret, Provider: n}) != nil {
					t.Fatalf("grant %v accepted scope %q, which reads %s that the key may not", gs, sc, n)
				}
			}
		}
	}
}
