package usage

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/keygate/keygate/internal/fakeprovider"
)

const testKey = "test-upstream-key-123"

// testReply is the fake upstreams' reply: twelve tokens, with characters
// that JSON escapes so content sizes count escapes.
const testReply = `one two "three" four five\six seven eight nine ten eleven twelve`

// capture sends body to path on a fake upstream of the dialect and returns
// the raw answer, exactly as keygate's proxy would read it.
func capture(tb testing.TB, dialect, path, body string, opts fakeprovider.Options) []byte {
	tb.Helper()
	opts.APIKey = testKey
	var fake *fakeprovider.Server
	if dialect == DialectAnthropic {
		fake = fakeprovider.NewAnthropic(opts)
	} else {
		fake = fakeprovider.NewOpenAI(opts)
	}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	defer fake.Close()
	req, err := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if dialect == DialectAnthropic {
		req.Header.Set("x-api-key", testKey)
		req.Header.Set("anthropic-version", "2023-06-01")
	} else {
		req.Header.Set("Authorization", "Bearer "+testKey)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("%s %s: %d %s", dialect, path, resp.StatusCode, b)
	}
	return b
}

// testOptions makes a fake stream its reply in a dozen deltas.
func testOptions() fakeprovider.Options {
	return fakeprovider.Options{Chunks: 12, ReplyText: testReply}
}

// call is one request to a fake upstream.
type call struct {
	name, dialect, path, body string
	stream                    bool
	// final reports whether the answer carries final usage.
	final bool
}

const (
	chatMessages = `"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"count to twelve for me please"}]`
	claudeBody   = `"model":"claude-sonnet-4-5","max_tokens":64,"system":"be brief","messages":[{"role":"user","content":"count to twelve for me please"}]`
)

func calls() []call {
	return []call{
		{"chat", DialectOpenAI, "/v1/chat/completions", `{"model":"gpt-4o-mini",` + chatMessages + `}`, false, true},
		{"chat stream include_usage", DialectOpenAI, "/v1/chat/completions", `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},` + chatMessages + `}`, true, true},
		{"chat stream without usage", DialectOpenAI, "/v1/chat/completions", `{"model":"gpt-4o-mini","stream":true,` + chatMessages + `}`, true, false},
		{"completions", DialectOpenAI, "/v1/completions", `{"model":"gpt-3.5-turbo-instruct","prompt":"once upon a time there was"}`, false, true},
		{"completions stream include_usage", DialectOpenAI, "/v1/completions", `{"model":"gpt-3.5-turbo-instruct","stream":true,"stream_options":{"include_usage":true},"prompt":"once upon a time there was"}`, true, true},
		{"completions stream without usage", DialectOpenAI, "/v1/completions", `{"model":"gpt-3.5-turbo-instruct","stream":true,"prompt":"once upon a time there was"}`, true, false},
		{"embeddings", DialectOpenAI, "/v1/embeddings", `{"model":"text-embedding-3-small","dimensions":256,"input":["alpha beta gamma","delta epsilon"]}`, false, true},
		{"embeddings base64", DialectOpenAI, "/v1/embeddings", `{"model":"text-embedding-3-small","encoding_format":"base64","input":"alpha beta gamma"}`, false, true},
		{"responses", DialectOpenAI, "/v1/responses", `{"model":"gpt-4o-mini","instructions":"be brief","input":"tell me a short story"}`, false, true},
		{"responses stream", DialectOpenAI, "/v1/responses", `{"model":"gpt-4o-mini","stream":true,"instructions":"be brief","input":"tell me a short story"}`, true, true},
		{"messages", DialectAnthropic, "/v1/messages", `{` + claudeBody + `}`, false, true},
		{"messages stream", DialectAnthropic, "/v1/messages", `{"stream":true,` + claudeBody + `}`, true, true},
	}
}

