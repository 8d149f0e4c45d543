package provider

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/keygate/keygate/internal/secret"
)

const testUpstreamKey = "test-upstream-key-123"

func mustLookup(t *testing.T, name string) Dialect {
	t.Helper()
	d, ok := Lookup(name)
	if !ok || d.Name() != name {
		t.Fatalf("Lookup(%q) = %v, %v", name, d, ok)
	}
	return d
}

func TestLookup(t *testing.T) {
	mustLookup(t, "openai")
	mustLookup(t, "anthropic")
	mustLookup(t, "gemini")
	for _, n := range []string{"", "OpenAI", "Gemini", "google"} {
		if d, ok := Lookup(n); ok || d != nil {
			t.Errorf("Lookup(%q) = %v, %v", n, d, ok)
		}
	}
}

func TestUpstreamPath(t *testing.T) {
	tests := []struct {
		dialect, base, client, want string
	}{
		{"openai", "/v1", "/v1/chat/completions", "/v1/chat/completions"},
		{"openai", "/v1/", "/v1/chat/completions", "/v1/chat/completions"},
		{"openai", "/v1//", "/v1/models", "/v1/models"},
		{"openai", "/api/v1", "/v1/chat/completions", "/api/v1/chat/completions"}, // OpenRouter
		{"openai", "/openai/v1", "/v1/embeddings", "/openai/v1/embeddings"},
		{"openai", "", "/v1/chat/completions", "/chat/completions"},
		{"openai", "/", "/v1/responses", "/responses"},
		{"openai", "/v1", "/v1", "/v1"},
		{"openai", "/v1", "/chat/completions", "/v1/chat/completions"},
		{"openai", "/v1", "/v10/x", "/v1/v10/x"},
		{"anthropic", "", "/v1/messages", "/v1/messages"},
		{"anthropic", "/", "/v1/messages", "/v1/messages"},
		{"anthropic", "/anthropic", "/v1/messages/count_tokens", "/anthropic/v1/messages/count_tokens"},
		{"anthropic", "/anthropic/", "/v1/models", "/anthropic/v1/models"},
	}
	for _, tt := range tests {
		if got := mustLookup(t, tt.dialect).UpstreamPath(tt.base, tt.client); got != tt.want {
			t.Errorf("%s UpstreamPath(%q, %q) = %q, want %q", tt.dialect, tt.base, tt.client, got, tt.want)
		}
	}
}

func TestUpstreamURL(t *testing.T) {
	tests := []struct {
		dialect, base, client, want string
	}{
		{"openai", "https://api.openai.com/v1", "/v1/chat/completions", "https://api.openai.com/v1/chat/completions"},
		{"openai", "http://localhost:11434/v1/", "/v1/chat/completions?x=1", "http://localhost:11434/v1/chat/completions?x=1"},
		{"openai", "http://vllm.internal:8000/v1", "/v1/models", "http://vllm.internal:8000/v1/models"},
		{"openai", "https://openrouter.ai/api/v1", "/v1/chat/completions", "https://openrouter.ai/api/v1/chat/completions"},
		{"openai", "https://example.test/openai/v1?api-version=2024-10-21", "/v1/chat/completions?a=b&c=d",
			"https://example.test/openai/v1/chat/completions?api-version=2024-10-21&a=b&c=d"},
		{"openai", "https://example.test/v1?api-version=1", "/v1/models", "https://example.test/v1/models?api-version=1"},
		{"anthropic", "https://api.anthropic.com", "/v1/messages?beta=true", "https://api.anthropic.com/v1/messages?beta=true"},
		{"anthropic", "https://api.anthropic.com/", "/v1/messages", "https://api.anthropic.com/v1/messages"},
	}
	for _, tt := range tests {
		base, _ := url.Parse(tt.base)
		client, _ := url.Parse(tt.client)
		if got := UpstreamURL(mustLookup(t, tt.dialect), base, client).String(); got != tt.want {
			t.Errorf("%s UpstreamURL(%q, %q) = %q, want %q", tt.dialect, tt.base, tt.client, got, tt.want)
		}
	}
}

func TestUpstreamPathAllocs(t *testing.T) {
	d := OpenAI{}
	if n := testing.AllocsPerRun(100, func() { _ = d.UpstreamPath("/v1", "/v1/chat/completions") }); n > 1 {
		t.Errorf("UpstreamPath: %v allocs, want at most 1", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = d.UpstreamPath("", "/v1/chat/completions") }); n != 0 {
		t.Errorf("UpstreamPath with an empty base: %v allocs, want 0", n)
	}
}

