package fakecloud

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// ReplyText is what the fake model APIs answer.
const ReplyText = "Hello from a fake cloud model"

// anthropicEvents are the Messages stream events of a reply streamed in
// pieces (nil: ReplyText), in order.
func anthropicEvents(model string, pieces []string) []string {
	if pieces == nil {
		pieces = []string{"Hello from a fake ", "cloud model"}
	}
	ev := []string{
		fmt.Sprintf(`{"type":"message_start","message":{"id":"msg_fake","type":"message","role":"assistant","model":%q,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":1}}}`, model),
		`{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`,
	}
	for _, p := range pieces {
		t, _ := json.Marshal(p)
		ev = append(ev, `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":`+string(t)+`}}`)
	}
	return append(ev,
		`{"type":"content_block_stop","index":0}`,
		`{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":7}}`,
		`{"type":"message_stop"}`)
}

func anthropicMessage(model string) map[string]any {
	return map[string]any{"id": "msg_fake", "type": "message", "role": "assistant", "model": model,
		"content": []map[string]string{{"type": "text", "text": ReplyText}}, "stop_reason": "end_turn", "stop_sequence": nil,
		"usage": map[string]int{"input_tokens": 10, "output_tokens": 7}}
}

// checkAnthropicBody verifies a cloud Messages body: no model (it is in
// the URL) and the cloud's anthropic_version.
func checkAnthropicBody(body []byte, version string) (map[string]any, error) {
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("body is not JSON")
	}
	if _, ok := m["model"]; ok {
		return nil, fmt.Errorf("model must be in the URL, not the body")
	}
	if m["anthropic_version"] != version {
		return nil, fmt.Errorf("anthropic_version must be %s", version)
	}
	if _, ok := m["messages"]; !ok {
		return nil, fmt.Errorf("messages is required")
	}
	return m, nil
}

// Bedrock is a fake Amazon Bedrock runtime, verifying every request's SigV4
// signature: InvokeModel and InvokeModelWithResponseStream (AWS event
// stream framing) for Anthropic models, in Anthropic's body, and Converse
// and ConverseStream for any model, in Converse's shapes (checked as the
// AWS API reference describes them; see checkConverseBody). A maxTokens
// below 7 stops the answer with max_tokens. A Converse request with a
// cache point reports CachedTokens written to the cache the first time and
// read from it afterwards.
type Bedrock struct {
	Keys *AWSKeys

	// Reply is the answer's text in the pieces it streams in (one
	// event-stream frame each); nil answers ReplyText in two pieces.
	Reply []string

	mu        sync.Mutex
	cacheWarm bool     // a request with a cache point has been answered
	Requests  []string // "METHOD path" of each verified request
	Bodies    [][]byte
	KeyIDs    []string      // the access key id each request was signed with
	Headers   []http.Header // each verified request's headers
}

// BedrockSeen is what a fake Bedrock runtime has verified so far.
type BedrockSeen struct {
	Requests []string      // "METHOD path" of each verified request
	KeyIDs   []string      // the access key id each was signed with
	Bodies   [][]byte      // each request's body
	Headers  []http.Header // each request's headers
}

// Snapshot returns what b has verified so far, safe to read while it serves.
func (b *Bedrock) Snapshot() BedrockSeen {
	b.mu.Lock()
	defer b.mu.Unlock()
	return BedrockSeen{Requests: append([]string(nil), b.Requests...), KeyIDs: append([]string(nil), b.KeyIDs...),
		Bodies: append([][]byte(nil), b.Bodies...), Headers: append([]http.Header(nil), b.Headers...)}
}

