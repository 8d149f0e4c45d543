package authz

import (
	"strings"
	"testing"
)

func TestAuthorize(t *testing.T) {
	open := Grant{Env: "live"}
	modelKey := Grant{Env: "live", Models: []string{"gpt-4o*", "ollama/*"}}
	providerKey := Grant{Env: "live", Providers: []string{"openai"}}
	serviceKey := Grant{Env: "live", Services: []string{"github"}}
	prodKey := Grant{Env: "prod", Services: []string{"github"}}
	tok := func(providers, models, services []string) *Scope {
		return &Scope{Providers: providers, Models: models, Services: services}
	}
	model := func(provider, m string) Target { return Target{Kind: Model, Provider: provider, Model: m} }
	dep := func(alias, provider, m string) Target {
		return Target{Kind: Deployment, Provider: provider, Model: m, Alias: alias}
	}
	svc := func(name, env string) Target { return Target{Kind: Service, Provider: name, Env: env} }
	for _, tc := range []struct {
		name   string
		p      Principal
		t      Target
		denial string // "" allowed
	}{
		// Models named directly.
		{"no patterns: any model", Principal{Grant: open}, model("openai", "o3"), ""},
		{"pattern match", Principal{Grant: modelKey}, model("openai", "gpt-4o-mini"), ""},
		{"pattern miss", Principal{Grant: modelKey}, model("openai", "gpt-5"), "model_not_allowed"},
		{"provider-qualified pattern", Principal{Grant: modelKey}, model("ollama", "llama3"), ""},
		{"provider-qualified pattern, other provider", Principal{Grant: modelKey}, model("groq", "llama3"), "model_not_allowed"},
		{"provider list", Principal{Grant: providerKey}, model("openai", "gpt-5"), ""},
		{"provider not listed", Principal{Grant: providerKey}, model("anthropic", "claude-sonnet-4-5"), "provider_not_allowed"},
		{"environment", Principal{Grant: open}, Target{Kind: Model, Provider: "openai", Env: "prod", Model: "gpt-4o"}, "environment_not_allowed"},
		{"environment matches", Principal{Grant: prodKey}, Target{Kind: Model, Provider: "openai", Env: "prod", Model: "gpt-4o"}, ""},
		{"token narrows models", Principal{Grant: open, Token: tok(nil, []string{"gpt-4o-mini"}, nil)}, model("openai", "gpt-4o"), "model_not_allowed"},
		{"token narrows providers", Principal{Grant: open, Token: tok([]string{"anthropic"}, nil, nil)}, model("openai", "gpt-4o"), "provider_not_allowed"},
		{"token within key", Principal{Grant: modelKey, Token: tok(nil, []string{"gpt-4o-mini"}, nil)}, model("openai", "gpt-4o-mini"), ""},
		{"token cannot widen", Principal{Grant: modelKey, Token: tok(nil, []string{"gpt-5"}, nil)}, model("openai", "gpt-5"), "model_not_allowed"},

		// Alias deployments: the alias name or the deployment's model.
		{"alias allowed by name", Principal{Grant: Grant{Env: "live", Models: []string{"fast"}}}, dep("fast", "openai", "gpt-4o-mini"), ""},
		{"alias allowed by deployment model", Principal{Grant: modelKey}, dep("fast", "openai", "gpt-4o-mini"), ""},
		{"alias refused", Principal{Grant: modelKey}, dep("fast", "anthropic", "claude-haiku-4-5"), "model_not_allowed"},
		{"alias provider refused", Principal{Grant: providerKey}, dep("fast", "anthropic", "claude-haiku-4-5"), "provider_not_allowed"},
		{"alias token narrows", Principal{Grant: open, Token: tok(nil, []string{"other"}, nil)}, dep("fast", "openai", "gpt-4o-mini"), "model_not_allowed"},
		{"alias environment", Principal{Grant: open}, Target{Kind: Deployment, Provider: "openai", Env: "prod", Model: "m", Alias: "fast"}, "environment_not_allowed"},

		// Providers as a whole, for listing.
		{"provider listing", Principal{Grant: providerKey}, Target{Kind: Provider, Provider: "openai"}, ""},
		{"provider listing refused", Principal{Grant: providerKey}, Target{Kind: Provider, Provider: "groq"}, "provider_not_allowed"},
		{"provider listing by token", Principal{Grant: open, Token: tok([]string{"groq"}, nil, nil)}, Target{Kind: Provider, Provider: "openai"}, "provider_not_allowed"},

		// Services: deny by default.
		{"service needs naming", Principal{Grant: open}, svc("github", ""), "service_not_allowed"},
		{"model key reaches no service", Principal{Grant: modelKey}, svc("github", ""), "service_not_allowed"},
		{"provider list does not grant a service", Principal{Grant: Grant{Env: "live", Providers: []string{"github"}}}, svc("github", ""), "service_not_allowed"},
		{"named service", Principal{Grant: serviceKey}, svc("github", ""), ""},
		{"other service", Principal{Grant: serviceKey}, svc("stripe", ""), "service_not_allowed"},
		{"service environment", Principal{Grant: serviceKey}, svc("github", "prod"), "environment_not_allowed"},
		{"service environment matches", Principal{Grant: prodKey}, svc("github", "prod"), ""},
		{"token without items inherits services", Principal{Grant: serviceKey, Token: tok(nil, nil, nil)}, svc("github", ""), ""},
		{"token naming the service", Principal{Grant: serviceKey, Token: tok(nil, nil, []string{"github"})}, svc("github", ""), ""},
		{"token for a model reaches no service", Principal{Grant: serviceKey, Token: tok(nil, []string{"gpt-4o-mini"}, nil)}, svc("github", ""), "service_not_allowed"},
		{"token for a provider reaches no service", Principal{Grant: serviceKey, Token: tok([]string{"openai"}, nil, nil)}, svc("github", ""), "service_not_allowed"},
		{"token naming another service", Principal{Grant: serviceKey, Token: tok(nil, nil, []string{"stripe"})}, svc("github", ""), "service_not_allowed"},
		{"token cannot add a service", Principal{Grant: open, Token: tok(nil, nil, []string{"github"})}, svc("github", ""), "service_not_allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Authorize(tc.p, tc.t)
			got := ""
			if d != nil {
				got = d.Code
				if d.Message == "" || d.Error() != d.Message {
					t.Fatalf("denial without a message: %+v", d)
				}
			}
			if got != tc.denial {
				t.Fatalf("Authorize = %q (%v), want %q", got, d, tc.denial)
			}
			if d != nil && tc.p.Token != nil && strings.Contains(d.Message, "API key") && Authorize(Principal{Grant: tc.p.Grant}, tc.t) == nil {
				t.Fatalf("a refusal by the token blames the key: %q", d.Message)
			}
		})
	}
}

