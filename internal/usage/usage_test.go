package usage

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/fakeprovider"
)

const testKey = "test-upstream-key-123"

// capture sends body to path on a fake provider and returns the raw answer.
func capture(t testing.TB, anthropic bool, path, body string) []byte {
	t.Helper()
	var h http.Handler
	opts := fakeprovider.Options{APIKey: testKey, Chunks: 12, ReplyText: "one two three four five six seven eight nine ten eleven twelve"}
	if anthropic {
		h = fakeprovider.NewAnthropic(opts)
	} else {
		h = fakeprovider.NewOpenAI(opts)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("x-api-key", testKey)
	req.Header.Set("anthropic-version", "2023-06-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
	}
	return b
}

type endpoint struct {
	name      string
	anthropic bool
	path      string
	plain     string // request body; the streaming variant adds stream options
	stream    string
}

var endpoints = []endpoint{
	{"chat", false, "/v1/chat/completions",
		`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"count to twelve please"}]}`,
		`{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"count to twelve please"}]}`},
	{"completions", false, "/v1/completions",
		`{"model":"gpt-3.5-turbo-instruct","prompt":"once upon a time"}`,
		`{"model":"gpt-3.5-turbo-instruct","stream":true,"stream_options":{"include_usage":true},"prompt":"once upon a time"}`},
	{"responses", false, "/v1/responses",
		`{"model":"gpt-4o-mini","input":"tell me a story"}`,
		`{"model":"gpt-4o-mini","stream":true,"input":"tell me a story"}`},
	{"messages", true, "/v1/messages",
		`{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"hello there"}]}`,
		`{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hello there"}]}`},
}

// expected decodes a plain answer's usage with encoding/json, independently of FromJSON.
func expected(t *testing.T, body []byte) (in, out int64) {
	var r struct {
		Usage map[string]any `json:"usage"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Usage == nil {
		t.Fatalf("no usage in %s", body)
	}
	num := func(keys ...string) int64 {
		for _, k := range keys {
			if v, ok := r.Usage[k].(float64); ok {
				return int64(v)
			}
		}
		return 0
	}
	return num("prompt_tokens", "input_tokens"), num("completion_tokens", "output_tokens")
}

func TestPlainAndStreamedUsageAgree(t *testing.T) {
	for _, ep := range endpoints {
		t.Run(ep.name, func(t *testing.T) {
			plain := capture(t, ep.anthropic, ep.path, ep.plain)
			in, out := expected(t, plain)
			got, err := FromJSON(plain)
			if err != nil || !got.Complete || got.InputTokens != in || got.OutputTokens != out || in == 0 || out == 0 {
				t.Fatalf("FromJSON = %+v, %v; want in=%d out=%d", got, err, in, out)
			}
			stream := capture(t, ep.anthropic, ep.path, ep.stream)
			var m Meter
			m.Write(stream)
			if s := m.Usage(); s != got {
				t.Fatalf("stream usage %+v, plain %+v", s, got)
			}
		})
	}
	emb := capture(t, false, "/v1/embeddings", `{"model":"text-embedding-3-small","input":["alpha beta gamma","delta"]}`)
	in, _ := expected(t, emb)
	if got, err := FromJSON(emb); err != nil || !got.Complete || got.InputTokens != in || in == 0 {
		t.Fatalf("embeddings %+v %v", got, err)
	}
}

// TestMeterAnySplit: however the stream is cut into writes, and with CRLF
// line endings, the result is the same.
func TestMeterAnySplit(t *testing.T) {
	for _, ep := range endpoints {
		stream := capture(t, ep.anthropic, ep.path, ep.stream)
		var whole Meter
		whole.Write(stream)
		want := whole.Usage()
		for i := 0; i <= len(stream); i++ {
			var m Meter
			m.Write(stream[:i])
			m.Write(stream[i:])
			if m.Usage() != want {
				t.Fatalf("%s split at %d: %+v, want %+v", ep.name, i, m.Usage(), want)
			}
		}
		var bytewise Meter
		for i := range stream {
			bytewise.Write(stream[i : i+1])
		}
		if bytewise.Usage() != want {
			t.Fatalf("%s byte by byte: %+v", ep.name, bytewise.Usage())
		}
		var crlf Meter
		crlf.Write(bytes.ReplaceAll(stream, []byte("\n"), []byte("\r\n")))
		if crlf.Usage() != want {
			t.Fatalf("%s with CRLF: %+v", ep.name, crlf.Usage())
		}
	}
}

// TestTruncatedStreamIsIncomplete: a stream cut before its final usage
// reports what it saw, marked incomplete.
func TestTruncatedStreamIsIncomplete(t *testing.T) {
	stream := capture(t, true, "/v1/messages", endpoints[3].stream)
	cut := bytes.Index(stream, []byte("event: message_delta"))
	var m Meter
	m.Write(stream[:cut])
	u := m.Usage()
	if u.Complete || u.InputTokens == 0 {
		t.Fatalf("cut Anthropic stream: %+v (want input tokens from message_start, not complete)", u)
	}
	chat := capture(t, false, "/v1/chat/completions", endpoints[0].stream)
	var c Meter
	c.Write(chat[:bytes.LastIndex(chat, []byte(`"usage"`))])
	if c.Usage().Complete {
		t.Fatal("cut OpenAI stream must not be complete")
	}
}

func TestOverlongLineIsSkipped(t *testing.T) {
	var m Meter
	m.Write([]byte("data: " + strings.Repeat("x", maxLine+10)))
	m.Write([]byte(`"usage":{"prompt_tokens":5}}` + "\n"))
	m.Write([]byte(`data: {"usage":{"prompt_tokens":7,"completion_tokens":3}}` + "\n"))
	if u := m.Usage(); u.InputTokens != 7 || u.OutputTokens != 3 || !u.Complete {
		t.Fatalf("%+v", u)
	}
	if _, err := FromJSON([]byte("not json")); err == nil {
		t.Fatal("FromJSON must refuse non-JSON")
	}
}

func FuzzMeter(f *testing.F) {
	f.Add([]byte("data: {\"usage\":{\"prompt_tokens\":1}}\n\n"), 3)
	f.Add([]byte("event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":9}}\r\n"), 10)
	f.Fuzz(func(t *testing.T, b []byte, split int) {
		var a, c Meter
		a.Write(b)
		if split < 0 {
			split = -split
		}
		split %= len(b) + 1
		c.Write(b[:split])
		c.Write(b[split:])
		if a.Usage() != c.Usage() {
			t.Fatalf("split changed the result: %+v vs %+v", a.Usage(), c.Usage())
		}
	})
}

func benchStream(b *testing.B, anthropic bool, ep endpoint) {
	stream := capture(b, anthropic, ep.path, ep.stream)
	events := bytes.SplitAfter(stream, []byte("\n\n"))
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		var m Meter
		for _, e := range events {
			m.Write(e)
		}
		if !m.Usage().Complete {
			b.Fatal("no usage")
		}
	}
}

func BenchmarkMeterOpenAIStream(b *testing.B)    { benchStream(b, false, endpoints[0]) }
func BenchmarkMeterAnthropicStream(b *testing.B) { benchStream(b, true, endpoints[3]) }

func BenchmarkFromJSONChat(b *testing.B) {
	body := capture(b, false, "/v1/chat/completions", endpoints[0].plain)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := FromJSON(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFromJSONEmbeddings(b *testing.B) {
	inputs := make([]string, 200)
	for i := range inputs {
		inputs[i] = `"some text to embed"`
	}
	body := capture(b, false, "/v1/embeddings", `{"model":"text-embedding-3-small","dimensions":64,"input":[`+strings.Join(inputs, ",")+`]}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := FromJSON(body); err != nil {
			b.Fatal(err)
		}
	}
}
