package provider

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

func decodeBody(t *testing.T, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q", ct)
	}
	var v map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("body %q: %v", rec.Body.String(), err)
	}
	return v
}

func TestOpenAIWriteError(t *testing.T) {
	tests := []struct {
		status    int
		code      string
		wantType  string
		wantRetry string
	}{
		{400, "invalid_json", "invalid_request_error", "false"},
		{401, "invalid_api_key", "invalid_request_error", "false"},
		{403, "model_not_allowed", "request_forbidden", "false"},
		{404, "model_not_found", "invalid_request_error", "false"},
		{404, "unknown_url", "invalid_request_error", "false"},
		{405, "method_not_allowed", "invalid_request_error", "false"},
		{413, "request_too_large", "invalid_request_error", "false"},
		{429, "rate_limit_exceeded", "rate_limit_exceeded", ""},
		{429, "insufficient_quota", "insufficient_quota", ""},
		{500, "internal_error", "server_error", ""},
		{502, "upstream_unreachable", "server_error", ""},
		{503, "auth_unavailable", "server_error", ""},
		{504, "upstream_timeout", "server_error", ""},
		{400, "", "invalid_request_error", "false"},
	}
	const msg = `model "a<b>&c" says "hi"` + "\n\\ \u2028 日本"
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		OpenAI{}.WriteError(rec, tt.status, tt.code, msg)
		if rec.Code != tt.status {
			t.Errorf("status %d, want %d", rec.Code, tt.status)
		}
		if got := rec.Header().Get("X-Should-Retry"); got != tt.wantRetry {
			t.Errorf("%d: x-should-retry = %q, want %q", tt.status, got, tt.wantRetry)
		}
		var code any
		if tt.code != "" {
			code = tt.code
		}
		want := map[string]any{"error": map[string]any{"message": msg, "type": tt.wantType, "param": nil, "code": code}}
		if got := decodeBody(t, rec); !reflect.DeepEqual(got, want) {
			t.Errorf("%d %s: body %v, want %v", tt.status, tt.code, got, want)
		}
	}
}

func TestAnthropicWriteError(t *testing.T) {
	tests := []struct {
		status    int
		wantType  string
		wantRetry string
	}{
		{400, "invalid_request_error", "false"},
		{401, "authentication_error", "false"},
		{402, "billing_error", "false"},
		{403, "permission_error", "false"},
		{404, "not_found_error", "false"},
		{405, "invalid_request_error", "false"},
		{413, "request_too_large", "false"},
		{429, "rate_limit_error", ""},
		{500, "api_error", ""},
		{502, "api_error", ""},
		{503, "api_error", ""},
		{504, "timeout_error", ""},
		{529, "overloaded_error", ""},
	}
	const msg = `no provider serves model "x"` + "\t</script>"
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		Anthropic{}.WriteError(rec, tt.status, "some_code", msg)
		if rec.Code != tt.status {
			t.Errorf("status %d, want %d", rec.Code, tt.status)
		}
		if got := rec.Header().Get("X-Should-Retry"); got != tt.wantRetry {
			t.Errorf("%d: x-should-retry = %q, want %q", tt.status, got, tt.wantRetry)
		}
		want := map[string]any{"type": "error", "error": map[string]any{"type": tt.wantType, "message": msg}}
		if got := decodeBody(t, rec); !reflect.DeepEqual(got, want) {
			t.Errorf("%d: body %v, want %v", tt.status, got, want)
		}
	}
}

func testModels() []Model {
	return []Model{
		{ID: "gpt-4o", OwnedBy: "openai", Created: time.Unix(1715367049, 0).UTC(), DisplayName: "GPT-4o"},
		{ID: "ollama/llama3.2", OwnedBy: "ollama", Created: time.Unix(1700000000, 0).UTC()},
		{ID: "no-time", OwnedBy: "local"},
	}
}

