package route

import (
	"errors"
	"testing"

	"github.com/keygate/keygate/internal/authz"
)

func table() *Table {
	return NewTable([]*Upstream{
		{Name: "openai", Dialect: "openai", Models: []string{"gpt-*", "o3*", "text-embedding-*"}},
		{Name: "ollama", Dialect: "openai", Models: []string{"llama*"}},
		{Name: "groq", Dialect: "openai", Default: true},
		{Name: "anthropic", Dialect: "anthropic", Models: []string{"claude-*"}},
	})
}

func TestResolve(t *testing.T) {
	tb := table()
	for _, tc := range []struct {
		dialect, model, provider, upstreamModel string
	}{
		{"openai", "openai/gpt-4o-mini", "openai", "gpt-4o-mini"}, // explicit prefix, stripped
		{"openai", "ollama/llama3", "ollama", "llama3"},
		{"openai", "gpt-4o", "openai", "gpt-4o"},                               // pattern
		{"openai", "llama3:8b", "ollama", "llama3:8b"},                         // pattern on another provider
		{"openai", "mixtral-8x7b", "groq", "mixtral-8x7b"},                     // default
		{"openai", "meta-llama/Llama-3-70b", "groq", "meta-llama/Llama-3-70b"}, // slash but not a provider: kept whole
		{"anthropic", "claude-sonnet-4-5", "anthropic", "claude-sonnet-4-5"},   // the only anthropic provider
		{"anthropic", "anthropic/claude-opus-4-1", "anthropic", "claude-opus-4-1"},
		{"anthropic", "some-other-model", "anthropic", "some-other-model"}, // sole provider of its dialect is its default
	} {
		u, m, err := tb.Resolve(tc.dialect, tc.model)
		if err != nil || u.Name != tc.provider || m != tc.upstreamModel {
			t.Errorf("Resolve(%s, %s) = %v, %q, %v; want %s, %q", tc.dialect, tc.model, u, m, err, tc.provider, tc.upstreamModel)
		}
	}
	// The other dialect's providers: by prefix, and by pattern before the
	// dialect's default (the gateway translates).
	for _, tc := range [][3]string{{"anthropic/claude-x", "anthropic", "claude-x"}, {"claude-sonnet-4-5", "anthropic", "claude-sonnet-4-5"}} {
		if u, m, err := tb.Resolve("openai", tc[0]); err != nil || u.Name != tc[1] || m != tc[2] {
			t.Errorf("Resolve(openai, %s) = %v, %q, %v", tc[0], u, m, err)
		}
	}
	if u, _, err := tb.Resolve("anthropic", "gpt-4o"); err != nil || u.Name != "openai" {
		t.Errorf("an Anthropic request for gpt-4o: %v, %v", u, err)
	}
	empty := NewTable([]*Upstream{{Name: "a", Dialect: "openai", Models: []string{"x"}}, {Name: "b", Dialect: "openai"}})
	if _, _, err := empty.Resolve("openai", "y"); !errors.Is(err, ErrNoProvider) {
		t.Fatalf("two providers and no default: want ErrNoProvider, got %v", err)
	}
	if _, _, err := empty.Resolve("anthropic", "claude"); !errors.Is(err, ErrNoProvider) {
		t.Fatalf("no provider of the dialect: want ErrNoProvider, got %v", err)
	}
}

func TestValidPattern(t *testing.T) {
	if ValidPattern("[") || ValidPattern("") || !ValidPattern("gpt-*") {
		t.Fatal("ValidPattern is wrong")
	}
}

// BenchmarkResolveAndAuthorize is the per-request policy decision: route the
// model, then apply the key's provider and model allowances.
func BenchmarkResolveAndAuthorize(b *testing.B) {
	tb := table()
	p := authz.Principal{Grant: authz.Grant{Env: "live", Models: []string{"gpt-4o*", "claude-*"}, Providers: []string{"openai", "anthropic"}}}
	b.ReportAllocs()
	for b.Loop() {
		for _, m := range []string{"gpt-4o-mini", "openai/gpt-4o", "claude-sonnet-4-5"} {
			d := "openai"
			if m[0] == 'c' {
				d = "anthropic"
			}
			u, model, err := tb.Resolve(d, m)
			if err != nil || authz.Authorize(p, authz.Target{Kind: authz.Model, Provider: u.Name, Env: u.Env, Model: model}) != nil {
				b.Fatal("denied", m, err)
			}
		}
	}
}