// ServeHTTP serves /model/{id}/{operation}.
func (b *Bedrock) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := readBody(r)
	keyID, _, err := b.Keys.VerifySigV4(r, body, "bedrock", time.Now())
	if err != nil {
		w.Header().Set("X-Amzn-Errortype", "UnrecognizedClientException")
		writeJSON(w, 403, map[string]string{"message": err.Error()})
		return
	}
	b.mu.Lock()
	b.Requests = append(b.Requests, r.Method+" "+r.URL.EscapedPath())
	b.Bodies = append(b.Bodies, body)
	b.KeyIDs = append(b.KeyIDs, keyID)
	b.Headers = append(b.Headers, r.Header.Clone())
	b.mu.Unlock()
	rest, ok := strings.CutPrefix(r.URL.Path, "/model/")
	i := strings.LastIndexByte(rest, '/')
	if !ok || i < 0 {
		writeJSON(w, 404, map[string]string{"message": "unknown operation"})
		return
	}
	model, op := rest[:i], rest[i+1:]
	pieces := b.Reply
	if pieces == nil {
		pieces = []string{"Hello from a fake ", "cloud model"}
	}
	switch op {
	case "invoke", "invoke-with-response-stream":
		if _, err := checkAnthropicBody(body, "bedrock-2023-05-31"); err != nil {
			w.Header().Set("X-Amzn-Errortype", "ValidationException")
			writeJSON(w, 400, map[string]string{"message": err.Error()})
			return
		}
		if op == "invoke" {
			m := anthropicMessage(model)
			m["content"] = []map[string]string{{"type": "text", "text": strings.Join(pieces, "")}}
			writeJSON(w, 200, m)
			return
		}
		events := anthropicEvents(model, pieces)
		// Bedrock adds the invocation's token counts to the last event.
		last := events[len(events)-1]
		events[len(events)-1] = last[:len(last)-1] + `,"amazon-bedrock-invocationMetrics":{"inputTokenCount":10,"outputTokenCount":7,"invocationLatency":5,"firstByteLatency":2}}`
		w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
		w.WriteHeader(200)
		for _, ev := range events {
			payload, _ := json.Marshal(map[string]string{"bytes": base64.StdEncoding.EncodeToString([]byte(ev))})
			writeEvent(w, "chunk", payload)
		}
	case "converse", "converse-stream":
		in, err := checkConverseBody(body, op == "converse-stream")
		if err != nil {
			w.Header().Set("X-Amzn-Errortype", "ValidationException")
			writeJSON(w, 400, map[string]string{"message": err.Error()})
			return
		}
		stop := "end_turn"
		if in.InferenceConfig != nil && in.InferenceConfig.MaxTokens != nil && *in.InferenceConfig.MaxTokens < 7 {
			stop = "max_tokens"
		}
		w.Header().Set("X-Amzn-Requestid", "5f0c3a2e-8d9b-4c1e-a7f6-"+randomID()[:12])
		usage := b.converseUsage(in)
		if tool := in.calledTool(); tool != "" {
			converseToolUse(w, op == "converse-stream", tool, usage)
			return
		}
		if res := in.lastToolResult(); res != "" {
			pieces = []string{"tool result: ", res}
		}
		if op == "converse" {
			writeJSON(w, 200, map[string]any{"output": map[string]any{"message": map[string]any{"role": "assistant", "content": []map[string]string{{"text": strings.Join(pieces, "")}}}},
				"stopReason": stop, "usage": usage, "metrics": map[string]int{"latencyMs": 5}})
			return
		}
		w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
		w.WriteHeader(200)
		writeEvent(w, "messageStart", []byte(`{"role":"assistant"}`))
		for _, p := range pieces {
			d, _ := json.Marshal(map[string]any{"contentBlockIndex": 0, "delta": map[string]string{"text": p}})
			writeEvent(w, "contentBlockDelta", d)
		}
		writeEvent(w, "contentBlockStop", []byte(`{"contentBlockIndex":0}`))
		writeEvent(w, "messageStop", []byte(`{"stopReason":"`+stop+`"}`))
		writeEvent(w, "metadata", converseMetadata(usage))
	default:
		writeJSON(w, 404, map[string]string{"message": "unknown operation " + op})
	}
}

