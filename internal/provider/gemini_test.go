package provider

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/secret"
)

func TestGeminiClientKey(t *testing.T) {
	for _, tt := range []struct {
		name string
		h    http.Header
		want string
		ok   bool
	}{
		{"x-goog-api-key", http.Header{"X-Goog-Api-Key": {"kg_a"}}, "kg_a", true},
		{"header wins over bearer", http.Header{"X-Goog-Api-Key": {"kg_a"}, "Authorization": {"Bearer kg_b"}}, "kg_a", true},
		{"bearer", http.Header{"Authorization": {"Bearer kg_b"}}, "kg_b", true},
		{"x-api-key", http.Header{"X-Api-Key": {"kg_c"}}, "kg_c", true},
		{"sent twice", http.Header{"X-Goog-Api-Key": {"kg_a", "kg_b"}}, "", false},
		{"empty goog header does not fall back", http.Header{"X-Goog-Api-Key": {""}, "Authorization": {"Bearer kg_b"}}, "", false},
		{"inner space", http.Header{"X-Goog-Api-Key": {"kg a"}}, "", false},
		{"none", http.Header{}, "", false},
	} {
		got, ok := Gemini{}.ClientKey(tt.h)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s: %q %v, want %q %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

func TestGeminiInjectAuth(t *testing.T) {
	h := http.Header{"x-goog-api-key": {"client"}, "Authorization": {"Bearer client"}}
	Gemini{}.StripCredentials(h)
	Gemini{}.InjectAuth(h, secret.New(testUpstreamKey))
	if len(h) != 1 || h.Get("X-Goog-Api-Key") != testUpstreamKey {
		t.Fatalf("headers %v", h)
	}
	if mustLookup(t, "gemini").UpstreamPath("", "/v1beta/models/m:generateContent") != "/v1beta/models/m:generateContent" {
		t.Fatal("upstream path")
	}
}

// TestGeminiWriteError: Google's error shape, the code as an ErrorInfo
// reason, and Retry-After as a RetryInfo delay, which Gemini CLI reads.
func TestGeminiWriteError(t *testing.T) {
	w := httptest.NewRecorder()
	w.Header().Set("Retry-After", "7")
	Gemini{}.WriteError(w, http.StatusTooManyRequests, "rate_limit_exceeded", "slow down")
	var body struct {
		Error struct {
			Code    int
			Message string
			Status  string
			Details []map[string]any
		}
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || w.Code != 429 || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	e := body.Error
	if e.Code != 429 || e.Message != "slow down" || e.Status != "RESOURCE_EXHAUSTED" || len(e.Details) != 2 ||
		e.Details[0]["@type"] != "type.googleapis.com/google.rpc.ErrorInfo" || e.Details[0]["reason"] != "RATE_LIMIT_EXCEEDED" || e.Details[0]["domain"] != GeminiErrorDomain ||
		e.Details[1]["@type"] != "type.googleapis.com/google.rpc.RetryInfo" || e.Details[1]["retryDelay"] != "7s" {
		t.Fatalf("%s", w.Body)
	}
	// A refusal no wait cures: a RetryInfo long enough that Google's
	// clients stop rather than back off; a plain 429 gets none.
	for _, tt := range []struct {
		status      int
		shouldRetry string
		want        string
	}{{429, "false", `"retryDelay":"86400s"`}, {503, "false", `"retryDelay":"86400s"`}, {429, "", ""}, {403, "false", ""}} {
		w := httptest.NewRecorder()
		if tt.shouldRetry != "" {
			w.Header().Set("X-Should-Retry", tt.shouldRetry)
		}
		Gemini{}.WriteError(w, tt.status, "budget_exceeded", "the spend budget of $1.00 is spent")
		if got := w.Body.String(); strings.Contains(got, "RetryInfo") != (tt.want != "") || !strings.Contains(got, tt.want) {
			t.Errorf("%d with X-Should-Retry %q: %s", tt.status, tt.shouldRetry, got)
		}
	}
	for status, want := range map[int]string{400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
		413: "INVALID_ARGUMENT", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED", 500: "INTERNAL"} {
		if !strings.Contains(string(GeminiErrorBody(status, "", "m")), `"status":"`+want+`"`) {
			t.Errorf("%d: %s", status, GeminiErrorBody(status, "", "m"))
		}
	}
}

// TestGeminiModels: an upstream's entries keep their fields and take the
// id keygate lists; an entry keygate makes has a name and display name.
func TestGeminiModels(t *testing.T) {
	ms, err := Gemini{}.ParseModels([]byte(`{"models":[{"name":"models/gemini-2.5-flash","displayName":"Gemini 2.5 Flash","inputTokenLimit":1048576,"supportedGenerationMethods":["generateContent"]},{"name":"tunedModels/x"},{"name":""}],"nextPageToken":"n"}`))
	if err != nil || len(ms) != 1 || ms[0].ID != "gemini-2.5-flash" || ms[0].DisplayName != "Gemini 2.5 Flash" {
		t.Fatalf("%v %+v", err, ms)
	}
	ms[0].ID = "google/gemini-2.5-flash"
	ms = append(ms, Model{ID: "smart"})
	w := httptest.NewRecorder()
	Gemini{}.WriteModels(w, ms)
	var list struct {
		Models []map[string]any
	}
	if json.Unmarshal(w.Body.Bytes(), &list) != nil || len(list.Models) != 2 ||
		list.Models[0]["name"] != "models/google/gemini-2.5-flash" || list.Models[0]["inputTokenLimit"] != float64(1048576) ||
		list.Models[1]["name"] != "models/smart" || list.Models[1]["displayName"] != "smart" {
		t.Fatalf("%s", w.Body)
	}
	if ms, err := (Gemini{}).ParseModels([]byte(`{}`)); err != nil || len(ms) != 0 {
		t.Fatalf("empty list: %v %v", ms, err)
	}
	if _, err := (Gemini{}).ParseModels([]byte(`[]`)); err == nil {
		t.Fatal("a list that is not an object")
	}
}

func TestParseGeminiPath(t *testing.T) {
	for _, tt := range []struct {
		path string
		want GeminiCall
		ok   bool
	}{
		{"/v1beta/models/gemini-2.5-flash:generateContent", GeminiCall{"v1beta", "gemini-2.5-flash", GeminiGenerate}, true},
		{"/v1/models/gemini-2.5-pro:streamGenerateContent", GeminiCall{"v1", "gemini-2.5-pro", GeminiStreamGenerate}, true},
		{"/v1alpha/models/google/gemini-2.0-flash-001:countTokens", GeminiCall{"v1alpha", "google/gemini-2.0-flash-001", GeminiCountTokens}, true},
		{"/v1beta/models/gemini-2.5-flash", GeminiCall{"v1beta", "gemini-2.5-flash", ""}, true},
		{"/v1beta/models/gemini-2.5-flash:embedContent", GeminiCall{}, false},
		{"/v2/models/gemini:generateContent", GeminiCall{}, false},
		{"/v1beta/tunedModels/x:generateContent", GeminiCall{}, false},
		{"/v1beta/models/", GeminiCall{}, false},
		{"/v1beta/models/../admin:generateContent", GeminiCall{}, false},
		{"/v1beta/models/a/../b:generateContent", GeminiCall{}, false},
		{"/v1beta/models/a/b/c:generateContent", GeminiCall{}, false},
		{"/v1beta/models/a/:generateContent", GeminiCall{}, false},
		{"/v1beta/models/.hidden:generateContent", GeminiCall{}, false},
		{"/v1beta/models/a?b:generateContent", GeminiCall{}, false},
		{"/v1beta/models/a%2Fb:generateContent", GeminiCall{}, false},
		{"/v1beta/models/:generateContent", GeminiCall{}, false},
	} {
		got, err := ParseGeminiPath(tt.path)
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("%s: %+v %v", tt.path, got, err)
		}
	}
	c := GeminiCall{"v1beta", "google/gemini-2.5-flash", GeminiStreamGenerate}
	if got := c.Path("gemini-2.5-flash"); got != "/v1beta/models/gemini-2.5-flash:streamGenerateContent" {
		t.Fatal(got)
	}
	for path, want := range map[string]bool{"/v1beta/models": true, "/v1beta/models/x": true, "/v1/models/x:generateContent": true,
		"/v1/models": false, "/v1/models/gpt-4o": false, "/v1beta/modelsx": false, "/v1/chat/completions": false} {
		if IsGeminiPath(path) != want {
			t.Errorf("IsGeminiPath(%q) = %v", path, !want)
		}
	}
}
