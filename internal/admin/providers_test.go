package admin_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/store"
)

// TestProviderValidation: each bad registration is a 400 whose message
// names the offending field, and none of them stores anything.
func TestProviderValidation(t *testing.T) {
	h := newHarness(t)
	const good = "https://api.example.test/v1"
	const key = "sk-test-validation"
	for _, tc := range []struct {
		name, body, field string
	}{
		{"upper-case name", providerBody("OpenAI", good, key, ""), "name"},
		{"name with a space", providerBody("my provider", good, key, ""), "name"},
		{"empty name", providerBody("", good, key, ""), "name"},
		{"name with a slash", providerBody("a/b", good, key, ""), "name"},
		{"name starting with a dash", providerBody("-x", good, key, ""), "name"},
		{"unknown dialect", providerBody("gem", good, key, `"dialect":"google"`), "dialect"},
		{"gemini base_url with the API version", providerBody("gem", "https://generativelanguage.googleapis.com/v1beta", key, `"dialect":"gemini"`), "host only"},
		{"ftp base_url", providerBody("x", "ftp://files.example.test/v1", key, ""), "base_url"},
		{"base_url without a scheme", providerBody("x", "api.example.test/v1", key, ""), "base_url"},
		{"base_url with user and password", providerBody("x", "https://user:pass@api.example.test/v1", key, ""), "base_url"},
		{"base_url with a query", providerBody("x", "https://api.example.test/v1?api-version=1", key, ""), "base_url"},
		{"base_url with a fragment", providerBody("x", "https://api.example.test/v1#frag", key, ""), "base_url"},
		{"base_url without a host", providerBody("x", "https:///v1", key, ""), "base_url"},
		{"empty base_url", providerBody("x", "", key, ""), "base_url"},
		{"invalid model pattern", providerBody("x", good, key, `"models":["gpt-*","["]`), "models"},
		{"missing api_key", `{"name":"x","base_url":"` + good + `"}`, "api_key"},
		{"blank api_key", providerBody("x", good, "   ", ""), "api_key"},
		{"unknown field", `{"name":"x","base_url":"` + good + `","apikey":"sk-test-typo"}`, "apikey"},
		{"wrong type", `{"name":"x","base_url":"` + good + `","api_key":"k","models":"gpt-*"}`, "models"},
		{"not JSON", `{"name":openai}`, "JSON"},
		{"empty body", ``, "empty"},
		{"trailing data", providerBody("x", good, key, "") + `{}`, "after"},
		{"unknown preset", providerBody("x", "", key, `"preset":"nope"`), "groq"},
		{"azure preset without its base URL", providerBody("x", "", key, `"preset":"azure-openai"`), "RESOURCE"},
		{"preset of the other dialect", providerBody("x", "", key, `"preset":"groq","dialect":"anthropic"`), "openai"},
		{"api_version without a preset", providerBody("x", good, key, `"api_version":"2024-10-21"`), "preset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, h.do("POST", "/api/v1/providers", tc.body), http.StatusBadRequest, "bad_request", tc.field)
		})
	}
	t.Run("body over 1 MiB", func(t *testing.T) {
		body := providerBody("big", good, strings.Repeat("k", 1<<20), "")
		wantError(t, h.do("POST", "/api/v1/providers", body), http.StatusBadRequest, "bad_request", "larger than")
	})

	var ps adminapi.ProviderList
	decode(t, h.do("GET", "/api/v1/providers", ""), &ps)
	if len(ps.Providers) != 0 || h.changes() != 0 {
		t.Fatalf("refused registrations left providers %+v, %d change notices", ps.Providers, h.changes())
	}
}

func (h *harness) createProvider(body string) adminapi.Provider {
	h.t.Helper()
	w := h.do("POST", "/api/v1/providers", body)
	h.mustStatus(w, http.StatusCreated)
	var p adminapi.Provider
	decode(h.t, w, &p)
	return p
}

