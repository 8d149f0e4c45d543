package fakeprovider

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// benchServe drives the handler directly so the numbers show the fake's own
// per-request cost, without the network stack.
func benchServe(b *testing.B, fake *Server, path, body string, header map[string]string) {
	b.Helper()
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		for k, v := range header {
			req.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		fake.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}

func BenchmarkOpenAIChat(b *testing.B) {
	fake := NewOpenAI(Options{APIKey: testKey, NoRecord: true, ReplyBytes: 1024})
	benchServe(b, fake, "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello there"}]}`, openAIHeaders())
}

func BenchmarkOpenAIChatStream(b *testing.B) {
	fake := NewOpenAI(Options{APIKey: testKey, NoRecord: true, ReplyBytes: 1024, Chunks: 20})
	benchServe(b, fake, "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello there"}],"stream":true}`, openAIHeaders())
}

func BenchmarkAnthropicMessagesStream(b *testing.B) {
	fake := NewAnthropic(Options{APIKey: testKey, NoRecord: true, ReplyBytes: 1024, Chunks: 20})
	benchServe(b, fake, "/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"hello there"}],"stream":true}`, anthropicHeaders())
}
