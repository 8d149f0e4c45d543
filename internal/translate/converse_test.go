package translate

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// goldenMessageID is the Anthropic message id the Converse golden files
// are written with.
const goldenMessageID = "msg_bdrk_golden"

// converseEvents encodes a .in.events file into an AWS event stream: one
// frame a line, "eventType {json payload}", or "!exceptionType {json}" for
// an exception.
func converseEvents(t testing.TB, in []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(in))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		name, payload, _ := strings.Cut(line, " ")
		h := eventstream.Headers{{Name: ":content-type", Value: eventstream.StringValue("application/json")}}
		if exc, ok := strings.CutPrefix(name, "!"); ok {
			h = append(h, eventstream.Header{Name: ":message-type", Value: eventstream.StringValue("exception")},
				eventstream.Header{Name: ":exception-type", Value: eventstream.StringValue(exc)})
		} else {
			h = append(h, eventstream.Header{Name: ":message-type", Value: eventstream.StringValue("event")},
				eventstream.Header{Name: ":event-type", Value: eventstream.StringValue(name)})
		}
		if err := eventstream.NewEncoder().Encode(&out, eventstream.Message{Headers: h, Payload: []byte(payload)}); err != nil {
			t.Fatal(err)
		}
	}
	return out.Bytes()
}

// goldenGuardrail is the guardrail m2v_req_guardrail* cases are
// translated with.
func goldenGuardrail() ConverseOptions {
	return ConverseOptions{Guardrail: &ConverseGuardrail{Identifier: "gr1abc2def3", Version: "2", Trace: "enabled", StreamProcessingMode: "async"}}
}

// runConverseCase runs the Converse golden cases: m2v (an Anthropic
// Messages request to Converse; rest "guardrail..." with goldenGuardrail)
// and v2m (a Converse answer or stream to Anthropic's).
func runConverseCase(t *testing.T, kind, rest string, in []byte) ([]byte, error, bool) {
	switch kind {
	case "m2v_req":
		var o ConverseOptions
		if strings.HasPrefix(rest, "guardrail") {
			o = goldenGuardrail()
		}
		body, model, stream, err := MessagesToConverseRequestWith(in, o)
		if err != nil {
			return nil, err, false
		}
		out, err := marshal(struct {
			Model  string          `json:"model"`
			Stream bool            `json:"stream"`
			Body   json.RawMessage `json:"body"`
		}{model, stream, body})
		return out, err, false
	case "v2m_resp":
		out, err := ConverseToMessagesResponse(in, goldenMessageID, goldenClientModel)
		return out, err, false
	case "v2m_stream":
		out, err := io.ReadAll(ConverseStreamToMessages(io.NopCloser(bytes.NewReader(converseEvents(t, in))), goldenMessageID, goldenClientModel))
		if err != nil {
			t.Fatal(err)
		}
		return out, nil, true
	}
	t.Fatalf("unknown Converse case kind %q", kind)
	return nil, nil, false
}