func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestClientKey(t *testing.T) {
	tests := []struct {
		name            string
		h               http.Header
		openai, anthrop string // "" means no key
	}{
		{"bearer", header("Authorization", "Bearer kg_test_abc"), "kg_test_abc", "kg_test_abc"},
		{"lowercase bearer", header("Authorization", "bearer kg_test_abc"), "kg_test_abc", "kg_test_abc"},
		{"upper bearer", header("Authorization", "BEARER kg_test_abc"), "kg_test_abc", "kg_test_abc"},
		{"extra spaces", header("Authorization", "  Bearer    kg_test_abc  "), "kg_test_abc", "kg_test_abc"},
		{"tab", header("Authorization", "Bearer\tkg_test_abc"), "kg_test_abc", "kg_test_abc"},
		{"x-api-key", header("X-Api-Key", "kg_test_abc"), "kg_test_abc", "kg_test_abc"},
		{"x-api-key spaces", header("X-Api-Key", " kg_test_abc "), "kg_test_abc", "kg_test_abc"},
		{"both: dialect preference", header("Authorization", "Bearer kg_test_bearer", "X-Api-Key", "kg_test_xkey"), "kg_test_bearer", "kg_test_xkey"},
		{"basic falls back to x-api-key", header("Authorization", "Basic dXNlcjpwYXNz", "X-Api-Key", "kg_test_xkey"), "kg_test_xkey", "kg_test_xkey"},
		{"empty bearer", header("Authorization", "Bearer "), "", ""},
		{"bearer only", header("Authorization", "Bearer"), "", ""},
		{"empty x-api-key", header("X-Api-Key", ""), "", ""},
		{"basic", header("Authorization", "Basic dXNlcjpwYXNz"), "", ""},
		{"bare token", header("Authorization", "kg_test_abc"), "", ""},
		{"inner space", header("Authorization", "Bearer kg_test a"), "", ""},
		{"control char", header("X-Api-Key", "kg_test\x00a"), "", ""},
		{"two authorization headers", header("Authorization", "Bearer kg_test_a", "Authorization", "Bearer kg_test_b"), "", ""},
		{"two x-api-key headers", header("X-Api-Key", "kg_test_a", "X-Api-Key", "kg_test_b"), "", ""},
		{"none", header("Content-Type", "application/json"), "", ""},
	}
	for _, tt := range tests {
		for _, c := range []struct{ d, want string }{{"openai", tt.openai}, {"anthropic", tt.anthrop}} {
			got, ok := mustLookup(t, c.d).ClientKey(tt.h)
			if ok != (c.want != "") || got != c.want {
				t.Errorf("%s: %s ClientKey = %q, %v; want %q", tt.name, c.d, got, ok, c.want)
			}
		}
	}
}

func TestStripCredentials(t *testing.T) {
	for _, name := range []string{"openai", "anthropic"} {
		d := mustLookup(t, name)
		h := header(
			"Authorization", "Bearer kg_test_abc",
			"Proxy-Authorization", "Basic dXNlcjpwYXNz",
			"X-Api-Key", "kg_test_abc",
			"Api-Key", "kg_test_abc",
			"X-Goog-Api-Key", "kg_test_abc",
			"Cookie", "session=test",
			"Content-Type", "application/json",
			"Anthropic-Version", "2023-06-01",
			"Anthropic-Beta", "tools-2024-04-04",
			"OpenAI-Organization", "org-test",
			"OpenAI-Project", "proj-test",
			"User-Agent", "test-client/1.0",
		)
		h["x-api-key"] = []string{"kg_test_noncanonical"} // a map built by hand
		h["authorization"] = []string{"Bearer kg_test_noncanonical"}
		d.StripCredentials(h)
		for k := range h {
			switch http.CanonicalHeaderKey(k) {
			case "Content-Type", "Anthropic-Version", "Anthropic-Beta", "Openai-Organization", "Openai-Project", "User-Agent":
			default:
				t.Errorf("%s: header %q survived StripCredentials", name, k)
			}
		}
		if len(h) != 6 {
			t.Errorf("%s: kept %d headers, want 6: %v", name, len(h), h)
		}
	}
}

func TestInjectAuth(t *testing.T) {
	key := secret.New(testUpstreamKey)

	h := header("Content-Type", "application/json")
	h["authorization"] = []string{"Bearer stale"}
	OpenAI{}.InjectAuth(h, key)
	if got := h.Values("Authorization"); len(got) != 1 || got[0] != "Bearer "+testUpstreamKey || len(h["authorization"]) != 0 {
		t.Errorf("openai Authorization = %q (%v)", got, h)
	}
	if h.Get("X-Api-Key") != "" || h.Get("Anthropic-Version") != "" {
		t.Errorf("openai set anthropic headers: %v", h)
	}

	h = http.Header{}
	Anthropic{}.InjectAuth(h, key)
	if h.Get("X-Api-Key") != testUpstreamKey || h.Get("Anthropic-Version") != AnthropicVersion || h.Get("Authorization") != "" {
		t.Errorf("anthropic headers = %v", h)
	}
	h = header("Anthropic-Version", "2024-01-01")
	Anthropic{}.InjectAuth(h, key)
	if got := h.Values("Anthropic-Version"); len(got) != 1 || got[0] != "2024-01-01" {
		t.Errorf("client's anthropic-version replaced: %q", got)
	}

	h = http.Header{}
	OpenAI{}.InjectAuth(h, secret.String{})
	Anthropic{}.InjectAuth(h, secret.String{})
	if h.Get("Authorization") != "" || h.Get("X-Api-Key") != "" {
		t.Errorf("empty key set a credential: %v", h)
	}
}

func TestDetectListDialect(t *testing.T) {
	tests := []struct {
		h    http.Header
		want string
	}{
		{header("Authorization", "Bearer kg_test_abc"), "openai"},
		{header("X-Api-Key", "kg_test_abc"), "anthropic"},
		{header("X-Api-Key", "kg_test_abc", "Authorization", "Bearer kg_test_abc"), "openai"},
		{header("Authorization", "Bearer kg_test_abc", "Anthropic-Version", "2023-06-01"), "anthropic"},
		{header("Anthropic-Version", "2023-06-01"), "anthropic"},
		{http.Header{}, "openai"},
	}
	for _, tt := range tests {
		if got := DetectListDialect(tt.h).Name(); got != tt.want {
			t.Errorf("DetectListDialect(%v) = %s, want %s", tt.h, got, tt.want)
		}
	}
}
