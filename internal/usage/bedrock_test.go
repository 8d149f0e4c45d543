package usage

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

func bedrockEvent(t *testing.T, w *bytes.Buffer, typ, payload string) {
	t.Helper()
	err := eventstream.NewEncoder().Encode(w, eventstream.Message{Headers: eventstream.Headers{
		{Name: ":event-type", Value: eventstream.StringValue(typ)},
		{Name: ":message-type", Value: eventstream.StringValue("event")},
	}, Payload: []byte(payload)})
	if err != nil {
		t.Fatal(err)
	}
}

func chunk(t *testing.T, w *bytes.Buffer, anthropicEvent string) {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"bytes": base64.StdEncoding.EncodeToString([]byte(anthropicEvent))})
	bedrockEvent(t, w, "chunk", string(b))
}

// TestBedrockStreamMeter: usage is read from both kinds of Bedrock event
// stream however the frames are split across writes, and a stream cut off
// before its usage reports what streamed.
func TestBedrockStreamMeter(t *testing.T) {
	var invoke, converse, cut bytes.Buffer
	chunk(t, &invoke, `{"type":"message_start","message":{"id":"m","type":"message","role":"assistant","content":[],"usage":{"input_tokens":12,"output_tokens":1}}}`)
	chunk(t, &invoke, `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}`)
	chunk(t, &invoke, `{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}}`)
	chunk(t, &invoke, `{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":12,"outputTokenCount":9}}`)
	bedrockEvent(t, &converse, "messageStart", `{"role":"assistant"}`)
	bedrockEvent(t, &converse, "contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":"Hello there"}}`)
	bedrockEvent(t, &converse, "messageStop", `{"stopReason":"end_turn"}`)
	bedrockEvent(t, &converse, "metadata", `{"usage":{"inputTokens":20,"outputTokens":4,"cacheReadInputTokens":3,"totalTokens":24}}`)
	bedrockEvent(t, &cut, "contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":"Hello there"}}`)
	for _, step := range []int{1, 3, 7, 64, 1 << 20} {
		for name, tc := range map[string]struct {
			stream []byte
			want   Usage
		}{
			"invoke":   {invoke.Bytes(), Usage{InputTokens: 12, OutputTokens: 9, Complete: true}},
			"converse": {converse.Bytes(), Usage{InputTokens: 20, OutputTokens: 4, CacheReadTokens: 3, Complete: true}},
			"cut off":  {cut.Bytes(), Usage{}},
		} {
			m := NewBedrockStreamMeter()
			for b := tc.stream; len(b) > 0; {
				n := min(step, len(b))
				_, _ = m.Write(b[:n])
				b = b[n:]
			}
			got := m.Usage()
			if got.InputTokens != tc.want.InputTokens || got.OutputTokens != tc.want.OutputTokens || got.CacheReadTokens != tc.want.CacheReadTokens || got.Complete != tc.want.Complete {
				t.Errorf("%s in writes of %d: %+v, want %+v", name, step, got, tc.want)
			}
			if got.StreamedBytes == 0 {
				t.Errorf("%s in writes of %d: no streamed text counted", name, step)
			}
		}
	}
	// Garbage ends metering without a panic.
	m := NewBedrockStreamMeter()
	_, _ = m.Write([]byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3})
	if m.Usage().Complete {
		t.Fatal("garbage reported usage")
	}
}

// TestFromBedrockJSON: an InvokeModel answer (Anthropic's shape) and a
// Converse answer.
func TestFromBedrockJSON(t *testing.T) {
	u, err := FromBedrockJSON([]byte(`{"id":"m","type":"message","content":[],"usage":{"input_tokens":10,"output_tokens":7}}`))
	if err != nil || u.InputTokens != 10 || u.OutputTokens != 7 || !u.Complete {
		t.Fatalf("invoke: %+v %v", u, err)
	}
	u, err = FromBedrockJSON([]byte(`{"output":{"message":{"role":"assistant","content":[{"text":"hi"}]}},"stopReason":"end_turn","usage":{"inputTokens":11,"outputTokens":5,"totalTokens":16}}`))
	if err != nil || u.InputTokens != 11 || u.OutputTokens != 5 || !u.Complete {
		t.Fatalf("converse: %+v %v", u, err)
	}
}
