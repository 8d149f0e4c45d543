package provider

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/secret"
)

func TestPresetsTable(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range Presets() {
		if seen[p.Name] {
			t.Errorf("preset %q listed twice", p.Name)
		}
		seen[p.Name] = true
		if _, ok := Lookup(p.Dialect); !ok {
			t.Errorf("%s: unknown dialect %q", p.Name, p.Dialect)
		}
		if got, ok := LookupPreset(p.Name); !ok || got != p {
			t.Errorf("LookupPreset(%q) = %+v, %v", p.Name, got, ok)
		}
		if (p.BaseURL == "") == (p.BaseURLExample == "") {
			t.Errorf("%s: exactly one of BaseURL and BaseURLExample must be set", p.Name)
		}
		if p.BaseURL != "" {
			if err := p.Validate("", true); err != nil {
				t.Errorf("%s: default base URL does not validate: %v", p.Name, err)
			}
		}
	}
	for _, name := range []string{"openai", "anthropic", "azure-openai", "gemini", "mistral", "groq", "deepseek", "xai", "openrouter", "together", "ollama", "vllm"} {
		if !seen[name] {
			t.Errorf("preset %q missing", name)
		}
	}
	if _, ok := LookupPreset("Groq"); ok {
		t.Error("preset names are exact")
	}
	got := Presets()
	got[0].BaseURL = "https://changed.example"
	if Presets()[0].BaseURL == got[0].BaseURL {
		t.Error("Presets must return a fresh table")
	}
}

func TestPresetValidate(t *testing.T) {
	for _, tt := range []struct {
		preset, base string
		keySet       bool
		wantErr      string
	}{
		{"azure-openai", "", true, "has no default base URL"},
		{"azure-openai", "https://res.openai.azure.com/openai/deployments/gpt-4o", true, "keygate adds /openai/deployments"},
		{"azure-openai", "https://res.openai.azure.com", true, ""},
		{"azure-openai", "https://res.openai.azure.com/openai/", true, ""},
		{"azure-openai", "https://res.openai.azure.com", false, "needs an API key"},
		{"vllm", "", false, "http://HOST:8000/v1"},
		{"vllm", "http://10.0.0.5:8000/v1", false, ""},
		{"ollama", "", false, ""},
		{"groq", "", false, "needs an API key"},
		{"groq", "ftp://api.groq.com/openai/v1", true, "not an absolute http or https URL"},
		{"groq", "api.groq.com/openai/v1", true, "not an absolute http or https URL"},
		{"openai", "https://user:pw@api.openai.com/v1", true, "must not carry a user name"},
		{"openai", "https://api.openai.com/v1#x", true, "#fragment"},
		{"anthropic", "https://api.anthropic.com/v1", true, "must not end in /v1"},
	} {
		p, _ := LookupPreset(tt.preset)
		err := p.Validate(tt.base, tt.keySet)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s %q: %v", tt.preset, tt.base, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s %q: err = %v, want %q", tt.preset, tt.base, err, tt.wantErr)
		}
	}
}

// prepared runs Prepare on a fresh client request and returns it.
func prepared(t *testing.T, p Preset, base, clientPath, query, model, key, apiVersion string) (*http.Request, error) {
	t.Helper()
	in := httptest.NewRequest(http.MethodPost, "http://keygate.local"+clientPath, nil)
	in.URL.RawQuery = query
	out := in.Clone(in.Context())
	out.Header.Set("Authorization", "Bearer kg_test_client_key")
	out.Header.Set("X-Api-Key", "kg_test_client_key")
	out.Header.Set("Api-Key", "kg_test_client_key")
	out.Header.Set("Cookie", "session=client")
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return out, p.Prepare(out, u, clientPath, model, secret.New(key), apiVersion)
}