// refUsage reads a usage value with encoding/json, following the
// precedence FromJSON documents. It is the reference the tests hold the
// scanner to.
func refUsage(raw json.RawMessage) (u Usage, isObject bool, err error) {
	if raw == nil || string(raw) == "null" {
		return Usage{}, false, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return Usage{}, false, err
	}
	get := func(m map[string]json.RawMessage, k string) (int64, bool, error) {
		r, ok := m[k]
		if !ok || string(r) == "null" {
			return 0, false, nil
		}
		var v int64
		err := json.Unmarshal(r, &v)
		return v, err == nil, err
	}
	cached := func(k string) (int64, bool, error) {
		r, ok := m[k]
		if !ok || string(r) == "null" {
			return 0, false, nil
		}
		var d map[string]json.RawMessage
		if err := json.Unmarshal(r, &d); err != nil {
			return 0, false, err
		}
		return get(d, "cached_tokens")
	}
	first := func(dst *int64, fs ...func() (int64, bool, error)) error {
		for _, f := range fs {
			v, ok, err := f()
			if err != nil {
				return err
			}
			if ok {
				*dst = v
				break
			}
		}
		return nil
	}
	key := func(k string) func() (int64, bool, error) {
		return func() (int64, bool, error) { return get(m, k) }
	}
	// Every field is read so that a malformed one is an error regardless of precedence.
	errs := []error{
		first(new(int64), key("prompt_tokens")), first(new(int64), key("completion_tokens")),
		first(new(int64), func() (int64, bool, error) { return cached("prompt_tokens_details") }),
		first(new(int64), func() (int64, bool, error) { return cached("input_tokens_details") }),
		first(&u.InputTokens, key("input_tokens"), key("prompt_tokens")),
		first(&u.OutputTokens, key("output_tokens"), key("completion_tokens")),
		first(&u.CacheReadTokens, key("cache_read_input_tokens"),
			func() (int64, bool, error) { return cached("input_tokens_details") },
			func() (int64, bool, error) { return cached("prompt_tokens_details") }),
		first(&u.CacheWriteTokens, key("cache_creation_input_tokens")),
	}
	if err := errors.Join(errs...); err != nil {
		return Usage{}, false, err
	}
	u.Complete = true
	return u, true, nil
}