// writeEvent writes one AWS event-stream event message and flushes it.
func writeEvent(w http.ResponseWriter, eventType string, payload []byte) {
	_ = eventstream.NewEncoder().Encode(w, eventstream.Message{Headers: eventstream.Headers{
		{Name: ":event-type", Value: eventstream.StringValue(eventType)},
		{Name: ":content-type", Value: eventstream.StringValue("application/json")},
		{Name: ":message-type", Value: eventstream.StringValue("event")},
	}, Payload: payload})
	w.(http.Flusher).Flush()
}

// Vertex is a fake Vertex AI endpoint for Anthropic models (rawPredict and
// streamRawPredict) whose requests must carry a token from a GoogleToken.
type Vertex struct {
	Token *GoogleToken
	mu    sync.Mutex
	Paths []string
}

// ServeHTTP serves .../publishers/anthropic/models/{model}:{rawPredict|streamRawPredict}.
func (v *Vertex) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := v.Token.Tokens.Check(r.Header.Get("Authorization"), CloudPlatformScope); err != nil {
		googleError(w, 401, "UNAUTHENTICATED", "Request had invalid authentication credentials: "+err.Error())
		return
	}
	v.mu.Lock()
	v.Paths = append(v.Paths, r.URL.Path)
	v.mu.Unlock()
	body, _ := readBody(r)
	_, after, ok := strings.Cut(r.URL.Path, "/publishers/anthropic/models/")
	model, op, ok2 := strings.Cut(after, ":")
	if !ok || !ok2 || !strings.HasPrefix(r.URL.Path, "/v1/projects/") {
		googleError(w, 404, "NOT_FOUND", "unknown path")
		return
	}
	m, err := checkAnthropicBody(body, "vertex-2023-10-16")
	if err != nil {
		googleError(w, 400, "INVALID_ARGUMENT", err.Error())
		return
	}
	switch op {
	case "rawPredict":
		writeJSON(w, 200, anthropicMessage(model))
	case "streamRawPredict":
		if m["stream"] != true {
			googleError(w, 400, "INVALID_ARGUMENT", "streamRawPredict needs stream: true")
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for _, ev := range anthropicEvents(model, nil) {
			var t struct{ Type string }
			_ = json.Unmarshal([]byte(ev), &t)
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", t.Type, ev)
			w.(http.Flusher).Flush()
		}
	default:
		googleError(w, 404, "NOT_FOUND", "unknown method")
	}
}

// AzureOpenAI is a fake Azure OpenAI chat completions endpoint whose
// requests must carry an Entra ID token for Cognitive Services.
type AzureOpenAI struct {
	Entra *Entra
}

// ServeHTTP serves /openai/deployments/{d}/chat/completions.
func (a *AzureOpenAI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("api-key") != "" {
		writeJSON(w, 400, map[string]any{"error": map[string]string{"code": "BadRequest", "message": "send either api-key or a bearer token"}})
		return
	}
	if err := a.Entra.Tokens.Check(r.Header.Get("Authorization"), "https://cognitiveservices.azure.com"); err != nil {
		writeJSON(w, 401, map[string]any{"error": map[string]string{"code": "401", "message": "Unauthorized. Access token is missing, invalid, audience is incorrect, or have expired: " + err.Error()}})
		return
	}
	d, ok := strings.CutPrefix(r.URL.Path, "/openai/deployments/")
	if !ok || !strings.HasSuffix(d, "/chat/completions") || r.URL.Query().Get("api-version") == "" {
		writeJSON(w, 404, map[string]any{"error": map[string]string{"code": "404", "message": "Resource not found"}})
		return
	}
	writeJSON(w, 200, map[string]any{"id": "chatcmpl-fake", "object": "chat.completion", "created": time.Now().Unix(), "model": strings.TrimSuffix(d, "/chat/completions"),
		"choices": []map[string]any{{"index": 0, "message": map[string]string{"role": "assistant", "content": ReplyText}, "finish_reason": "stop"}},
		"usage":   map[string]int{"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17}})
}
