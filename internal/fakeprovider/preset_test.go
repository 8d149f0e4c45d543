package fakeprovider

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"
)

// presetPrefix is the path each OpenAI-compatible fake serves the OpenAI
// API under, as its service documents the base URL.
func presetPrefix(name string) string {
	switch name {
	case "gemini":
		return "/v1beta/openai"
	case "groq":
		return "/openai/v1"
	case "openrouter":
		return "/api/v1"
	case "deepseek", "azure-openai":
		return ""
	}
	return "/v1"
}

func newPresetFake(t *testing.T, name string, opts Options) (*Server, *httptest.Server) {
	t.Helper()
	fake := NewPreset(name, opts)
	ts := httptest.NewServer(fake)
	t.Cleanup(func() {
		fake.Close()
		ts.Close()
	})
	return fake, ts
}

// presetClient returns the official OpenAI SDK configured for the service as
// its documentation says: the Azure mode of the SDK for Azure OpenAI, the
// service's base URL otherwise.
func presetClient(name, url, key string) openai.Client {
	if name == "azure-openai" {
		return openai.NewClient(azure.WithEndpoint(url, "2024-10-21"), azure.WithAPIKey(key),
			azure.WithUnsafeAllowHTTP(), option.WithMaxRetries(0))
	}
	return openai.NewClient(option.WithBaseURL(url+presetPrefix(name)), option.WithAPIKey(key), option.WithMaxRetries(0))
}

// TestPresetFakesWithOpenAISDK drives every OpenAI-compatible fake with the
// official OpenAI SDK: chat completions, streamed chat completions with
// usage, the models list and a wrong key.
func TestPresetFakesWithOpenAISDK(t *testing.T) {
	ctx := context.Background()
	wrongStatus := map[string]int{"gemini": 400, "xai": 400}
	for _, name := range PresetNames() {
		if name == "anthropic" {
			continue // covered with the Anthropic SDK in anthropic_test.go
		}
		t.Run(name, func(t *testing.T) {
			key := "test-" + name + "-key-not-real"
			fake, ts := newPresetFake(t, name, Options{APIKey: key, ReplyText: "one two three four five six", Chunks: 3})
			client := presetClient(name, ts.URL, key)
			model := fake.Models()[0]

			res, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
				Model:    model,
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello there")},
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Choices) != 1 || res.Choices[0].Message.Content != fake.ReplyText() || res.Model != model || res.Usage.TotalTokens == 0 {
				t.Fatalf("completion %s", res.RawJSON())
			}
			seen := fake.Requests()[0]
			wantPath := presetPrefix(name) + "/chat/completions"
			if name == "azure-openai" {
				wantPath = "/openai/deployments/" + model + "/chat/completions"
				if seen.RawQuery != "api-version=2024-10-21" || seen.Header.Get("Api-Key") != key {
					t.Errorf("azure query %q, api-key %q", seen.RawQuery, seen.Header.Get("Api-Key"))
				}
			} else if seen.Header.Get("Authorization") != "Bearer "+key {
				t.Errorf("Authorization %q", seen.Header.Get("Authorization"))
			}
			if seen.Path != wantPath {
				t.Errorf("path %q, want %q", seen.Path, wantPath)
			}

			stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
				Model:         model,
				Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("count")},
				StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
			})
			var acc openai.ChatCompletionAccumulator
			for stream.Next() {
				if !acc.AddChunk(stream.Current()) {
					t.Fatalf("chunk rejected: %s", stream.Current().RawJSON())
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			_ = stream.Close()
			if len(acc.Choices) != 1 || acc.Choices[0].Message.Content != fake.ReplyText() || acc.Usage.CompletionTokens == 0 {
				t.Fatalf("stream gave %+v", acc.ChatCompletion)
			}

			var ids []string
			iter := client.Models.ListAutoPaging(ctx)
			for iter.Next() {
				ids = append(ids, iter.Current().ID)
			}
			if err := iter.Err(); err != nil || len(ids) != len(fake.Models()) {
				t.Fatalf("models %v, %v", ids, err)
			}

			if name == "ollama" {
				return // Ollama checks no key
			}
			wrong := presetClient(name, ts.URL, "wrong-key-not-real")
			_, err = wrong.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
				Model:    model,
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
			})
			want := wrongStatus[name]
			if want == 0 {
				want = http.StatusUnauthorized
			}
			var apiErr *openai.Error
			if errors.As(err, &apiErr) && apiErr.StatusCode == want {
				return
			}
			// xAI and vLLM send "error" as a string, which this SDK cannot
			// decode into its error type; keygate re-emits such errors in the
			// OpenAI shape (provider.Preset.ParseError).
			if (name == "xai" || name == "vllm") && err != nil && strings.Contains(err.Error(), "cannot unmarshal string") {
				return
			}
			t.Fatalf("wrong key: %v", err)
		})
	}
}

