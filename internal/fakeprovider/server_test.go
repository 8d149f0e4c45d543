package fakeprovider

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// do sends a raw request to the fake and returns status, headers and body.
func do(t *testing.T, method, url, body string, header map[string]string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, res.Header, string(b)
}

func openAIHeaders() map[string]string {
	return map[string]string{"Authorization": "Bearer " + testKey, "Content-Type": "application/json"}
}

func anthropicHeaders() map[string]string {
	return map[string]string{"x-api-key": testKey, "anthropic-version": "2023-06-01", "Content-Type": "application/json"}
}

func TestOpenAIWireStream(t *testing.T) {
	_, ts := newOpenAIFake(t, Options{ReplyText: "ab cd", Chunks: 2})
	status, h, body := do(t, http.MethodPost, ts.URL+"/v1/chat/completions",
		`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`, openAIHeaders())
	if status != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d content-type %q", status, h.Get("Content-Type"))
	}
	events := strings.Split(strings.TrimSuffix(body, "\n\n"), "\n\n")
	// role, 2 content deltas, finish, usage, [DONE]
	if len(events) != 6 || events[5] != "data: [DONE]" {
		t.Fatalf("events %q", events)
	}
	var ids []string
	for i, ev := range events[:5] {
		if !strings.HasPrefix(ev, "data: {") || strings.Contains(ev, "\n") {
			t.Fatalf("event %d framing %q", i, ev)
		}
		var chunk struct {
			ID      string          `json:"id"`
			Object  string          `json:"object"`
			Choices json.RawMessage `json:"choices"`
			Usage   json.RawMessage `json:"usage"`
		}
		if err := json.Unmarshal([]byte(ev[len("data: "):]), &chunk); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if chunk.Object != "chat.completion.chunk" {
			t.Fatalf("event %d object %q", i, chunk.Object)
		}
		ids = append(ids, chunk.ID)
		if i < 4 && string(chunk.Usage) != "null" {
			t.Fatalf("event %d usage %s", i, chunk.Usage)
		}
		if i == 4 && (string(chunk.Choices) != "[]" || !strings.Contains(string(chunk.Usage), `"total_tokens":3`)) {
			t.Fatalf("usage chunk %s", ev)
		}
	}
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("chunk ids differ: %v", ids)
		}
	}
}

func TestAnthropicWireStream(t *testing.T) {
	_, ts := newAnthropicFake(t, Options{ReplyText: "xy", Chunks: 2})
	status, h, body := do(t, http.MethodPost, ts.URL+"/v1/messages",
		`{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"stream":true}`, anthropicHeaders())
	if status != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/event-stream") || h.Get("request-id") == "" {
		t.Fatalf("status %d headers %v", status, h)
	}
	var names []string
	for _, ev := range strings.Split(strings.TrimSuffix(body, "\n\n"), "\n\n") {
		lines := strings.Split(ev, "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "event: ") || !strings.HasPrefix(lines[1], "data: ") {
			t.Fatalf("framing %q", ev)
		}
		name := lines[0][len("event: "):]
		var data struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal([]byte(lines[1][len("data: "):]), &data); err != nil || data.Type != name {
			t.Fatalf("event %q data %q: %v", name, lines[1], err)
		}
		names = append(names, name)
	}
	want := "message_start,content_block_start,ping,content_block_delta,content_block_delta,content_block_stop,message_delta,message_stop"
	if strings.Join(names, ",") != want {
		t.Fatalf("events %v", names)
	}
}

func TestOpenAIErrorsWire(t *testing.T) {
	_, ts := newOpenAIFake(t, Options{})
	type openAIErr struct {
		Error struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
			Code    *string `json:"code"`
		} `json:"error"`
	}
	cases := []struct {
		name, method, path, body string
		header                   map[string]string
		status                   int
		code, msgPrefix          string
	}{
		{"missing key", "POST", "/v1/chat/completions", `{}`, nil, 401, "", "You didn't provide an API key"},
		{"no bearer", "POST", "/v1/chat/completions", `{}`, map[string]string{"Authorization": testKey}, 401, "invalid_api_key", "Incorrect API key provided: "},
		{"unknown path", "POST", "/v1/nope", `{}`, openAIHeaders(), 404, "", "Invalid URL (POST /v1/nope)"},
		{"wrong method", "GET", "/v1/chat/completions", ``, openAIHeaders(), 404, "", "Invalid URL (GET /v1/chat/completions)"},
		{"malformed json", "POST", "/v1/chat/completions", `{"model":`, openAIHeaders(), 400, "", "We could not parse the JSON body"},
		{"missing model", "POST", "/v1/chat/completions", `{"messages":[]}`, openAIHeaders(), 400, "", "you must provide a model parameter"},
		{"unknown model", "POST", "/v1/chat/completions", `{"model":"gpt-x","messages":[]}`, openAIHeaders(), 404, "model_not_found", "The model `gpt-x` does not exist"},
		{"missing messages", "POST", "/v1/chat/completions", `{"model":"gpt-4o"}`, openAIHeaders(), 400, "missing_required_parameter", "Missing required parameter: 'messages'."},
	}
	for _, c := range cases {
		status, h, body := do(t, c.method, ts.URL+c.path, c.body, c.header)
		var e openAIErr
		if err := json.Unmarshal([]byte(body), &e); err != nil {
			t.Fatalf("%s: %v: %s", c.name, err, body)
		}
		code := ""
		if e.Error.Code != nil {
			code = *e.Error.Code
		}
		if status != c.status || code != c.code || !strings.HasPrefix(e.Error.Message, c.msgPrefix) ||
			e.Error.Type == "" || h.Get("x-request-id") == "" || !strings.Contains(body, `"param":`) {
			t.Fatalf("%s: status %d body %s", c.name, status, body)
		}
	}
}