// TestProviderDefaultsAndNormalization: the dialect follows the name when it
// is not given, the base URL loses its trailing slashes, and the answer
// reports what was stored.
func TestProviderDefaultsAndNormalization(t *testing.T) {
	h := newHarness(t)
	anth := h.createProvider(providerBody("anthropic", "https://api.anthropic.example.test/", "sk-test-a", ""))
	if anth.Dialect != "anthropic" || anth.BaseURL != "https://api.anthropic.example.test" {
		t.Errorf("provider named anthropic: %+v", anth)
	}
	oll := h.createProvider(providerBody(" ollama ", "http://127.0.0.1:11434/v1///", "unused", `"models":["llama*","qwen?"]`))
	if oll.Name != "ollama" || oll.Dialect != "openai" || oll.BaseURL != "http://127.0.0.1:11434/v1" {
		t.Errorf("provider ollama: %+v", oll)
	}
	if len(oll.Models) != 2 || oll.Models[0] != "llama*" || oll.Models[1] != "qwen?" {
		t.Errorf("models: %q", oll.Models)
	}
	claude := h.createProvider(providerBody("claude-proxy", "https://proxy.example.test/anthropic/", "sk-test-c", `"dialect":"anthropic"`))
	if claude.Dialect != "anthropic" || claude.BaseURL != "https://proxy.example.test/anthropic" {
		t.Errorf("explicit dialect: %+v", claude)
	}
	if !strings.HasPrefix(anth.ID, "prv_") || anth.ID == oll.ID || !anth.CreatedAt.Equal(h.now) || oll.Models == nil {
		t.Errorf("ids and times: %+v %+v", anth, oll)
	}
	if anth.Models == nil {
		t.Error("models must be an empty list, not null")
	}

	// Show and list agree with the create answer.
	var shown adminapi.Provider
	decode(t, h.do("GET", "/api/v1/providers/ollama", ""), &shown)
	if shown.ID != oll.ID || shown.BaseURL != oll.BaseURL || shown.Dialect != "openai" || len(shown.Models) != 2 {
		t.Errorf("show: %+v, created %+v", shown, oll)
	}
	var ps adminapi.ProviderList
	decode(t, h.do("GET", "/api/v1/providers", ""), &ps)
	if len(ps.Providers) != 3 {
		t.Fatalf("list: %+v", ps)
	}
	if h.changes() != 3 {
		t.Errorf("ProvidersChanged ran %d times for 3 additions", h.changes())
	}
}

// TestProviderConflicts: a name is taken once, and each dialect has at most
// one explicit default.
func TestProviderConflicts(t *testing.T) {
	h := newHarness(t)
	h.createProvider(providerBody("openai", "https://api.example.test/v1", "sk-test-1", `"default":true`))
	wantError(t, h.do("POST", "/api/v1/providers", providerBody("openai", "https://other.example.test/v1", "sk-test-2", "")),
		http.StatusConflict, "conflict", `"openai"`)
	wantError(t, h.do("POST", "/api/v1/providers", providerBody("ollama", "http://127.0.0.1:11434/v1", "x", `"default":true`)),
		http.StatusConflict, "conflict", `"openai"`, "default")
	// Without default, a second OpenAI-dialect provider is fine.
	h.createProvider(providerBody("ollama", "http://127.0.0.1:11434/v1", "x", ""))
	// The other dialect may have its own default.
	p := h.createProvider(providerBody("anthropic", "https://api.anthropic.example.test", "sk-test-3", `"default":true`))
	if !p.Default || p.Dialect != "anthropic" {
		t.Fatalf("anthropic default: %+v", p)
	}
	wantError(t, h.do("POST", "/api/v1/providers", providerBody("claude2", "https://b.example.test", "sk-test-4", `"dialect":"anthropic","default":true`)),
		http.StatusConflict, "conflict", "anthropic")

	var ps adminapi.ProviderList
	decode(t, h.do("GET", "/api/v1/providers", ""), &ps)
	if len(ps.Providers) != 3 || h.changes() != 3 {
		t.Fatalf("after conflicts: %d providers, %d change notices", len(ps.Providers), h.changes())
	}
	for _, p := range ps.Providers {
		if p.Name == "openai" && p.BaseURL != "https://api.example.test/v1" {
			t.Errorf("the refused duplicate replaced the original: %+v", p)
		}
	}
}

// dataFiles returns the bytes of every file next to the database: the
// database itself, its WAL and shared-memory files.
func (h *harness) dataFiles() map[string][]byte {
	h.t.Helper()
	dir := filepath.Dir(h.dbPath)
	ents, err := os.ReadDir(dir)
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			h.t.Fatal(err)
		}
		out[e.Name()] = b
	}
	if len(out[filepath.Base(h.dbPath)]) == 0 {
		h.t.Fatalf("database file %s not found among %d files", h.dbPath, len(out))
	}
	return out
}