// raw sends a request straight to a fake and returns status and body.
func raw(t *testing.T, method, url string, header http.Header, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func bearer(key string) http.Header {
	return http.Header{"Authorization": {"Bearer " + key}, "Content-Type": {"application/json"}}
}

// TestPresetFakesRefuseOtherPathShapes checks each fake answers 404 to the
// plain OpenAI path when its service uses another.
func TestPresetFakesRefuseOtherPathShapes(t *testing.T) {
	const key = "test-path-key-not-real"
	chat := `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	for name, path := range map[string]string{
		"groq":         "/v1/chat/completions",
		"gemini":       "/v1/chat/completions",
		"openrouter":   "/v1/chat/completions",
		"azure-openai": "/v1/chat/completions",
		"mistral":      "/chat/completions",
	} {
		_, ts := newPresetFake(t, name, Options{APIKey: key})
		h := bearer(key)
		h.Set("Api-Key", key)
		if status, body := raw(t, http.MethodPost, ts.URL+path, h, chat); status != http.StatusNotFound {
			t.Errorf("%s %s: %d %s", name, path, status, body)
		}
	}
}

func TestAzureFakeRequirements(t *testing.T) {
	const key = "test-azure-key-not-real"
	_, ts := newPresetFake(t, "azure-openai", Options{APIKey: key})
	chat := `{"messages":[{"role":"user","content":"hi"}]}`
	apiKey := http.Header{"Api-Key": {key}, "Content-Type": {"application/json"}}
	base := ts.URL + "/openai/deployments/gpt-4o/chat/completions"
	for _, tt := range []struct {
		name   string
		url    string
		header http.Header
		status int
		body   string
	}{
		{"no model in body", base + "?api-version=2024-10-21", apiKey, 200, `"model":"gpt-4o"`},
		{"missing api-version", base, apiKey, 404, `{"error":{"code":"404","message":"Resource not found"}}`},
		{"unknown api-version", base + "?api-version=2023-01-01", apiKey, 400, `"API version not supported"`},
		{"bearer instead of api-key", base + "?api-version=2024-10-21", bearer(key), 401, `Access token is missing`},
		{"wrong api-key", base + "?api-version=2024-10-21", http.Header{"Api-Key": {"nope-not-real"}}, 401, `invalid subscription key`},
		{"unknown deployment", ts.URL + "/openai/deployments/gpt-9/chat/completions?api-version=2024-10-21", apiKey, 404, `"DeploymentNotFound"`},
		{"unknown operation", ts.URL + "/openai/deployments/gpt-4o/moderations?api-version=2024-10-21", apiKey, 404, `Resource not found`},
	} {
		status, body := raw(t, http.MethodPost, tt.url, tt.header, chat)
		if status != tt.status || !strings.Contains(body, tt.body) {
			t.Errorf("%s: %d %s", tt.name, status, body)
		}
	}
}

func TestPresetFakeQuirks(t *testing.T) {
	const key = "test-quirk-key-not-real"
	chat := func(model string, stream bool) string {
		s := "false"
		if stream {
			s = "true"
		}
		return `{"model":"` + model + `","stream":` + s + `,"messages":[{"role":"user","content":"hi"}]}`
	}

	_, gemini := newPresetFake(t, "gemini", Options{APIKey: key})
	if status, body := raw(t, http.MethodGet, gemini.URL+"/v1beta/openai/models", bearer(key), ""); status != 200 ||
		!strings.Contains(body, `"id":"models/gemini-2.5-flash"`) || !strings.Contains(body, `"owned_by":"google"`) {
		t.Errorf("gemini models: %d %s", status, body)
	}
	if status, body := raw(t, http.MethodPost, gemini.URL+"/v1beta/openai/chat/completions", bearer(key), chat("models/gemini-2.5-flash", false)); status != 200 {
		t.Errorf("gemini models/ prefix: %d %s", status, body)
	}
	if status, body := raw(t, http.MethodPost, gemini.URL+"/v1beta/openai/chat/completions", bearer(key), chat("gemini-9", false)); status != 404 ||
		!strings.HasPrefix(body, `[{"error":{"code":404,`) || !strings.Contains(body, `"status":"NOT_FOUND"`) {
		t.Errorf("gemini unknown model: %d %s", status, body)
	}
	if status, body := raw(t, http.MethodPost, gemini.URL+"/v1beta/openai/chat/completions", http.Header{}, chat("gemini-2.5-flash", false)); status != 403 ||
		!strings.Contains(body, "PERMISSION_DENIED") {
		t.Errorf("gemini without key: %d %s", status, body)
	}
	_, geminiBusy := newPresetFake(t, "gemini", Options{APIKey: key, FailStatus: 429})
	if status, body := raw(t, http.MethodPost, geminiBusy.URL+"/v1beta/openai/chat/completions", bearer(key), chat("gemini-2.5-flash", false)); status != 429 ||
		!strings.Contains(body, `"status":"RESOURCE_EXHAUSTED"`) {
		t.Errorf("gemini FailStatus: %d %s", status, body)
	}

	_, openrouter := newPresetFake(t, "openrouter", Options{APIKey: key})
	if status, body := raw(t, http.MethodPost, openrouter.URL+"/api/v1/chat/completions", bearer(key), chat("openai/gpt-4o-mini", true)); status != 200 ||
		!strings.HasPrefix(body, ": OPENROUTER PROCESSING\n\n") || !strings.HasSuffix(body, "data: [DONE]\n\n") {
		t.Errorf("openrouter stream: %d %q", status, body)
	}
	if status, body := raw(t, http.MethodPost, openrouter.URL+"/api/v1/chat/completions", http.Header{}, chat("openai/gpt-4o-mini", false)); status != 401 ||
		body != `{"error":{"message":"No auth credentials found","code":401}}` {
		t.Errorf("openrouter without key: %d %s", status, body)
	}

	_, mistral := newPresetFake(t, "mistral", Options{APIKey: key})
	if status, body := raw(t, http.MethodPost, mistral.URL+"/v1/chat/completions", bearer(key), chat("mistral-huge", false)); status != 400 ||
		body != `{"object":"error","message":"Invalid model: mistral-huge","type":"invalid_model","param":null,"code":"1500"}` {
		t.Errorf("mistral unknown model: %d %s", status, body)
	}

	_, deepseek := newPresetFake(t, "deepseek", Options{APIKey: key, EchoKeyInErrors: true})
	if status, body := raw(t, http.MethodPost, deepseek.URL+"/v1/chat/completions", bearer("echoed-key-not-real"), chat("deepseek-chat", false)); status != 401 ||
		!strings.Contains(body, "Your api key: echoed-key-not-real is invalid") {
		t.Errorf("deepseek echo: %d %s", status, body)
	}

	_, xai := newPresetFake(t, "xai", Options{APIKey: key})
	if status, body := raw(t, http.MethodPost, xai.URL+"/v1/chat/completions", bearer(key), chat("grok-9", false)); status != 404 ||
		!strings.HasPrefix(body, `{"code":"Some requested entity was not found","error":`) {
		t.Errorf("xai unknown model: %d %s", status, body)
	}

	vllm, vts := newPresetFake(t, "vllm", Options{APIKey: key})
	vllm.AddAPIKey("test-rolled-key-not-real")
	if status, body := raw(t, http.MethodPost, vts.URL+"/v1/chat/completions", bearer("test-rolled-key-not-real"), chat("Qwen/Qwen2.5-7B-Instruct", false)); status != 200 {
		t.Errorf("vllm added key: %d %s", status, body)
	}
	if status, body := raw(t, http.MethodPost, vts.URL+"/v1/chat/completions", bearer(key), chat("nope", false)); status != 404 ||
		body != "{\"error\":{\"message\":\"The model `nope` does not exist.\",\"type\":\"NotFoundError\",\"param\":null,\"code\":404}}" {
		t.Errorf("vllm unknown model: %d %s", status, body)
	}
}

func TestNewPresetNames(t *testing.T) {
	names := PresetNames()
	for _, want := range []string{"openai", "anthropic", "azure-openai", "gemini", "mistral", "groq", "deepseek", "xai", "openrouter", "together", "ollama", "vllm"} {
		if !slices.Contains(names, want) {
			t.Errorf("PresetNames lacks %q", want)
		}
	}
	for _, name := range []string{"ollama", "vllm"} {
		NewPreset(name, Options{}) // no key needed
	}
	for _, tt := range []struct {
		name string
		opts Options
	}{{"bedrock", Options{APIKey: "k"}}, {"groq", Options{}}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewPreset(%q) did not panic", tt.name)
				}
			}()
			NewPreset(tt.name, tt.opts)
		}()
	}
}