// refJSON reads a plain answer's usage with encoding/json.
func refJSON(t testing.TB, body []byte) Usage {
	t.Helper()
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		t.Fatalf("answer is not a JSON object: %v", err)
	}
	u, _, err := refUsage(top["usage"])
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// refStream reads a stream's usage and content size with encoding/json,
// event by event, as an SSE client would.
func refStream(t testing.TB, stream []byte) Usage {
	t.Helper()
	var u Usage
	merge := func(raw json.RawMessage, final bool) {
		got, ok, err := refUsage(raw)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return
		}
		var present map[string]json.RawMessage
		_ = json.Unmarshal(raw, &present)
		if _, ok := present["input_tokens"]; ok || present["prompt_tokens"] != nil {
			u.InputTokens = got.InputTokens
		}
		if present["output_tokens"] != nil || present["completion_tokens"] != nil {
			u.OutputTokens = got.OutputTokens
		}
		if present["cache_read_input_tokens"] != nil || present["prompt_tokens_details"] != nil || present["input_tokens_details"] != nil {
			u.CacheReadTokens = got.CacheReadTokens
		}
		if present["cache_creation_input_tokens"] != nil {
			u.CacheWriteTokens = got.CacheWriteTokens
		}
		u.Complete = u.Complete || final
	}
	text := func(raw json.RawMessage) {
		if len(raw) > 0 && raw[0] == '"' {
			u.StreamedBytes += int64(len(raw) - 2)
		}
	}
	for _, ev := range strings.Split(string(stream), "\n\n") {
		var data string
		for _, line := range strings.Split(ev, "\n") {
			if d, ok := strings.CutPrefix(line, "data: "); ok {
				data = d
			}
		}
		if data == "" || data == "[DONE]" {
			continue
		}
		var e struct {
			Type    string          `json:"type"`
			Usage   json.RawMessage `json:"usage"`
			Delta   json.RawMessage `json:"delta"`
			Message struct {
				Usage json.RawMessage `json:"usage"`
			} `json:"message"`
			Response struct {
				Usage json.RawMessage `json:"usage"`
			} `json:"response"`
			Choices []struct {
				Text  json.RawMessage `json:"text"`
				Delta struct {
					Content json.RawMessage `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(data), &e); err != nil {
			t.Fatalf("event %q: %v", data, err)
		}
		switch {
		case e.Type == "message_start":
			merge(e.Message.Usage, false)
		case e.Type == "message_delta":
			merge(e.Usage, true)
		case e.Type == "content_block_delta":
			var d struct {
				Text json.RawMessage `json:"text"`
			}
			_ = json.Unmarshal(e.Delta, &d)
			text(d.Text)
		case e.Type == "response.completed":
			merge(e.Response.Usage, true)
		case strings.HasSuffix(e.Type, ".delta"):
			text(e.Delta)
		case e.Type == "":
			merge(e.Usage, true)
			for _, c := range e.Choices {
				text(c.Text)
				text(c.Delta.Content)
			}
		}
	}
	return u
}

// meter feeds stream to a new StreamMeter in one write.
func meter(dialect string, stream []byte) Usage {
	m := NewStreamMeter(dialect)
	m.Write(stream)
	return m.Usage()
}

func TestFakeUpstreams(t *testing.T) {
	plain := map[string]Usage{}
	for _, c := range calls() {
		t.Run(c.name, func(t *testing.T) {
			body := capture(t, c.dialect, c.path, c.body, testOptions())
			if !c.stream {
				want := refJSON(t, body)
				got, err := FromJSON(c.dialect, body)
				if err != nil || got != want || !got.Complete || got.InputTokens == 0 {
					t.Fatalf("FromJSON = %+v, %v; encoding/json reads %+v", got, err, want)
				}
				if c.path != "/v1/embeddings" && got.OutputTokens == 0 {
					t.Fatalf("no output tokens: %+v", got)
				}
				plain[c.path] = got
				return
			}
			want := refStream(t, body)
			for _, d := range []string{c.dialect, ""} {
				if got := meter(d, body); got != want {
					t.Fatalf("dialect %q: StreamMeter = %+v; encoding/json reads %+v", d, got, want)
				}
			}
			got := meter(c.dialect, body)
			quoted, _ := json.Marshal(testReply)
			if got.Complete != c.final || got.StreamedBytes != int64(len(quoted)-2) {
				t.Fatalf("StreamMeter = %+v; want Complete %v and StreamedBytes %d", got, c.final, len(quoted)-2)
			}
			if !c.final {
				if got.InputTokens != 0 || got.OutputTokens != 0 {
					t.Fatalf("figures from a stream without usage: %+v", got)
				}
				return
			}
			// The fake reports the same usage streamed as plain.
			p, ok := plain[c.path]
			p.StreamedBytes = got.StreamedBytes
			if !ok || got != p {
				t.Fatalf("streamed %+v, plain %+v", got, p)
			}
		})
	}
}

func TestOtherDialectSeesNothing(t *testing.T) {
	for _, c := range calls() {
		if !c.stream {
			continue
		}
		body := capture(t, c.dialect, c.path, c.body, testOptions())
		other := DialectAnthropic
		if c.dialect == DialectAnthropic {
			other = DialectOpenAI
		}
		if got := meter(other, body); got != (Usage{}) {
			t.Errorf("%s read as %s: %+v", c.name, other, got)
		}
	}
}

func TestFromJSONShapes(t *testing.T) {
	tests := []struct {
		name, body string
		want       Usage
	}{
		{"anthropic cache", `{"type":"message","usage":{"input_tokens":3,"cache_creation_input_tokens":100,"cache_read_input_tokens":2000,"output_tokens":9}}`,
			Usage{InputTokens: 3, OutputTokens: 9, CacheReadTokens: 2000, CacheWriteTokens: 100, Complete: true}},
		{"openai cached", `{"usage":{"prompt_tokens":2006,"completion_tokens":300,"total_tokens":2306,"prompt_tokens_details":{"cached_tokens":1920}}}`,
			Usage{InputTokens: 2006, OutputTokens: 300, CacheReadTokens: 1920, Complete: true}},
		{"responses cached", `{"object":"response","usage":{"input_tokens":50,"input_tokens_details":{"cached_tokens":40},"output_tokens":7}}`,
			Usage{InputTokens: 50, OutputTokens: 7, CacheReadTokens: 40, Complete: true}},
		{"no usage", `{"object":"list","data":[]}`, Usage{}},
		{"usage null", `{"usage":null}`, Usage{}},
		{"empty usage", `{"usage":{}}`, Usage{Complete: true}},
		{"null counts", `{"usage":{"prompt_tokens":null,"completion_tokens":4,"prompt_tokens_details":null}}`, Usage{OutputTokens: 4, Complete: true}},
		{"nested usage ignored", `{"data":[{"usage":{"prompt_tokens":99}}],"usage":{"prompt_tokens":1}}`, Usage{InputTokens: 1, Complete: true}},
		{"only nested usage", `{"data":[{"usage":{"prompt_tokens":99}}]}`, Usage{}},
		{"nested after top-level", `{"usage":{"prompt_tokens":1},"metadata":{"usage":{"prompt_tokens":99}}}`, Usage{InputTokens: 1, Complete: true}},
		{"usage as a value", `{"note":"usage","kind":["usage"]}`, Usage{}},
		{"last duplicate wins", `{"usage":{"prompt_tokens":1},"usage":{"prompt_tokens":2}}`, Usage{InputTokens: 2, Complete: true}},
		{"escaped key", `{"usage":{"prompt_tokens":1},"us\u0061ge":{"prompt_tokens":5}}`, Usage{InputTokens: 5, Complete: true}},
		{"only escaped key", `{"\u0075sage":{"pr\u006fmpt_tokens":6}}`, Usage{InputTokens: 6, Complete: true}},
		{"key escaped in the middle", `{"t":"\u003cb\u003e","usa\u0067e":{"prompt_tokens":3}}`, Usage{InputTokens: 3, Complete: true}},
		{"other escapes, no usage", `{"t":"\u003cusage\u003e \u00e9","n":[1,2]}`, Usage{}},
		{"escaped quote key", `{"say \"usage":{"prompt_tokens":7}}`, Usage{}},
		{"case differs", `{"Usage":{"prompt_tokens":7}}`, Usage{}},
		{"whitespace", " \n{ \"usage\" :\t{ \"input_tokens\" : 8 , \"output_tokens\" : 9 } }\r\n", Usage{InputTokens: 8, OutputTokens: 9, Complete: true}},
		{"usage in string", `{"text":"\"usage\":{\"prompt_tokens\":9}"}`, Usage{}},
		{"negative zero", `{"usage":{"prompt_tokens":-0}}`, Usage{Complete: true}},
		{"max int64", `{"usage":{"prompt_tokens":9223372036854775807}}`, Usage{InputTokens: 1<<63 - 1, Complete: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FromJSON(DialectOpenAI, []byte(tt.body))
			if err != nil || got != tt.want {
				t.Fatalf("FromJSON = %+v, %v; want %+v", got, err, tt.want)
			}
			if !json.Valid([]byte(tt.body)) {
				t.Fatal("test body is not valid JSON")
			}
			if ref := refJSON(t, []byte(tt.body)); ref != tt.want {
				t.Fatalf("encoding/json reads %+v", ref)
			}
		})
	}
}

func TestFromJSONErrors(t *testing.T) {
	for _, body := range []string{
		``, `  `, `null`, `[]`, `"usage"`, `42`,
		`{"usage":"lots"}`, `{"usage":[1,2]}`, `{"usage":7}`,
		`{"usage":{"prompt_tokens":1.5}}`, `{"usage":{"prompt_tokens":"12"}}`, `{"usage":{"prompt_tokens":1e3}}`,
		`{"usage":{"prompt_tokens":9223372036854775808}}`, `{"usage":{"output_tokens":true}}`,
		`{"usage":{"prompt_tokens_details":{"cached_tokens":"x"}}}`, `{"usage":{"input_tokens_details":[]}}`,
		`{"usage":{"prompt_tokens":1}`, `{"usage":{"prompt_tokens":1},"x":[}`, `{"usage":{"prompt_tokens":`,
		`{"usage":{"prompt_tokens":1}} trailing`, `{"usage":{"prompt_tokens":1}` + "\x00" + `}`,
	} {
		if u, err := FromJSON(DialectOpenAI, []byte(body)); err == nil {
			t.Errorf("FromJSON(%q) = %+v, want an error", body, u)
		} else if u != (Usage{}) || !strings.HasPrefix(err.Error(), "usage: ") {
			t.Errorf("FromJSON(%q) = %+v, %v", body, u, err)
		}
	}
}

func TestMeterBody(t *testing.T) {
	stream := capture(t, DialectAnthropic, "/v1/messages", `{"stream":true,`+claudeBody+`}`, testOptions())
	m := NewStreamMeter(DialectAnthropic)
	closed := false
	body := MeterBody(closeFunc{bytes.NewReader(stream), func() { closed = true }}, m)
	got, err := io.ReadAll(iotest.OneByteReader(body))
	if err != nil || !bytes.Equal(got, stream) {
		t.Fatalf("read %d bytes, %v; want the stream unchanged", len(got), err)
	}
	if u := m.Usage(); u != refStream(t, stream) || !u.Complete {
		t.Fatalf("usage %+v", u)
	}
	if err := body.Close(); err != nil || !closed {
		t.Fatalf("Close: %v, closed %v", err, closed)
	}
	inner := io.NopCloser(strings.NewReader("x"))
	if MeterBody(inner, nil) != inner {
		t.Fatal("a nil meter must leave the body as it is")
	}
}

// closeFunc is a ReadCloser that reports its Close.
type closeFunc struct {
	io.Reader
	close func()
}

func (c closeFunc) Close() error { c.close(); return nil }
