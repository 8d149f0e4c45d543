package usage

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/fakeprovider"
)

// captureGemini asks a fake Gemini for an answer on path (with query)
// and returns it as the proxy reads it.
func captureGemini(t *testing.T, pathAndQuery, body string) []byte {
	t.Helper()
	opts := testOptions()
	opts.APIKey = testKey
	fake := fakeprovider.NewGemini(opts)
	srv := httptest.NewServer(fake)
	defer srv.Close()
	defer fake.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+pathAndQuery, strings.NewReader(body))
	req.Header.Set("x-goog-api-key", testKey)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d %s", pathAndQuery, resp.StatusCode, b)
	}
	return b
}

const geminiBody = `{"systemInstruction":{"parts":[{"text":"be brief"}]},"contents":[{"role":"user","parts":[{"text":"count to twelve for me please"}]}]}`

// TestGeminiFakeAnswers: the usage of a fake Gemini's answer is the same
// read from one JSON answer, a JSON array of chunks and an SSE stream cut
// into writes anywhere.
func TestGeminiFakeAnswers(t *testing.T) {
	want := Usage{InputTokens: 8, OutputTokens: 11, Complete: true} // the reply has eleven words
	got, err := FromJSON(DialectGemini, captureGemini(t, "/v1beta/models/gemini-2.5-flash:generateContent", geminiBody))
	if err != nil || got != want {
		t.Fatalf("generateContent: %+v %v, want %+v", got, err, want)
	}
	got, err = FromJSON(DialectGemini, captureGemini(t, "/v1beta/models/gemini-2.5-flash:streamGenerateContent", geminiBody))
	if err != nil || got != want {
		t.Fatalf("JSON array stream: %+v %v, want %+v", got, err, want)
	}
	sse := captureGemini(t, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", geminiBody)
	quoted, _ := json.Marshal(testReply)
	want.StreamedBytes = int64(len(quoted) - 2)
	for _, d := range []string{DialectGemini, ""} {
		if got := meter(d, sse); got != want {
			t.Fatalf("SSE read as %q: %+v, want %+v", d, got, want)
		}
	}
	for i := 0; i <= len(sse); i++ {
		m := NewStreamMeter(DialectGemini)
		m.Write([]byte(string(sse[:i])))
		m.Write([]byte(string(sse[i:])))
		if got := m.Usage(); got != want {
			t.Fatalf("split at %d: %+v, want %+v", i, got, want)
		}
	}
	// Cut before its last chunk, the stream has the prompt and no final figures.
	cut := sse[:strings.LastIndex(string(sse), "data: ")]
	if got := meter(DialectGemini, cut); got.Complete || got.InputTokens != 8 || got.OutputTokens != 0 || got.StreamedBytes == 0 {
		t.Fatalf("cut stream: %+v", got)
	}
	// Other dialects do not read Gemini's figures.
	for _, d := range []string{DialectOpenAI, DialectAnthropic} {
		if got := meter(d, sse); got.InputTokens != 0 || got.OutputTokens != 0 || got.Complete {
			t.Fatalf("%s read Gemini's stream: %+v", d, got)
		}
	}
}

func TestGeminiFromJSONShapes(t *testing.T) {
	for _, tt := range []struct {
		name, body string
		want       Usage
		err        bool
	}{
		{"thinking and tools", `{"candidates":[],"usageMetadata":{"promptTokenCount":100,"toolUsePromptTokenCount":20,"candidatesTokenCount":30,"thoughtsTokenCount":400,"cachedContentTokenCount":60,"totalTokenCount":550}}`,
			Usage{InputTokens: 120, OutputTokens: 430, CacheReadTokens: 60, Complete: true}, false},
		{"prompt only", `{"usageMetadata":{"promptTokenCount":7,"totalTokenCount":7}}`, Usage{InputTokens: 7, Complete: true}, false},
		{"no usage", `{"candidates":[{"content":{"parts":[{"text":"hi"}]}}]}`, Usage{}, false},
		{"null usage", `{"usageMetadata":null}`, Usage{}, false},
		{"last duplicate wins", `{"usageMetadata":{"promptTokenCount":1},"usageMetadata":{"promptTokenCount":2}}`, Usage{InputTokens: 2, Complete: true}, false},
		{"escaped key is the key", `{"usage\u004detadata":{"promptTokenCount":3}}`, Usage{InputTokens: 3, Complete: true}, false},
		{"snake case is not Gemini's", `{"usage_metadata":{"prompt_token_count":3}}`, Usage{}, false},
		{"nested usage is not the answer's", `{"candidates":[{"usageMetadata":{"promptTokenCount":9}}]}`, Usage{}, false},
		{"saturates", `{"usageMetadata":{"candidatesTokenCount":9223372036854775807,"thoughtsTokenCount":5}}`, Usage{OutputTokens: 1<<63 - 1, Complete: true}, false},
		{"array", `[{"usageMetadata":{"promptTokenCount":4}},{"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":6}}]`, Usage{InputTokens: 4, OutputTokens: 6, Complete: true}, false},
		{"array cut off", `[{"usageMetadata":{"promptTokenCount":4}},{"usageMeta`, Usage{InputTokens: 4}, false},
		{"empty array", `[]`, Usage{}, false},
		{"count is a string", `{"usageMetadata":{"promptTokenCount":"4"}}`, Usage{}, true},
		{"usage is a list", `{"usageMetadata":[1]}`, Usage{}, true},
		{"trailing data", `{"usageMetadata":{"promptTokenCount":4}} {}`, Usage{}, true},
		{"not JSON", `data: {}`, Usage{}, true},
	} {
		got, err := FromJSON(DialectGemini, []byte(tt.body))
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("%s: %+v %v, want %+v (error %v)", tt.name, got, err, tt.want, tt.err)
		}
	}
}