func TestPresetPrepareURLAndAuth(t *testing.T) {
	const key = "test-upstream-key-not-real"
	for _, tt := range []struct {
		preset, base, path, query, model, version string
		wantURL, wantHeader                       string
	}{
		{"openai", "https://api.openai.com/v1", "/v1/chat/completions", "", "gpt-4o", "", "https://api.openai.com/v1/chat/completions", "Authorization"},
		{"groq", "https://api.groq.com/openai/v1", "/v1/chat/completions", "", "m", "", "https://api.groq.com/openai/v1/chat/completions", "Authorization"},
		{"gemini", "https://generativelanguage.googleapis.com/v1beta/openai", "/v1/chat/completions", "", "m", "", "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions", "Authorization"},
		{"gemini", "https://generativelanguage.googleapis.com/v1beta/openai/", "/v1/models", "", "", "", "https://generativelanguage.googleapis.com/v1beta/openai/models", "Authorization"},
		{"deepseek", "https://api.deepseek.com", "/v1/chat/completions", "", "m", "", "https://api.deepseek.com/chat/completions", "Authorization"},
		{"openrouter", "https://openrouter.ai/api/v1", "/v1/chat/completions", "", "m", "", "https://openrouter.ai/api/v1/chat/completions", "Authorization"},
		{"mistral", "https://api.mistral.ai/v1", "/v1/embeddings", "", "m", "", "https://api.mistral.ai/v1/embeddings", "Authorization"},
		{"xai", "https://api.x.ai/v1", "/v1/chat/completions", "a=1", "m", "", "https://api.x.ai/v1/chat/completions?a=1", "Authorization"},
		{"together", "https://api.together.xyz/v1", "/v1/completions", "", "m", "", "https://api.together.xyz/v1/completions", "Authorization"},
		{"vllm", "http://10.0.0.5:8000/v1", "/v1/chat/completions", "", "m", "", "http://10.0.0.5:8000/v1/chat/completions", "Authorization"},
		{"anthropic", "https://api.anthropic.com", "/v1/messages", "beta=true", "m", "", "https://api.anthropic.com/v1/messages?beta=true", "X-Api-Key"},
		{"azure-openai", "https://res.openai.azure.com", "/v1/chat/completions", "", "gpt-4o", "",
			"https://res.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=" + AzureAPIVersion, "Api-Key"},
		{"azure-openai", "https://res.openai.azure.com/openai/", "/v1/embeddings", "", "emb-3", "2024-06-01",
			"https://res.openai.azure.com/openai/deployments/emb-3/embeddings?api-version=2024-06-01", "Api-Key"},
		{"azure-openai", "https://res.openai.azure.com?api-version=2025-04-01-preview", "/v1/chat/completions", "api-version=1999-01-01&x=y", "d.1_a-b", "",
			"https://res.openai.azure.com/openai/deployments/d.1_a-b/chat/completions?api-version=2025-04-01-preview&x=y", "Api-Key"},
		{"azure-openai", "https://res.openai.azure.com", "/v1/models", "", "", "", "https://res.openai.azure.com/openai/models?api-version=" + AzureAPIVersion, "Api-Key"},
	} {
		p, _ := LookupPreset(tt.preset)
		out, err := prepared(t, p, tt.base, tt.path, tt.query, tt.model, key, tt.version)
		if err != nil {
			t.Errorf("%s %s: %v", tt.preset, tt.path, err)
			continue
		}
		if got := out.URL.String(); got != tt.wantURL {
			t.Errorf("%s %s: URL %s, want %s", tt.preset, tt.path, got, tt.wantURL)
		}
		if out.Host != "" {
			t.Errorf("%s: Host %q left set", tt.preset, out.Host)
		}
		want := key
		if tt.wantHeader == "Authorization" {
			want = "Bearer " + key
		}
		if got := out.Header.Values(tt.wantHeader); len(got) != 1 || got[0] != want {
			t.Errorf("%s: %s = %q", tt.preset, tt.wantHeader, got)
		}
		for _, h := range []string{"Authorization", "X-Api-Key", "Api-Key", "Cookie"} {
			if h != tt.wantHeader && out.Header.Get(h) != "" {
				t.Errorf("%s: client header %s passed on", tt.preset, h)
			}
		}
		if tt.preset == "anthropic" && out.Header.Get("Anthropic-Version") != AnthropicVersion {
			t.Errorf("anthropic-version not set")
		}
	}
}