// TestProviderKeyIsStoredEncrypted: the real key appears in no admin answer,
// no log line and no database file, yet the vault opens it; removing the
// provider removes the stored key and tells the gateway.
func TestProviderKeyIsStoredEncrypted(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	key := canary(t, "openai")
	var answers bytes.Buffer
	w := h.do("POST", "/api/v1/providers", providerBody("openai", "https://api.example.test/v1", key, `"models":["gpt-*"]`))
	h.mustStatus(w, http.StatusCreated)
	answers.Write(w.Body.Bytes())
	for _, path := range []string{"/api/v1/providers", "/api/v1/providers/openai"} {
		w := h.do("GET", path, "")
		h.mustStatus(w, http.StatusOK)
		answers.Write(w.Body.Bytes())
	}
	// A refused duplicate must not echo the key it was sent either.
	w = h.do("POST", "/api/v1/providers", providerBody("openai", "https://api.example.test/v1", key, ""))
	h.mustStatus(w, http.StatusConflict)
	answers.Write(w.Body.Bytes())
	if bytes.Contains(answers.Bytes(), []byte(key)) || strings.Contains(answers.String(), "api_key") {
		t.Fatalf("an admin answer carries the provider key:\n%s", answers.String())
	}
	if strings.Contains(h.log.String(), key) {
		t.Fatalf("the log carries the provider key:\n%s", h.log)
	}
	for name, b := range h.dataFiles() {
		if bytes.Contains(b, []byte(key)) {
			t.Fatalf("%s holds the provider key in plain text", name)
		}
	}

	p, err := h.st.GetProvider(ctx, "openai")
	if err != nil {
		t.Fatal(err)
	}
	got, version, err := h.vault.Get(ctx, p.SecretID)
	if err != nil || got.Reveal() != key || version != 1 {
		t.Fatalf("vault.Get(%q): version %d, err %v, matches %v", p.SecretID, version, err, got.Reveal() == key)
	}

	before := h.changes()
	w = h.do("DELETE", "/api/v1/providers/openai", "")
	h.mustStatus(w, http.StatusNoContent)
	if w.Body.Len() != 0 {
		t.Errorf("204 with a body: %q", w.Body)
	}
	if _, err := h.st.LatestSecretVersion(ctx, p.SecretID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the provider's stored key survived its removal: %v", err)
	}
	if _, _, err := h.vault.Get(ctx, p.SecretID); err == nil {
		t.Fatal("the vault still opens the removed provider's key")
	}
	if h.changes() != before+1 {
		t.Fatalf("ProvidersChanged ran %d times for one removal", h.changes()-before)
	}
	wantError(t, h.do("GET", "/api/v1/providers/openai", ""), http.StatusNotFound, "not_found")
	wantError(t, h.do("DELETE", "/api/v1/providers/openai", ""), http.StatusNotFound, "not_found")
	if h.changes() != before+1 {
		t.Fatal("a removal of a missing provider must not signal a change")
	}

	// The name can be registered again, with a fresh record and key.
	key2 := canary(t, "openai-again")
	again := h.createProvider(providerBody("openai", "https://api.example.test/v1", key2, ""))
	p2, err := h.st.GetProvider(ctx, "openai")
	if err != nil || again.ID == p.ID || p2.SecretID == p.SecretID {
		t.Fatalf("re-registration: %+v, err %v", p2, err)
	}
	if got, _, err := h.vault.Get(ctx, p2.SecretID); err != nil || got.Reveal() != key2 {
		t.Fatalf("re-registered key: err %v", err)
	}
}

// TestProviderPresets: a preset fills in the dialect and base URL, and is
// shown on the provider.
func TestProviderPresets(t *testing.T) {
	h := newHarness(t)
	var p adminapi.Provider
	decode(t, h.do("POST", "/api/v1/providers", providerBody("groq", "", "test-groq-key-not-real", `"preset":"groq"`)), &p)
	if p.Preset != "groq" || p.Dialect != "openai" || p.BaseURL != "https://api.groq.com/openai/v1" {
		t.Fatalf("groq from its preset: %+v", p)
	}
	decode(t, h.do("POST", "/api/v1/providers", providerBody("azure", "https://example-resource.openai.azure.com", "test-azure-key-not-real",
		`"preset":"azure-openai","api_version":"2024-10-21"`)), &p)
	if p.Preset != "azure-openai" || p.APIVersion != "2024-10-21" || p.BaseURL != "https://example-resource.openai.azure.com" {
		t.Fatalf("azure from its preset: %+v", p)
	}
}
