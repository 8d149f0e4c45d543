package gateway_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// claudeStream is a streamed Messages answer with every event type Claude
// Code reads: extended thinking (with its signature), text, a tool call
// whose input streams as JSON, a ping, and the closing usage.
const claudeStream = "event: message_start\n" +
	`data: {"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}` + "\n\n" +
	"event: content_block_start\n" +
	`data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}` + "\n\n" +
	"event: content_block_delta\n" +
	`data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"The user wants a greeting."}}` + "\n\n" +
	"event: content_block_delta\n" +
	`data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxfake-signature"}}` + "\n\n" +
	"event: content_block_stop\n" +
	`data: {"type":"content_block_stop","index":0}` + "\n\n" +
	"event: content_block_start\n" +
	`data: {"type":"content_block_start","index":1,"content_block":{"type":"redacted_thinking","data":"EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP"}}` + "\n\n" +
	"event: content_block_stop\n" +
	`data: {"type":"content_block_stop","index":1}` + "\n\n" +
	"event: ping\n" +
	`data: {"type": "ping"}` + "\n\n" +
	"event: content_block_start\n" +
	`data: {"type":"content_block_start","index":2,"content_block":{"type":"text","text":""}}` + "\n\n" +
	"event: content_block_delta\n" +
	`data: {"type":"content_block_delta","index":2,"delta":{"type":"text_delta","text":"Hello!"}}` + "\n\n" +
	"event: content_block_stop\n" +
	`data: {"type":"content_block_stop","index":2}` + "\n\n" +
	"event: content_block_start\n" +
	`data: {"type":"content_block_start","index":3,"content_block":{"type":"tool_use","id":"toolu_01","name":"Read","input":{}}}` + "\n\n" +
	"event: content_block_delta\n" +
	`data: {"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{\"file_path\": \"/tmp/a\"}"}}` + "\n\n" +
	"event: content_block_stop\n" +
	`data: {"type":"content_block_stop","index":3}` + "\n\n" +
	"event: message_delta\n" +
	`data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":42}}` + "\n\n" +
	"event: message_stop\n" +
	`data: {"type":"message_stop"}` + "\n\n"

// TestClaudeCodeContract holds the gateway to what Claude Code needs of an
// Anthropic gateway: anthropic-beta and anthropic-version passed through
// unchanged, count_tokens, every streaming event type with extended
// thinking passed byte for byte, and the models list in Anthropic's shape.
func TestClaudeCodeContract(t *testing.T) {
	k := newKeys(t)
	key := k.issue("claude-code", nil)
	realKey := upstreamKey(t, "anthropic")
	type seen struct {
		path    string
		header  http.Header
		body    []byte
		rawPath string
	}
	var mu sync.Mutex
	var got []seen
	up := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{r.URL.Path, r.Header.Clone(), b, r.URL.RawQuery})
		mu.Unlock()
		if r.Header.Get("X-Api-Key") != realKey {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/v1/messages/count_tokens":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"input_tokens":1234}`)
		case "/v1/messages":
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Request-Id", "req_upstream_1")
			io.WriteString(w, claudeStream)
		case "/v1/models":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"data":[{"type":"model","id":"claude-sonnet-4-5","display_name":"Claude Sonnet 4.5","created_at":"2025-09-29T00:00:00Z"}],"has_more":false,"first_id":"claude-sonnet-4-5","last_id":"claude-sonnet-4-5"}`)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	g := newGateway(t, k.verifier(), nil, upstreamAt("anthropic", "anthropic", up.URL, realKey, "claude-*"))

	const beta = "claude-code-20250219,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14"
	const beta2 = "context-1m-2025-08-07"
	hdr := []string{"X-Api-Key", key, "Anthropic-Version", "2023-06-01", "Anthropic-Beta", beta, "Anthropic-Beta", beta2,
		"X-Stainless-Lang", "js", "Anthropic-Dangerous-Direct-Browser-Access", "true"}
	body := `{"model":"claude-sonnet-4-5","max_tokens":32000,"stream":true,"thinking":{"type":"enabled","budget_tokens":31999},` +
		`"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"thinking","thinking":"earlier","signature":"sig-earlier"},{"type":"text","text":"ok"}]},{"role":"user","content":"again"}]}`
	a := send(t, "POST", g.url+"/v1/messages?beta=true", body, hdr...)
	if a.status != 200 {
		t.Fatalf("messages: %d %s", a.status, a.body)
	}
	if string(a.body) != claudeStream {
		t.Errorf("the stream changed on its way through:\n%s", a.body)
	}
	a = send(t, "POST", g.url+"/v1/messages/count_tokens?beta=true", `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}]}`, hdr...)
	var ct struct {
		InputTokens int `json:"input_tokens"`
	}
	if a.status != 200 || json.Unmarshal(a.body, &ct) != nil || ct.InputTokens != 1234 {
		t.Errorf("count_tokens: %d %s", a.status, a.body)
	}

	// The models list, in Anthropic's shape when Claude Code asks.
	a = send(t, "GET", g.url+"/v1/models", "", "X-Api-Key", key, "Anthropic-Version", "2023-06-01")
	var list struct {
		Data []struct {
			Type, ID string
		} `json:"data"`
		HasMore *bool `json:"has_more"`
	}
	if a.status != 200 || json.Unmarshal(a.body, &list) != nil || list.HasMore == nil || len(list.Data) == 0 || list.Data[0].Type != "model" {
		t.Errorf("models: %d %s", a.status, a.body)
	}

	mu.Lock()
	defer mu.Unlock()
	got = got[:len(got)-1] // the models list
	if len(got) != 2 {
		t.Fatalf("the upstream saw %d requests, want 2", len(got))
	}
	for _, s := range got {
		if v := s.header.Values("Anthropic-Beta"); strings.Join(v, "|") != beta+"|"+beta2 {
			t.Errorf("%s: anthropic-beta arrived as %q, want both headers unchanged", s.path, v)
		}
		if v := s.header.Values("Anthropic-Version"); len(v) != 1 || v[0] != "2023-06-01" {
			t.Errorf("%s: anthropic-version arrived as %q", s.path, v)
		}
		if s.rawPath != "beta=true" {
			t.Errorf("%s: query %q, want beta=true kept", s.path, s.rawPath)
		}
		if bytes.Contains(s.body, []byte(key)) || strings.Contains(s.header.Get("Authorization"), key) {
			t.Errorf("%s: the keygate key reached the upstream", s.path)
		}
	}
	if got[0].path != "/v1/messages" || string(got[0].body) != body {
		t.Errorf("the messages body changed: %s", got[0].body)
	}
	if got[1].path != "/v1/messages/count_tokens" {
		t.Errorf("count_tokens went to %s", got[1].path)
	}

}