func TestPresetPrepareRefusals(t *testing.T) {
	azure, _ := LookupPreset("azure-openai")
	for _, model := range []string{"", "a/b", "../x", "gpt 4o", strings.Repeat("a", 65)} {
		if _, err := prepared(t, azure, "https://res.openai.azure.com", "/v1/chat/completions", "", model, "k", ""); err == nil ||
			!strings.Contains(err.Error(), "deployment name") {
			t.Errorf("azure model %q: err = %v", model, err)
		}
	}
	groq, _ := LookupPreset("groq")
	if _, err := prepared(t, groq, "https://api.groq.com/openai/v1", "/v1/chat/completions", "", "m", "", ""); err == nil ||
		!strings.Contains(err.Error(), "needs an API key") {
		t.Errorf("groq without key: err = %v", err)
	}
	out := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
	if err := groq.Prepare(out, nil, "/v1/chat/completions", "m", secret.New("k"), ""); err == nil {
		t.Error("nil base accepted")
	}
	ollama, _ := LookupPreset("ollama")
	out, err := prepared(t, ollama, ollama.BaseURL, "/v1/chat/completions", "", "m", "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"Authorization", "X-Api-Key", "Api-Key", "Cookie"} {
		if out.Header.Get(h) != "" {
			t.Errorf("ollama without key: %s sent", h)
		}
	}
}

func TestPresetParseError(t *testing.T) {
	p := Preset{Name: "groq"}
	for _, tt := range []struct {
		body, msg, code string
	}{
		{`{"error":{"message":"Incorrect API key provided: te**ey.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`, "Incorrect API key provided: te**ey.", "invalid_api_key"},
		{`{"error":{"message":"Rate limit","type":"requests","param":null,"code":null}}`, "Rate limit", "requests"},
		{`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`, "Overloaded", "overloaded_error"},
		{`{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist."}}`, "The API deployment for this resource does not exist.", "DeploymentNotFound"},
		{`{"error":{"code":"401","message":"Access denied"}}`, "Access denied", ""},
		{`[{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED"}}]`, "Resource has been exhausted", "RESOURCE_EXHAUSTED"},
		{`{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}]}}`, "API key not valid.", "API_KEY_INVALID"},
		{`{"error":{"message":"No auth credentials found","code":401}}`, "No auth credentials found", ""},
		{`{"code":"Some requested entity was not found","error":"The model grok-9 does not exist."}`, "The model grok-9 does not exist.", "not_found"},
		{`{"code":"Something new happened here","error":"odd"}`, "odd", ""},
		{`{"error":"Unauthorized"}`, "Unauthorized", ""},
		{`{"error":{"message":"The model x does not exist.","type":"NotFoundError","param":null,"code":404}}`, "The model x does not exist.", "NotFoundError"},
		{`{"object":"error","message":"Invalid model: x","type":"invalid_model","param":null,"code":"1500"}`, "Invalid model: x", "invalid_model"},
		{`{"detail":"Unauthorized"}`, "Unauthorized", ""},
		{`{"message":"Unauthorized","request_id":"abc"}`, "Unauthorized", ""},
		{`<html>502 Bad Gateway</html>`, `upstream provider "groq" answered 502 Bad Gateway`, ""},
		{``, `upstream provider "groq" answered 502 Bad Gateway`, ""},
		{`[]`, `upstream provider "groq" answered 502 Bad Gateway`, ""},
	} {
		msg, code := p.ParseError(http.StatusBadGateway, []byte(tt.body))
		if msg != tt.msg || code != tt.code {
			t.Errorf("%s: got (%q, %q), want (%q, %q)", tt.body, msg, code, tt.msg, tt.code)
		}
	}
}

// fakeBase returns the base URL a preset's fake is reached at: the fake's
// address with the preset's documented base path.
func fakeBase(t *testing.T, p Preset, serverURL string) string {
	t.Helper()
	switch {
	case p.Name == "azure-openai":
		return serverURL
	case p.BaseURL == "":
		return serverURL + "/v1"
	}
	u, err := url.Parse(p.BaseURL)
	if err != nil {
		t.Fatal(err)
	}
	return serverURL + u.Path
}

