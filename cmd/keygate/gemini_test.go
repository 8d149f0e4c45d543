package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/genai"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/fakeprovider"
)

// geminiUpstream is a fake of Gemini's native API with a key made for
// this run, registered in keygate as provider "google" (dialect gemini).
type geminiUpstream struct {
	fake *fakeprovider.Server
	url  string
	key  string
}

func newGeminiUpstream(t *testing.T, in *instance, opts fakeprovider.Options) *geminiUpstream {
	t.Helper()
	u := &geminiUpstream{key: canary("gemini")}
	opts.APIKey = u.key
	u.fake = fakeprovider.NewGemini(opts)
	srv := httptest.NewServer(u.fake)
	t.Cleanup(func() { u.fake.Close(); srv.Close() })
	u.url = srv.URL
	in.mustCLI(map[string]string{"FAKE_GEMINI_KEY": u.key}, "",
		"provider", "add", "google", "--dialect", "gemini", "--base-url", u.url, "--api-key-env", "FAKE_GEMINI_KEY", "--models", "gemini-*")
	return u
}

// genaiClient is the official Google Gen AI SDK for Go pointed at keygate
// with a keygate key, on API version version ("" for the SDK's own).
func genaiClient(t *testing.T, gateway, key, version string, hc *http.Client) *genai.Client {
	t.Helper()
	one := int32(1)
	c, err := genai.NewClient(context.Background(), &genai.ClientConfig{
		APIKey: key, Backend: genai.BackendGeminiAPI, HTTPClient: hc,
		HTTPOptions: genai.HTTPOptions{BaseURL: gateway, APIVersion: version, RetryOptions: &genai.HTTPRetryOptions{Attempts: &one}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestGeminiSDKThroughKeygate: the official Go SDK calls Gemini's native
// API through keygate with a keygate key: it generates, streams, counts
// tokens and lists models, on v1beta and v1. The provider sees only its
// real key, as x-goog-api-key; the client never sees it; a model the key
// may not use is refused in Google's error shape before anything goes
// upstream; usage and spend are recorded from usageMetadata; every call is
// on the audit trail.
func TestGeminiSDKThroughKeygate(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Log.Requests = true
	in := start(t, cfg, "")
	up := newGeminiUpstream(t, in, fakeprovider.Options{})
	key := in.createKey("--name", "gemini-app", "--allow-model", "gemini-2.5-flash*", "--budget", "5usd/day")
	rec := &recorder{}
	ctx := context.Background()
	reply := up.fake.ReplyText() // nine words: the fake's candidatesTokenCount

	for _, version := range []string{"v1beta", ""} { // "": the SDK's default, v1
		c := genaiClient(t, in.addrs.Gateway, key, version, &http.Client{Transport: rec})
		resp, err := c.Models.GenerateContent(ctx, "gemini-2.5-flash", genai.Text("one two three"), nil)
		if err != nil || resp.Text() != reply {
			t.Fatalf("%s generate: %v %+v", version, err, resp)
		}
		if u := resp.UsageMetadata; u == nil || u.PromptTokenCount != 3 || u.CandidatesTokenCount != 9 {
			t.Fatalf("%s usage %+v", version, resp.UsageMetadata)
		}
		var text strings.Builder
		for r, err := range c.Models.GenerateContentStream(ctx, "gemini-2.5-flash", genai.Text("four five"), nil) {
			if err != nil {
				t.Fatalf("%s stream: %v", version, err)
			}
			text.WriteString(r.Text())
		}
		if text.String() != reply {
			t.Fatalf("%s stream: %q", version, text.String())
		}
		ct, err := c.Models.CountTokens(ctx, "gemini-2.5-flash", genai.Text("six seven eight nine"), nil)
		if err != nil || ct.TotalTokens != 4 {
			t.Fatalf("%s count tokens: %v %+v", version, err, ct)
		}
		page, err := c.Models.List(ctx, nil)
		if err != nil {
			t.Fatalf("%s list: %v", version, err)
		}
		var names []string
		for _, m := range page.Items {
			names = append(names, m.Name)
		}
		if !slices.Equal(names, []string{"models/gemini-2.5-flash", "models/gemini-2.5-flash-lite"}) || page.Items[0].InputTokenLimit == 0 {
			t.Fatalf("%s list shows %v: only the models the key may use, with Google's fields", version, names)
		}
		if m, err := c.Models.Get(ctx, "gemini-2.5-flash", nil); err != nil || m.DisplayName != "Gemini 2.5 Flash" {
			t.Fatalf("%s get: %v %+v", version, err, m)
		}

		// A model the key may not use: refused in Google's shape, and
		// nothing reaches the provider.
		before := up.fake.RequestCount()
		_, err = c.Models.GenerateContent(ctx, "gemini-2.5-pro", genai.Text("hi"), nil)
		var ae genai.APIError
		if !errors.As(err, &ae) || ae.Code != http.StatusForbidden || ae.Status != "PERMISSION_DENIED" || len(ae.Details) == 0 || ae.Details[0]["reason"] != "MODEL_NOT_ALLOWED" {
			t.Fatalf("%s: a model outside the key's scope: %v", version, err)
		}
		if _, err := c.Models.Get(ctx, "gemini-2.5-pro", nil); !errors.As(err, &ae) || ae.Code != http.StatusForbidden {
			t.Fatalf("%s: reading a model outside the key's scope: %v", version, err)
		}
		if n := up.fake.RequestCount(); n != before {
			t.Fatalf("%s: %d refused requests reached the provider", version, n-before)
		}
	}

	// The provider saw its real key as x-goog-api-key, never in the
	// query, and nothing of keygate's.
	for _, q := range up.fake.Requests() {
		if q.Header.Get("X-Goog-Api-Key") != up.key || q.Header.Get("Authorization") != "" || strings.Contains(q.RawQuery, "key") {
			t.Fatalf("%s %s?%s: the provider must see only its own key, as x-goog-api-key", q.Method, q.Path, q.RawQuery)
		}
		for name, vs := range q.Header {
			if strings.Contains(strings.Join(vs, " "), key) {
				t.Fatalf("the provider saw the keygate key in %s", name)
			}
		}
	}
	if strings.Contains(rec.String(), up.key) {
		t.Fatal("the client saw the provider's key")
	}

	// Usage and spend come from usageMetadata: per round, 3+2 input and
	// 9+9 output tokens, at gemini-2.5-flash's $0.30 and $2.50 per
	// million, rounded up per call (24 micro-dollars each); token counts
	// cost nothing. The refusals count against the model refused.
	awaitCond(t, "the usage report to show the calls", func() (bool, string) {
		var u adminapi.KeyUsage
		decodeJSON(t, in.mustCLI(nil, "", "--json", "key", "usage", "gemini-app"), &u)
		var flash, pro bool
		for _, r := range u.Rows {
			flash = flash || r.Model == "gemini-2.5-flash" && r.Requests == 6 && r.InputTokens == 10 && r.OutputTokens == 36 && r.MicroUSD == 96 && r.Denials == 0
			pro = pro || r.Model == "gemini-2.5-pro" && r.Requests == 0 && r.Denials >= 2
		}
		return flash && pro, jsonString(u.Rows)
	})

	// Every call is on the audit trail: allowed with their model and
	// provider, and the refusal with its reason.
	awaitCond(t, "the audit trail to show the calls", func() (bool, string) {
		evs := auditRequests(t, in)
		allowed, denied := 0, 0
		for _, ev := range evs {
			switch {
			case ev.Decision == "allow" && strings.Contains(ev.Resource, ":generateContent") && ev.Fields["provider"] == "google" && ev.Fields["model"] == "gemini-2.5-flash":
				allowed++
			case ev.Decision == "deny" && strings.Contains(ev.Resource, "models/gemini-2.5-pro:generateContent") && slices.Contains(ev.Reasons, "model_not_allowed"):
				denied++
			}
		}
		return allowed == 2 && denied == 2, strconv.Itoa(len(evs)) + " events"
	})
}

// TestGeminiQueryKeyStaysOut: a keygate key sent as ?key=, as Google's
// API takes one, authenticates the call, plain or streamed over SSE, and
// appears nowhere after: not upstream, not in the access log, not on the
// audit trail. Limits are settled from the answer's usageMetadata.
func TestGeminiQueryKeyStaysOut(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Log.Requests = true
	in := start(t, cfg, "")
	up := newGeminiUpstream(t, in, fakeprovider.Options{})
	key := in.createKey("--name", "query-key", "--quota", "1000000tokens/day")
	body := `{"contents":[{"role":"user","parts":[{"text":"one two three"}]}],"generationConfig":{"maxOutputTokens":100}}`
	call := func(path string) (*http.Response, string) {
		resp, err := http.Post(in.addrs.Gateway+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, got := call("/v1beta/models/gemini-2.5-flash:generateContent?key=" + key)
	if resp.StatusCode != http.StatusOK || !strings.Contains(got, up.fake.ReplyText()) {
		t.Fatalf("generate with ?key=: %d %s", resp.StatusCode, got)
	}
	// The reservation was the prompt's bytes/4 and maxOutputTokens; once
	// settled, the quota is charged the 3+9 tokens usageMetadata reported.
	reserve := int64(len(body)+3)/4 + 100
	if rem := resp.Header.Get("X-Ratelimit-Remaining-Tokens"); rem != strconv.FormatInt(1_000_000-reserve, 10) {
		t.Fatalf("remaining tokens after the first reservation: %q", rem)
	}
	time.Sleep(200 * time.Millisecond) // the settlement follows the answer's end
	resp, got = call("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key=" + key)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") || strings.Count(got, "data: ") != fakeprovider.DefaultChunks {
		t.Fatalf("stream with ?key=: %d %s", resp.StatusCode, got)
	}
	if rem := resp.Header.Get("X-Ratelimit-Remaining-Tokens"); rem != strconv.FormatInt(1_000_000-12-reserve, 10) {
		t.Fatalf("remaining tokens after one settled call and a second reservation: %q, want %d", rem, 1_000_000-12-reserve)
	}
	// A wrong ?key= is refused in Google's shape.
	resp, got = call("/v1beta/models/gemini-2.5-flash:generateContent?key=kg_live_notarealkey")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(got, `"status":"UNAUTHENTICATED"`) {
		t.Fatalf("a wrong key: %d %s", resp.StatusCode, got)
	}

	for _, q := range up.fake.Requests() {
		if strings.Contains(q.RawQuery, "key") || q.Header.Get("X-Goog-Api-Key") != up.key {
			t.Fatalf("%s?%s: the provider must see its own key as a header, and no key in the query", q.Path, q.RawQuery)
		}
	}
	if got := up.fake.Requests()[1].RawQuery; got != "alt=sse" {
		t.Fatalf("the stream's query upstream: %q, want alt=sse", got)
	}
	var evs []auditEvent
	awaitCond(t, "the audit trail to show the calls", func() (bool, string) {
		evs = auditRequests(t, in)
		return len(evs) >= 2, strconv.Itoa(len(evs)) + " events"
	})
	trail := in.mustCLI(nil, "", "--json", "audit", "search", "--since", "1h", "--limit", "1000")
	for where, text := range map[string]string{"the logs": in.stderr.String(), "stdout": in.stdout.String(), "the audit trail": trail} {
		if strings.Contains(text, key) || strings.Contains(text, "kg_live_notarealkey") || strings.Contains(text, up.key) {
			t.Errorf("a credential appears in %s", where)
		}
	}
	if !strings.Contains(in.stderr.String(), "/v1beta/models/gemini-2.5-flash:streamGenerateContent") {
		t.Error("expected access-log lines to search")
	}
}

// TestGeminiRefusalsInGoogleShape: what keygate refuses on Gemini's
// routes reads as Google's errors: no key, a model served by a provider
// of another API, a path keygate does not serve.
func TestGeminiRefusalsInGoogleShape(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	in := start(t, cfg, "")
	up := newGeminiUpstream(t, in, fakeprovider.Options{})
	oa := newUpstreams(t, fakeprovider.Options{}, fakeprovider.Options{})
	in.register(oa)
	key := in.createKey("--name", "any")
	for _, tt := range []struct {
		path, key string
		status    int
		google    string
	}{
		{"/v1beta/models/gemini-2.5-flash:generateContent", "", 401, "UNAUTHENTICATED"},
		{"/v1beta/models/gpt-4o-mini:generateContent", key, 400, "INVALID_ARGUMENT"},             // an OpenAI provider's model
		{"/v1beta/models/gemini-2.5-flash:embedContent", key, 404, "NOT_FOUND"},                  // not served
		{"/v1beta/models/google/..%2Fadmin:generateContent", key, 404, "NOT_FOUND"},              // no way out of the path
		{"/v1beta/models/openai/gemini-2.5-flash:generateContent", key, 400, "INVALID_ARGUMENT"}, // prefixed to the wrong API
	} {
		code, body := postJSON(t, in.addrs.Gateway+tt.path, "", `{"contents":[{"parts":[{"text":"hi"}]}]}`, "x-goog-api-key", tt.key)
		var e struct {
			Error struct {
				Code    int
				Message string
				Status  string
			}
		}
		if json.Unmarshal([]byte(body), &e) != nil || code != tt.status || e.Error.Code != tt.status || e.Error.Status != tt.google || e.Error.Message == "" {
			t.Errorf("%s: %d %s", tt.path, code, body)
		}
	}
	if n := up.fake.RequestCount() + oa.openai.RequestCount(); n != 0 {
		t.Fatalf("%d refused requests reached a provider", n)
	}
	// A call whose worst case is over the key's budget: Google's
	// RESOURCE_EXHAUSTED, naming Gemini's field to lower.
	tight := in.createKey("--name", "tight", "--budget", "0.01usd")
	code, body := postJSON(t, in.addrs.Gateway+"/v1beta/models/gemini-2.5-flash:generateContent", "",
		`{"contents":[{"parts":[{"text":"hi"}]}],"generationConfig":{"maxOutputTokens":100000}}`, "x-goog-api-key", tight)
	if code != http.StatusTooManyRequests || !strings.Contains(body, `"status":"RESOURCE_EXHAUSTED"`) || !strings.Contains(body, "BUDGET_EXCEEDED") ||
		!strings.Contains(body, "lower generationConfig.maxOutputTokens") || up.fake.RequestCount() != 0 {
		t.Fatalf("a call over the budget: %d %s", code, body)
	}
	// An OpenAI client asking for a Gemini-native model is told where to go.
	code, body = postJSON(t, in.addrs.Gateway+"/v1/chat/completions", key, `{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"hi"}]}`)
	if code != 400 || !strings.Contains(body, "wrong_api_dialect") || !strings.Contains(body, "generateContent") {
		t.Fatalf("an OpenAI call for a Gemini-native model: %d %s", code, body)
	}
}

// auditEvent is what these tests read of an audit event.
type auditEvent struct {
	Type, Decision, Resource string
	Reasons                  []string
	Fields                   map[string]string
}

// auditRequests returns the request events of the last hour.
func auditRequests(t *testing.T, in *instance) []auditEvent {
	t.Helper()
	var evs adminapi.AuditEvents
	decodeJSON(t, in.mustCLI(nil, "", "--json", "audit", "search", "--type", "request", "--since", "1h", "--limit", "1000"), &evs)
	out := make([]auditEvent, 0, len(evs.Events))
	for _, raw := range evs.Events {
		var ev auditEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

// awaitCond polls cond until it holds, for up to 15 seconds; what cond
// reports with its last failure explains it.
func awaitCond(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited in vain for %s: %s", what, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
