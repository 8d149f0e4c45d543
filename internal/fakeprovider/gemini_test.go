package fakeprovider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/genai"
)

func newGeminiFake(t *testing.T, opts Options) (*Server, *httptest.Server) {
	t.Helper()
	if opts.APIKey == "" {
		opts.APIKey = testKey
	}
	fake := NewGemini(opts)
	ts := httptest.NewServer(fake)
	t.Cleanup(func() {
		fake.Close()
		ts.Close()
	})
	return fake, ts
}

// geminiClient is the official Google Gen AI SDK pointed at the fake,
// without retries, on API version version ("" for the SDK's default).
func geminiClient(t *testing.T, ts *httptest.Server, key, version string) *genai.Client {
	t.Helper()
	one := int32(1)
	c, err := genai.NewClient(context.Background(), &genai.ClientConfig{
		APIKey: key, Backend: genai.BackendGeminiAPI, HTTPClient: ts.Client(),
		HTTPOptions: genai.HTTPOptions{BaseURL: ts.URL, APIVersion: version, RetryOptions: &genai.HTTPRetryOptions{Attempts: &one}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestGeminiWithTheSDK: the official SDK generates, streams, counts
// tokens and lists models against the fake, on v1beta and v1, sending the
// key as x-goog-api-key.
func TestGeminiWithTheSDK(t *testing.T) {
	for _, version := range []string{"v1beta", "v1"} {
		t.Run(version, func(t *testing.T) {
			fake, ts := newGeminiFake(t, Options{})
			c := geminiClient(t, ts, testKey, version)
			ctx := context.Background()
			resp, err := c.Models.GenerateContent(ctx, "gemini-2.5-flash", genai.Text("say hello to the tests"), nil)
			if err != nil || resp.Text() != fake.ReplyText() {
				t.Fatalf("generate: %v %+v", err, resp)
			}
			if u := resp.UsageMetadata; u == nil || u.PromptTokenCount != 5 || u.CandidatesTokenCount == 0 || u.TotalTokenCount != u.PromptTokenCount+u.CandidatesTokenCount {
				t.Fatalf("usage %+v", resp.UsageMetadata)
			}
			if resp.Candidates[0].FinishReason != genai.FinishReasonStop {
				t.Fatalf("finish reason %q", resp.Candidates[0].FinishReason)
			}
			var text strings.Builder
			chunks := 0
			var last *genai.GenerateContentResponse
			for r, err := range c.Models.GenerateContentStream(ctx, "gemini-2.5-flash", genai.Text("stream"), nil) {
				if err != nil {
					t.Fatal(err)
				}
				text.WriteString(r.Text())
				chunks++
				last = r
			}
			if text.String() != fake.ReplyText() || chunks != DefaultChunks || last.UsageMetadata.CandidatesTokenCount == 0 {
				t.Fatalf("stream: %d chunks, %q", chunks, text.String())
			}
			ct, err := c.Models.CountTokens(ctx, "gemini-2.5-pro", genai.Text("four words right here"), nil)
			if err != nil || ct.TotalTokens != 4 {
				t.Fatalf("count tokens: %v %+v", err, ct)
			}
			page, err := c.Models.List(ctx, nil)
			if err != nil || len(page.Items) != len(DefaultGeminiModels()) || page.Items[0].Name != "models/gemini-2.5-pro" || page.Items[0].InputTokenLimit == 0 {
				t.Fatalf("list: %v %+v", err, page.Items)
			}
			m, err := c.Models.Get(ctx, "gemini-2.5-flash", nil)
			if err != nil || m.DisplayName != "Gemini 2.5 Flash" {
				t.Fatalf("get: %v %+v", err, m)
			}
			for _, q := range fake.Requests() {
				if q.Header.Get("X-Goog-Api-Key") != testKey || strings.Contains(q.RawQuery, "key=") {
					t.Fatalf("%s %s?%s: the SDK sends its key as x-goog-api-key", q.Method, q.Path, q.RawQuery)
				}
				if !strings.HasPrefix(q.Path, "/"+version+"/models") {
					t.Fatalf("path %s", q.Path)
				}
			}
		})
	}
}

// TestGeminiStreamForms: streamGenerateContent answers server-sent events
// with ?alt=sse (data: lines ended by a blank CRLF line) and one JSON
// array without it; the last chunk carries finishReason and the
// candidates' count.
func TestGeminiStreamForms(t *testing.T) {
	_, ts := newGeminiFake(t, Options{})
	post := func(query string) (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1beta/models/gemini-2.5-flash:streamGenerateContent"+query,
			strings.NewReader(`{"contents":[{"role":"user","parts":[{"text":"one two three"}]}]}`))
		req.Header.Set("x-goog-api-key", testKey)
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, body := post("?alt=sse")
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
	}
	events := strings.Split(strings.TrimSuffix(string(body), "\r\n\r\n"), "\r\n\r\n")
	if len(events) != DefaultChunks {
		t.Fatalf("%d events: %q", len(events), body)
	}
	for i, ev := range events {
		data, ok := strings.CutPrefix(ev, "data: ")
		var chunk struct {
			Candidates []struct {
				FinishReason string
			}
			UsageMetadata struct {
				PromptTokenCount, CandidatesTokenCount int
			}
		}
		if !ok || json.Unmarshal([]byte(data), &chunk) != nil || chunk.UsageMetadata.PromptTokenCount != 3 {
			t.Fatalf("event %d: %q", i, ev)
		}
		final := i == len(events)-1
		if (chunk.Candidates[0].FinishReason == "STOP") != final || (chunk.UsageMetadata.CandidatesTokenCount > 0) != final {
			t.Fatalf("event %d: %q", i, ev)
		}
	}
	resp, body = post("")
	var arr []json.RawMessage
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || json.Unmarshal(body, &arr) != nil || len(arr) != DefaultChunks {
		t.Fatalf("array form: %s %q", resp.Header.Get("Content-Type"), body)
	}
	if !bytes.Contains(arr[len(arr)-1], []byte(`"finishReason":"STOP"`)) {
		t.Fatalf("last element %s", arr[len(arr)-1])
	}
}

// TestGeminiRefusals: a wrong key, no key, an unknown model and a
// configured failure come back in Google's error shape, which the SDK
// reads into an APIError.
func TestGeminiRefusals(t *testing.T) {
	_, ts := newGeminiFake(t, Options{})
	ctx := context.Background()
	for _, tt := range []struct {
		key, model string
		code       int
		status     string
	}{
		{"test-wrong-key", "gemini-2.5-flash", 400, "INVALID_ARGUMENT"},
		{testKey, "gemini-0-unknown", 404, "NOT_FOUND"},
	} {
		_, err := geminiClient(t, ts, tt.key, "").Models.GenerateContent(ctx, tt.model, genai.Text("hi"), nil)
		var ae genai.APIError
		if !errors.As(err, &ae) || ae.Code != tt.code || ae.Status != tt.status || ae.Message == "" {
			t.Fatalf("%s: %v", tt.model, err)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1beta/models/gemini-2.5-flash:generateContent", strings.NewReader(`{"contents":[]}`))
	resp, err := ts.Client().Do(req)
	if err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("no key: %v %v", err, resp.Status)
	}
	resp.Body.Close()

	_, failing := newGeminiFake(t, Options{FailStatus: http.StatusTooManyRequests})
	_, err = geminiClient(t, failing, testKey, "").Models.GenerateContent(ctx, "gemini-2.5-flash", genai.Text("hi"), nil)
	var ae genai.APIError
	if !errors.As(err, &ae) || ae.Code != 429 || ae.Status != "RESOURCE_EXHAUSTED" || len(ae.Details) != 2 {
		t.Fatalf("429: %v", err)
	}
}

// TestGeminiQueryKey: the fake takes the key as ?key= too, as Google
// does, so a test can see which form reached it.
func TestGeminiQueryKey(t *testing.T) {
	fake, ts := newGeminiFake(t, Options{})
	resp, err := ts.Client().Get(ts.URL + "/v1beta/models?key=" + testKey)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%v %v", err, resp.Status)
	}
	resp.Body.Close()
	if q := fake.Requests()[0]; q.RawQuery != "key="+testKey {
		t.Fatalf("recorded query %q", q.RawQuery)
	}
}