func TestAnthropicErrorsWire(t *testing.T) {
	_, ts := newAnthropicFake(t, Options{})
	noVersion := map[string]string{"x-api-key": testKey}
	cases := []struct {
		name, method, path, body string
		header                   map[string]string
		status                   int
		typ, msg                 string
	}{
		{"missing key", "POST", "/v1/messages", `{}`, map[string]string{"anthropic-version": "2023-06-01"}, 401, "authentication_error", "x-api-key header is required"},
		{"wrong key", "POST", "/v1/messages", `{}`, map[string]string{"x-api-key": "test-wrong", "anthropic-version": "2023-06-01"}, 401, "authentication_error", "invalid x-api-key"},
		{"missing version", "POST", "/v1/messages", `{}`, noVersion, 400, "invalid_request_error", "anthropic-version: header is required"},
		{"unknown path", "GET", "/v1/nope", ``, anthropicHeaders(), 404, "not_found_error", "Not Found"},
		{"missing model", "POST", "/v1/messages", `{"max_tokens":1,"messages":[]}`, anthropicHeaders(), 400, "invalid_request_error", "model: Field required"},
		{"missing max_tokens", "POST", "/v1/messages", `{"model":"claude-sonnet-4-5","messages":[]}`, anthropicHeaders(), 400, "invalid_request_error", "max_tokens: Field required"},
		{"missing messages", "POST", "/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":1}`, anthropicHeaders(), 400, "invalid_request_error", "messages: Field required"},
		{"unknown model", "POST", "/v1/messages", `{"model":"claude-x","max_tokens":1,"messages":[]}`, anthropicHeaders(), 404, "not_found_error", "model: claude-x"},
	}
	for _, c := range cases {
		status, h, body := do(t, c.method, ts.URL+c.path, c.body, c.header)
		var e struct {
			Type  string `json:"type"`
			Error struct {
				Type    string `json:"type"`
				Message string `json:"message"`
			} `json:"error"`
			RequestID string `json:"request_id"`
		}
		if err := json.Unmarshal([]byte(body), &e); err != nil {
			t.Fatalf("%s: %v: %s", c.name, err, body)
		}
		if status != c.status || e.Type != "error" || e.Error.Type != c.typ || e.Error.Message != c.msg ||
			e.RequestID == "" || h.Get("request-id") != e.RequestID {
			t.Fatalf("%s: status %d headers %v body %s", c.name, status, h, body)
		}
	}
	status, _, body := do(t, "POST", ts.URL+"/v1/messages", `{"model":`, anthropicHeaders())
	if status != 400 || !strings.Contains(body, `"invalid_request_error"`) {
		t.Fatalf("malformed json: %d %s", status, body)
	}
}

func TestFailCountThenSuccess(t *testing.T) {
	_, ts := newOpenAIFake(t, Options{FailStatus: 503, FailCount: 2})
	for i, want := range []int{503, 503, 200, 200} {
		status, _, _ := do(t, "GET", ts.URL+"/v1/models", "", openAIHeaders())
		if status != want {
			t.Fatalf("request %d: status %d, want %d", i, status, want)
		}
	}
}

func TestRecordingResetAndNoRecord(t *testing.T) {
	fake, ts := newOpenAIFake(t, Options{})
	do(t, "GET", ts.URL+"/v1/models?limit=2", "", openAIHeaders())
	seen := fake.Requests()
	if len(seen) != 1 || seen[0].RawQuery != "limit=2" || seen[0].Method != "GET" || seen[0].Body == nil {
		t.Fatalf("seen %+v", seen)
	}
	seen[0].Header.Set("Authorization", "changed")
	if fake.Requests()[0].Header.Get("Authorization") != "Bearer "+testKey {
		t.Fatal("Requests does not return a clone")
	}
	fake.Reset()
	if len(fake.Requests()) != 0 || fake.RequestCount() != 1 {
		t.Fatal("Reset did not clear the recording")
	}

	quiet, qts := newOpenAIFake(t, Options{NoRecord: true})
	do(t, "GET", qts.URL+"/v1/models", "", openAIHeaders())
	if len(quiet.Requests()) != 0 || quiet.RequestCount() != 1 {
		t.Fatalf("NoRecord recorded %d, counted %d", len(quiet.Requests()), quiet.RequestCount())
	}
}

func TestConcurrentRequests(t *testing.T) {
	fake, ts := newAnthropicFake(t, Options{})
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 10; j++ {
				body := `{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"stream":` + strconv.FormatBool(j%2 == 0) + `}`
				req, _ := http.NewRequest("POST", ts.URL+"/v1/messages", strings.NewReader(body))
				for k, v := range anthropicHeaders() {
					req.Header.Set(k, v)
				}
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					t.Errorf("status %d", res.StatusCode)
				}
				_ = fake.Requests()
			}
		}()
	}
	wg.Wait()
	if n := len(fake.Requests()); n != 200 {
		t.Fatalf("recorded %d requests", n)
	}
}

func TestLatencyAndChunkDelayFlush(t *testing.T) {
	_, ts := newAnthropicFake(t, Options{Latency: 50 * time.Millisecond, ChunkDelay: 100 * time.Millisecond, Chunks: 3})
	start := time.Now()
	req, _ := http.NewRequest("POST", ts.URL+"/v1/messages",
		strings.NewReader(`{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[],"stream":true}`))
	for k, v := range anthropicHeaders() {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("headers after %v, before Latency", d)
	}
	first, err := bufio.NewReader(res.Body).ReadString('\n')
	if err != nil || first != "event: message_start\n" {
		t.Fatalf("first line %q: %v", first, err)
	}
	// 9 events: the first arrives flushed while the other eight are still
	// 800ms of ChunkDelay away, so what follows it takes at least 700ms
	// (a lower bound, which a loaded machine cannot break).
	firstAt := time.Now()
	_, _ = io.Copy(io.Discard, res.Body)
	if d := time.Since(firstAt); d < 7*100*time.Millisecond {
		t.Fatalf("the rest of the stream took %v after the first event; the first was not flushed on its own", d)
	}
	if d := time.Since(start); d < 50*time.Millisecond+8*100*time.Millisecond {
		t.Fatalf("stream finished after %v, faster than ChunkDelay allows", d)
	}
}

func TestCloseReleasesHang(t *testing.T) {
	fake := NewOpenAI(Options{APIKey: testKey, Hang: true})
	ts := httptest.NewServer(fake)
	defer ts.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		res, err := http.Get(ts.URL + "/v1/models")
		if err == nil {
			res.Body.Close()
		}
	}()
	for fake.RequestCount() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	fake.Close()
	fake.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not release the hanging request")
	}
}

func TestHangHandlerReturnsOnCancel(t *testing.T) {
	fake := NewOpenAI(Options{APIKey: testKey, Hang: true})
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequest("GET", "/v1/models", nil).WithContext(ctx)
	returned := make(chan struct{})
	go func() {
		fake.ServeHTTP(httptest.NewRecorder(), req)
		close(returned)
	}()
	cancel()
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("handler kept hanging after the request context ended")
	}
}

func TestReplySplitting(t *testing.T) {
	for _, c := range []struct {
		text   string
		chunks int
	}{
		{"hello world", 5}, {"héllo wörld ✓ ünïcode", 4}, {"ab", 5}, {"", 3}, {generateText(1000), 7},
	} {
		r := newReply(c.text, c.chunks)
		if strings.Join(r.pieces, "") != c.text {
			t.Fatalf("%q: pieces %q", c.text, r.pieces)
		}
		want := min(c.chunks, max(utf8.RuneCountInString(c.text), 1))
		if len(r.pieces) != want {
			t.Fatalf("%q: %d pieces, want %d", c.text, len(r.pieces), want)
		}
		for _, p := range r.pieces {
			if !utf8.ValidString(p) {
				t.Fatalf("%q: piece %q splits a rune", c.text, p)
			}
		}
	}
	if n := len(generateText(12345)); n != 12345 {
		t.Fatalf("generated %d bytes", n)
	}
	fake := NewOpenAI(Options{APIKey: testKey, ReplyBytes: 300})
	if len(fake.ReplyText()) != 300 {
		t.Fatalf("ReplyBytes gave %d bytes", len(fake.ReplyText()))
	}
}

func TestAppendQuoted(t *testing.T) {
	for _, s := range []string{"", "plain", `quote " and \ backslash`, "ctl \x00\x01\n\r\t\x1f", "bad utf8 \xff\xfe", "sep \u2028\u2029", "ünï ✓ 🙂 <&>"} {
		var got string
		if err := json.Unmarshal(appendQuoted(nil, s), &got); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		want, _ := json.Marshal(s)
		var wantS string
		_ = json.Unmarshal(want, &wantS)
		if got != wantS {
			t.Fatalf("%q: got %q want %q", s, got, wantS)
		}
	}
}

func TestMaskKeyAndRequiredKey(t *testing.T) {
	if got := MaskKey("test-upstream-key-123"); got != "tes**************-123" {
		t.Fatalf("MaskKey = %q", got)
	}
	if got := MaskKey("short"); got != "*****" {
		t.Fatalf("MaskKey short = %q", got)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("empty APIKey did not panic")
		}
	}()
	NewAnthropic(Options{})
}