// chatBody returns a chat request in the preset's dialect.
func chatBody(p Preset, model string, stream bool) (string, []byte) {
	s := "false"
	if stream {
		s = "true"
	}
	if p.Dialect == "anthropic" {
		return "/v1/messages", []byte(`{"model":"` + model + `","max_tokens":64,"stream":` + s + `,"messages":[{"role":"user","content":"hello there"}]}`)
	}
	return "/v1/chat/completions", []byte(`{"model":"` + model + `","stream":` + s + `,"messages":[{"role":"user","content":"hello there"}]}`)
}

// send prepares a chat call for p against base and sends it.
func send(t *testing.T, p Preset, base, model, key string, stream bool) (*http.Response, []byte) {
	t.Helper()
	path, body := chatBody(p, model, stream)
	out, err := http.NewRequest(http.MethodPost, "http://keygate.local"+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	out.Header.Set("Content-Type", "application/json")
	out.Header.Set("Authorization", "Bearer kg_test_client_key")
	u, _ := url.Parse(base)
	if err := p.Prepare(out, u, path, model, secret.New(key), ""); err != nil {
		t.Fatalf("%s: Prepare: %v", p.Name, err)
	}
	resp, err := http.DefaultClient.Do(out)
	if err != nil {
		t.Fatalf("%s: %v", p.Name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// wrongKeyAnswers is what each service answers a wrong key with, as
// ParseError reads it.
type wrongKeyAnswer struct {
	status     int
	msg, code  string
	bodyPrefix string
}

func wrongKeyAnswers() map[string]wrongKeyAnswer {
	return map[string]wrongKeyAnswer{
		"openai":       {401, "Incorrect API key provided", "invalid_api_key", `{"error":{`},
		"anthropic":    {401, "invalid x-api-key", "authentication_error", `{"type":"error"`},
		"azure-openai": {401, "Access denied due to invalid subscription key", "", `{"error":{"code":"401"`},
		"gemini":       {400, "API key not valid", "API_KEY_INVALID", `[{"error":{`},
		"mistral":      {401, "Unauthorized", "", `{"detail":`},
		"groq":         {401, "Invalid API Key", "invalid_api_key", `{"error":{`},
		"deepseek":     {401, "Authentication Fails, Your api key: ****real is invalid", "invalid_request_error", `{"error":{`},
		"xai":          {400, "Incorrect API key provided: wr***al.", "invalid_argument", `{"code":`},
		"openrouter":   {401, "User not found.", "", `{"error":{`},
		"together":     {401, "Invalid API key provided", "invalid_api_key", `{"error":{`},
		"vllm":         {401, "Unauthorized", "", `{"error":"Unauthorized"}`},
	}
}

// TestPresetsAgainstFakes sends requests built by Prepare to each preset's
// fake over real HTTP: the fake accepts the path, credential header and
// api-version Prepare produces, streams, and refuses a wrong key with the
// service's own error body, which ParseError reads.
func TestPresetsAgainstFakes(t *testing.T) {
	for _, p := range Presets() {
		t.Run(p.Name, func(t *testing.T) {
			key := "test-" + p.Name + "-key-not-real"
			fake := fakeprovider.NewPreset(p.Name, fakeprovider.Options{APIKey: key})
			ts := httptest.NewServer(fake)
			t.Cleanup(func() { fake.Close(); ts.Close() })
			base := fakeBase(t, p, ts.URL)
			model := fake.Models()[0]

			resp, body := send(t, p, base, model, key, false)
			if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(fake.ReplyText()[:20])) {
				t.Fatalf("chat: %d %s", resp.StatusCode, body)
			}
			seen := fake.Requests()[0]
			wantPath := strings.TrimPrefix(base, ts.URL) + "/chat/completions"
			switch p.Name {
			case "anthropic":
				wantPath = "/v1/messages"
			case "azure-openai":
				wantPath = "/openai/deployments/" + model + "/chat/completions"
				if seen.RawQuery != "api-version="+AzureAPIVersion {
					t.Errorf("query %q", seen.RawQuery)
				}
			}
			if seen.Path != wantPath {
				t.Errorf("path %q, want %q", seen.Path, wantPath)
			}
			switch p.AuthHeader {
			case "Authorization":
				if got := seen.Header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer "+key {
					t.Errorf("Authorization %q", got)
				}
			default:
				if got := seen.Header.Values(p.AuthHeader); len(got) != 1 || got[0] != key || seen.Header.Get("Authorization") != "" {
					t.Errorf("%s %q, Authorization %q", p.AuthHeader, got, seen.Header.Get("Authorization"))
				}
			}

			resp, body = send(t, p, base, model, key, true)
			end := "data: [DONE]"
			if p.Dialect == "anthropic" {
				end = "event: message_stop"
			}
			if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") ||
				!bytes.Contains(body, []byte(end)) {
				t.Fatalf("stream: %d %s", resp.StatusCode, body)
			}

			if p.Name == "ollama" {
				// Ollama checks no credential; it refuses an unpulled model.
				if resp, body := send(t, p, base, model, "wrong-key-not-real", false); resp.StatusCode != http.StatusOK {
					t.Fatalf("ollama refused a key: %d %s", resp.StatusCode, body)
				}
				resp, body := send(t, p, base, "mistral:7b", "", false)
				msg, code := p.ParseError(resp.StatusCode, body)
				if resp.StatusCode != http.StatusNotFound || msg != `model "mistral:7b" not found, try pulling it first` || code != "not_found_error" {
					t.Fatalf("ollama unknown model: %d %s -> (%q, %q)", resp.StatusCode, body, msg, code)
				}
				return
			}
			want := wrongKeyAnswers()[p.Name]
			resp, body = send(t, p, base, model, "wrong-key-not-real", false)
			msg, code := p.ParseError(resp.StatusCode, body)
			if resp.StatusCode != want.status || !bytes.HasPrefix(body, []byte(want.bodyPrefix)) {
				t.Errorf("wrong key: %d %s", resp.StatusCode, body)
			}
			if !strings.Contains(msg, want.msg) || code != want.code {
				t.Errorf("wrong key parsed as (%q, %q), want (%q…, %q)", msg, code, want.msg, want.code)
			}
		})
	}
}

// TestAzurePresetAgainstFake covers what Azure OpenAI refuses beyond a
// wrong key: an unknown deployment and an unsupported api-version.
func TestAzurePresetAgainstFake(t *testing.T) {
	p, _ := LookupPreset("azure-openai")
	const key = "test-azure-key-not-real"
	fake := fakeprovider.NewPreset(p.Name, fakeprovider.Options{APIKey: key})
	ts := httptest.NewServer(fake)
	t.Cleanup(func() { fake.Close(); ts.Close() })

	resp, body := send(t, p, ts.URL, "no-such-deployment", key, false)
	if msg, code := p.ParseError(resp.StatusCode, body); resp.StatusCode != 404 || code != "DeploymentNotFound" ||
		!strings.Contains(msg, "deployment for this resource does not exist") {
		t.Errorf("unknown deployment: %d (%q, %q)", resp.StatusCode, msg, code)
	}

	resp, body = send(t, p, ts.URL+"?api-version=2019-01-01", "gpt-4o", key, false)
	if msg, code := p.ParseError(resp.StatusCode, body); resp.StatusCode != 400 || code != "BadRequest" || msg != "API version not supported" {
		t.Errorf("bad api-version: %d (%q, %q)", resp.StatusCode, msg, code)
	}

	resp, body = send(t, p, ts.URL+"/openai/?api-version=2025-04-01-preview", "gpt-4o", key, false)
	if resp.StatusCode != 200 {
		t.Fatalf("api-version from base URL: %d %s", resp.StatusCode, body)
	}
	if q := fake.Requests()[2].RawQuery; q != "api-version=2025-04-01-preview" {
		t.Errorf("query %q", q)
	}
}

// TestVLLMPresetWithoutKey checks a vLLM server started without --api-key
// serves keygate's request that carries no credential.
func TestVLLMPresetWithoutKey(t *testing.T) {
	p, _ := LookupPreset("vllm")
	fake := fakeprovider.NewPreset(p.Name, fakeprovider.Options{})
	ts := httptest.NewServer(fake)
	t.Cleanup(func() { fake.Close(); ts.Close() })
	resp, body := send(t, p, ts.URL+"/v1", fake.Models()[0], "", false)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if h := fake.Requests()[0].Header.Get("Authorization"); h != "" {
		t.Errorf("Authorization %q sent without a key", h)
	}
}