func TestOpenAIModels(t *testing.T) {
	rec := httptest.NewRecorder()
	OpenAI{}.WriteModels(rec, testModels())
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	want := map[string]any{"object": "list", "data": []any{
		map[string]any{"id": "gpt-4o", "object": "model", "created": 1715367049.0, "owned_by": "openai"},
		map[string]any{"id": "ollama/llama3.2", "object": "model", "created": 1700000000.0, "owned_by": "ollama"},
		map[string]any{"id": "no-time", "object": "model", "created": 0.0, "owned_by": "local"},
	}}
	if got := decodeBody(t, rec); !reflect.DeepEqual(got, want) {
		t.Fatalf("body %v\nwant %v", got, want)
	}

	got, err := OpenAI{}.ParseModels(rec.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	wantModels := testModels()
	wantModels[0].DisplayName = "" // not part of the OpenAI shape
	if !reflect.DeepEqual(got, wantModels) {
		t.Fatalf("round trip: %+v\nwant %+v", got, wantModels)
	}

	rec = httptest.NewRecorder()
	OpenAI{}.WriteModels(rec, nil)
	if strings.TrimSpace(rec.Body.String()) != `{"object":"list","data":[]}` {
		t.Fatalf("empty list: %s", rec.Body.String())
	}
}

func TestOpenAIParseModelsVariants(t *testing.T) {
	body := `{"data":[
		{"id":"meta-llama/llama-3.1-8b","name":"Llama 3.1 8B","created":1721692800.5,"context_length":131072},
		{"id":"","object":"model"},
		{"id":"qwen2.5:7b","object":"model","created":1733000000,"owned_by":"library"},
		{"id":"no-created"}
	],"object":"list"}`
	got, err := OpenAI{}.ParseModels([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want := []Model{
		{ID: "meta-llama/llama-3.1-8b", DisplayName: "Llama 3.1 8B", Created: time.Unix(1721692800, 0).UTC()},
		{ID: "qwen2.5:7b", OwnedBy: "library", Created: time.Unix(1733000000, 0).UTC()},
		{ID: "no-created"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	for _, bad := range []string{``, `[]`, `{"object":"list"}`, `{"data":{}}`, `{"data":[{"id":1}]}`, `{"data":null}`, "test-upstream-key-123"} {
		if _, err := (OpenAI{}).ParseModels([]byte(bad)); err == nil || strings.Contains(err.Error(), "test-upstream") {
			t.Errorf("ParseModels(%q) error = %v", bad, err)
		}
	}
}

func TestAnthropicModels(t *testing.T) {
	rec := httptest.NewRecorder()
	Anthropic{}.WriteModels(rec, testModels())
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	want := map[string]any{
		"data": []any{
			map[string]any{"type": "model", "id": "gpt-4o", "display_name": "GPT-4o", "created_at": "2024-05-10T18:50:49Z"},
			map[string]any{"type": "model", "id": "ollama/llama3.2", "display_name": "ollama/llama3.2", "created_at": "2023-11-14T22:13:20Z"},
			map[string]any{"type": "model", "id": "no-time", "display_name": "no-time", "created_at": "1970-01-01T00:00:00Z"},
		},
		"has_more": false, "first_id": "gpt-4o", "last_id": "no-time",
	}
	if got := decodeBody(t, rec); !reflect.DeepEqual(got, want) {
		t.Fatalf("body %v\nwant %v", got, want)
	}

	got, err := Anthropic{}.ParseModels(rec.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	wantModels := []Model{
		{ID: "gpt-4o", DisplayName: "GPT-4o", Created: time.Unix(1715367049, 0).UTC()},
		{ID: "ollama/llama3.2", DisplayName: "ollama/llama3.2", Created: time.Unix(1700000000, 0).UTC()},
		{ID: "no-time", DisplayName: "no-time", Created: time.Unix(0, 0).UTC()},
	}
	if !reflect.DeepEqual(got, wantModels) {
		t.Fatalf("round trip: %+v\nwant %+v", got, wantModels)
	}

	rec = httptest.NewRecorder()
	Anthropic{}.WriteModels(rec, nil)
	if strings.TrimSpace(rec.Body.String()) != `{"data":[],"has_more":false,"first_id":null,"last_id":null}` {
		t.Fatalf("empty list: %s", rec.Body.String())
	}
}

func TestAnthropicParseModelsVariants(t *testing.T) {
	body := `{"data":[
		{"type":"model","id":"claude-sonnet-4-5","display_name":"Claude Sonnet 4.5","created_at":"2025-09-29T00:00:00Z"},
		{"type":"model","id":"claude-x","display_name":"X","created_at":"2025-01-01T12:30:00.123456+02:00"},
		{"type":"model","id":"claude-y","created_at":"not a time"},
		{"type":"model","display_name":"no id"}
	],"has_more":true,"first_id":"claude-sonnet-4-5","last_id":"claude-y"}`
	got, err := Anthropic{}.ParseModels([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want := []Model{
		{ID: "claude-sonnet-4-5", DisplayName: "Claude Sonnet 4.5", Created: time.Date(2025, 9, 29, 0, 0, 0, 0, time.UTC)},
		{ID: "claude-x", DisplayName: "X", Created: time.Date(2025, 1, 1, 10, 30, 0, 123456000, time.UTC)},
		{ID: "claude-y"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	for _, bad := range []string{``, `{}`, `{"data":"x"}`, `not json test-upstream-key-123`} {
		if _, err := (Anthropic{}).ParseModels([]byte(bad)); err == nil || strings.Contains(err.Error(), "test-upstream") {
			t.Errorf("ParseModels(%q) error = %v", bad, err)
		}
	}
}