// TestConverseStreamCorrupt: a frame whose checksum does not match ends
// the translated stream with an Anthropic error event, not a panic or a
// silent stop.
func TestConverseStreamCorrupt(t *testing.T) {
	frames := converseEvents(t, []byte("messageStart {\"role\":\"assistant\"}\ncontentBlockDelta {\"contentBlockIndex\":0,\"delta\":{\"text\":\"Hi\"}}\n"))
	frames[len(frames)-1] ^= 0xff
	out, err := io.ReadAll(ConverseStreamToMessages(io.NopCloser(bytes.NewReader(frames)), "msg_x", "m"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte("event: message_start")) || !bytes.HasSuffix(out, []byte("\n\n")) || !bytes.Contains(out, []byte(`event: error`)) ||
		bytes.Contains(out, []byte("Hi")) {
		t.Fatalf("a corrupt frame: %s", out)
	}
}

// FuzzConverseStreamToMessages holds the ConverseStream decoder path to
// never failing and never writing anything but whole server-sent events
// whose data is JSON, whatever bytes upstream sends; seeds are the golden
// streams, whole and cut.
func FuzzConverseStreamToMessages(f *testing.F) {
	for _, name := range []string{"text", "tools", "exception", "no_metadata"} {
		b, err := os.ReadFile(filepath.Join("testdata", "v2m_stream_"+name+".in.events"))
		if err != nil {
			f.Fatal(err)
		}
		frames := converseEvents(f, b)
		f.Add(frames)
		f.Add(frames[:len(frames)/2])
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := io.ReadAll(ConverseStreamToMessages(io.NopCloser(bytes.NewReader(in)), "msg_x", "m"))
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range strings.Split(string(out), "\n\n") {
			if ev == "" {
				continue
			}
			name, data, ok := strings.Cut(ev, "\ndata: ")
			if !ok || !strings.HasPrefix(name, "event: ") || !json.Valid([]byte(data)) {
				t.Fatalf("not a whole event with JSON data: %q", ev)
			}
		}
	})
}

// FuzzMessagesToConverseRequest holds the request translator, with and
// without a guardrail, to a typed error or one JSON object.
func FuzzMessagesToConverseRequest(f *testing.F) {
	seedFromTestdata(f, "m2v_req_")
	f.Fuzz(func(t *testing.T, body []byte) {
		out, _, _, err := MessagesToConverseRequest(body)
		checkRequestResult(t, out, err)
		out, _, _, err = MessagesToConverseRequestWith(body, goldenGuardrail())
		checkRequestResult(t, out, err)
	})
}