func TestWithin(t *testing.T) {
	g := Grant{Env: "live", Providers: []string{"openai"}, Models: []string{"gpt-4o-mini", "o3*", "openai/gpt-5"}, Services: []string{"github"}}
	for _, tc := range []struct {
		name string
		s    Scope
		bad  string // the item named in the refusal; "" allowed
	}{
		{"empty scope", Scope{}, ""},
		{"same model", Scope{Models: []string{"gpt-4o-mini"}}, ""},
		{"wider model", Scope{Models: []string{"gpt-4o"}}, "model:gpt-4o"},
		{"wider pattern", Scope{Models: []string{"gpt-4o*"}}, "model:gpt-4o*"},
		{"narrower pattern", Scope{Models: []string{"o3-mini*"}}, ""},
		{"literal under a pattern", Scope{Models: []string{"o3-pro"}}, ""},
		{"everything", Scope{Models: []string{"*"}}, "model:*"},
		{"qualified literal", Scope{Models: []string{"openai/gpt-5"}}, ""},
		{"qualified literal of a bare grant", Scope{Models: []string{"openai/gpt-4o-mini"}}, ""},
		{"qualified other provider", Scope{Models: []string{"groq/gpt-4o-mini"}}, ""}, // a bare grant matches any provider's model; the provider list still refuses groq at use
		{"question mark", Scope{Models: []string{"o3?"}}, ""},
		{"bracket beyond the grant", Scope{Models: []string{"gpt-4o-mini[x]"}}, "model:gpt-4o-mini[x]"},
		{"same provider", Scope{Providers: []string{"openai"}}, ""},
		{"other provider", Scope{Providers: []string{"anthropic"}}, "provider:anthropic"},
		{"granted service", Scope{Services: []string{"github"}}, ""},
		{"other service", Scope{Services: []string{"stripe"}}, "service:stripe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Within(g, tc.s)
			if tc.bad == "" {
				if err != nil {
					t.Fatalf("Within refused %+v: %v", tc.s, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.bad) {
				t.Fatalf("Within(%+v) = %v, want a refusal naming %s", tc.s, err, tc.bad)
			}
		})
	}
	// A grant without patterns allows every model scope, but still no
	// service it does not name.
	if err := Within(Grant{}, Scope{Models: []string{"*"}, Providers: []string{"x"}}); err != nil {
		t.Fatalf("an unrestricted key: %v", err)
	}
	if err := Within(Grant{}, Scope{Services: []string{"github"}}); err == nil || !strings.Contains(err.Error(), "no passthrough service") {
		t.Fatalf("a key with no services: %v", err)
	}
}

// TestWithinNeverWidens: whatever scope Within accepts, every model it
// lets a token use is one its key may use too.
func TestWithinNeverWidens(t *testing.T) {
	grants := [][]string{{"gpt-4o-mini"}, {"o3*"}, {"gpt-4o*", "claude-*"}, {"openai/gpt-5"}, {"a?c"}}
	scopes := []string{"gpt-4o-mini", "gpt-4o", "gpt-4o*", "o3", "o3*", "o3-pro*", "o*", "*", "claude-haiku-4-5", "openai/gpt-5", "openai/*", "abc", "a?c", "a*c", "?", "[a-z]*"}
	models := []string{"gpt-4o-mini", "gpt-4o", "gpt-4o-2024-05-13", "o3", "o3-pro", "o4-mini", "claude-haiku-4-5", "gpt-5", "abc", "axc", "a", "z"}
	for _, gm := range grants {
		g := Grant{Models: gm}
		for _, sm := range scopes {
			if Within(g, Scope{Models: []string{sm}}) != nil {
				continue
			}
			for _, m := range models {
				for _, provider := range []string{"openai", "groq"} {
					byToken := modelAllowed([]string{sm}, provider, m)
					if byToken && Authorize(Principal{Grant: g}, Target{Kind: Model, Provider: provider, Model: m}) != nil {
						t.Fatalf("grant %v accepted scope %q, which allows %s/%s that the key does not", gm, sm, provider, m)
					}
				}
			}
		}
	}
}

// BenchmarkAuthorize is the per-request decision for a scoped key with a
// narrowed token: it must not allocate when it allows.
func BenchmarkAuthorize(b *testing.B) {
	p := Principal{Grant: Grant{Env: "live", Providers: []string{"openai", "anthropic"}, Models: []string{"gpt-4o*", "claude-*"}},
		Token: &Scope{Models: []string{"gpt-4o-mini"}}}
	t := Target{Kind: Model, Provider: "openai", Model: "gpt-4o-mini"}
	b.ReportAllocs()
	for b.Loop() {
		if Authorize(p, t) != nil {
			b.Fatal("refused")
		}
	}
}