// TestConverseToChatGuardrailAndCache: a Converse answer a guardrail
// stopped, with cache reads and writes, reaches an OpenAI client (through
// the Messages translation the gateway chains) as finish_reason
// content_filter with the cached tokens counted in prompt_tokens and
// reported as prompt_tokens_details.cached_tokens, plain and streamed.
func TestConverseToChatGuardrailAndCache(t *testing.T) {
	answer := []byte(`{"output":{"message":{"role":"assistant","content":[{"text":"Sorry."}]}},"stopReason":"guardrail_intervened",` +
		`"usage":{"inputTokens":9,"outputTokens":2,"totalTokens":1035,"cacheReadInputTokens":1000,"cacheWriteInputTokens":24}}`)
	msg, err := ConverseToMessagesResponse(answer, "msg_x", "m")
	if err != nil {
		t.Fatal(err)
	}
	chat, err := messagesToChatResponse(msg, "m", goldenCreated)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Choices []struct {
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Usage struct {
			PromptTokens        int `json:"prompt_tokens"`
			PromptTokensDetails struct {
				CachedTokens int `json:"cached_tokens"`
			} `json:"prompt_tokens_details"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(chat, &got); err != nil || got.Choices[0].FinishReason != "content_filter" || got.Usage.PromptTokens != 1033 || got.Usage.PromptTokensDetails.CachedTokens != 1000 {
		t.Fatalf("OpenAI answer: %v %s", err, chat)
	}

	b, err := os.ReadFile(filepath.Join("testdata", "v2m_stream_guardrail_cache.in.events"))
	if err != nil {
		t.Fatal(err)
	}
	sse := ConverseStreamToMessages(io.NopCloser(bytes.NewReader(converseEvents(t, b))), "msg_x", "m")
	out, err := io.ReadAll(newStreamReader(sse, newChatStream("m", true, goldenCreated)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte(`"finish_reason":"content_filter"`)) || !bytes.Contains(out, []byte(`"prompt_tokens":1033`)) ||
		!bytes.Contains(out, []byte(`"prompt_tokens_details":{"cached_tokens":1000}`)) {
		t.Fatalf("OpenAI stream: %s", out)
	}
}

// TestConverseGuardrailCheck: a guardrail Bedrock would refuse fails its
// check with a message naming the field; a good one passes.
func TestConverseGuardrailCheck(t *testing.T) {
	for _, tc := range []struct {
		g    ConverseGuardrail
		want string // "" for no error
	}{
		{ConverseGuardrail{Identifier: "gr1abc", Version: "1"}, ""},
		{ConverseGuardrail{Identifier: "arn:aws:bedrock:us-east-1:123456789012:guardrail/gr1abc", Version: "DRAFT", Trace: "enabled_full", StreamProcessingMode: "async"}, ""},
		{ConverseGuardrail{Identifier: "arn:aws-us-gov:bedrock:us-gov-west-1:123456789012:guardrail/x1", Version: "12345678", Trace: "disabled"}, ""},
		{ConverseGuardrail{Version: "1"}, "identifier is empty"},
		{ConverseGuardrail{Identifier: "My-Guardrail", Version: "1"}, "identifier is neither"},
		{ConverseGuardrail{Identifier: "arn:aws:bedrock:us-east-1:1234:guardrail/gr1", Version: "1"}, "identifier is neither"},
		{ConverseGuardrail{Identifier: "arn:aws:s3:us-east-1:123456789012:guardrail/gr1", Version: "1"}, "identifier is neither"},
		{ConverseGuardrail{Identifier: "gr1", Version: ""}, `version ""`},
		{ConverseGuardrail{Identifier: "gr1", Version: "0"}, `version "0"`},
		{ConverseGuardrail{Identifier: "gr1", Version: "draft"}, `version "draft"`},
		{ConverseGuardrail{Identifier: "gr1", Version: "1", Trace: "on"}, `trace "on"`},
		{ConverseGuardrail{Identifier: "gr1", Version: "1", StreamProcessingMode: "batch"}, `stream_processing_mode "batch"`},
	} {
		err := ConverseOptions{Guardrail: &tc.g}.Check()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.g, err, tc.want)
		}
		if _, _, _, rerr := MessagesToConverseRequestWith([]byte(`{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}`), ConverseOptions{Guardrail: &tc.g}); (rerr == nil) != (err == nil) {
			t.Errorf("%+v: the request translated with a guardrail that fails its check, or not with one that passes: %v", tc.g, rerr)
		}
	}
}

// TestConverseDocumentNames: document names keep only what Converse
// allows, stay within its 200 characters and never repeat in a request.
func TestConverseDocumentNames(t *testing.T) {
	var d converseDocNames
	for _, tc := range []struct{ title, want string }{
		{"report.pdf", "report"},
		{"report.PDF", "report (2)"},
		{"/tmp/a  b__c.v2.txt", "a b c v2"},
		{"Ünïcode – data [draft] (1).csv", "n code data [draft] (1)"},
		{"...", "document 5"},
		{"", "document 6"},
		{strings.Repeat("x", 300), strings.Repeat("x", maxDocName-8)},
	} {
		if got := d.name(tc.title); got != tc.want {
			t.Errorf("name(%q) = %q, want %q", tc.title, got, tc.want)
		}
	}
}

// TestIsBase64: the shape check takes padded standard base64 and nothing
// else (no line breaks, URL alphabet or misplaced padding).
func TestIsBase64(t *testing.T) {
	for s, want := range map[string]bool{"": true, "QQ==": true, "QUI=": true, "QUJD": true, "JVBERi0xLjQK": true,
		"QQ=": false, "Q===": false, "QQ==QQ==": false, "QU JD": false, "QUJD\n": false, "QUJ-": false, "QUJ_": false} {
		if got := isBase64(s); got != want {
			t.Errorf("isBase64(%q) = %v, want %v", s, got, want)
		}
		if _, err := base64.StdEncoding.Strict().DecodeString(s); want && err != nil {
			t.Errorf("%q passes the check but does not decode: %v", s, err)
		}
	}
}
