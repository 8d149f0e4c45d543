package translate

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// anthropicStream is an upstream Messages stream with n text deltas and one
// tool call of n/10 argument fragments.
func anthropicStream(n int) []byte {
	var b bytes.Buffer
	b.WriteString("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_fake_bench\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":250,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n\n")
	b.WriteString("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n")
	for i := range n {
		fmt.Fprintf(&b, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"token %d of the answer, \\\"quoted\\\"\"}}\n\n", i)
		if i%20 == 0 {
			b.WriteString("event: ping\ndata: {\"type\": \"ping\"}\n\n")
		}
	}
	b.WriteString("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n")
	b.WriteString("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_fake_bench\",\"name\":\"lookup\",\"input\":{}}}\n\n")
	for i := range n / 10 {
		fmt.Fprintf(&b, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"k%d\\\": 1, \"}}\n\n", i)
	}
	b.WriteString("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n")
	b.WriteString("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":512}}\n\n")
	b.WriteString("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
	return b.Bytes()
}

// openAIStream is an upstream chat.completion.chunk stream with n content
// chunks and one tool call of n/10 argument fragments.
func openAIStream(n int) []byte {
	var b bytes.Buffer
	const head = `data: {"id":"chatcmpl-fakebench","object":"chat.completion.chunk","created":1700000001,"model":"gpt-4o","system_fingerprint":"fp_fake","choices":[{"index":0,"delta":`
	b.WriteString(head + `{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}` + "\n\n")
	for i := range n {
		fmt.Fprintf(&b, head+`{"content":"token %d of the answer, \"quoted\""},"logprobs":null,"finish_reason":null}],"usage":null}`+"\n\n", i)
	}
	b.WriteString(head + `{"tool_calls":[{"index":0,"id":"call_fake_bench","type":"function","function":{"name":"lookup","arguments":""}}]},"logprobs":null,"finish_reason":null}],"usage":null}` + "\n\n")
	for i := range n / 10 {
		fmt.Fprintf(&b, head+`{"tool_calls":[{"index":0,"function":{"arguments":"{\"k%d\": 1, "}}]},"logprobs":null,"finish_reason":null}],"usage":null}`+"\n\n", i)
	}
	b.WriteString(head + `{},"logprobs":null,"finish_reason":"tool_calls"}],"usage":null}` + "\n\n")
	b.WriteString(`data: {"id":"chatcmpl-fakebench","object":"chat.completion.chunk","created":1700000001,"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":250,"completion_tokens":512,"total_tokens":762}}` + "\n\n")
	b.WriteString("data: [DONE]\n\n")
	return b.Bytes()
}

func countEvents(b []byte) int { return bytes.Count(b, []byte("\n\n")) }

// benchStream copies a whole translated stream to io.Discard in 32 KB reads,
// as an HTTP handler would, and reports the cost per upstream event.
func benchStream(b *testing.B, in []byte, translate func(io.ReadCloser) io.ReadCloser) {
	events := countEvents(in)
	buf := make([]byte, 32<<10)
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		r := translate(io.NopCloser(bytes.NewReader(in)))
		if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*events), "ns/event")
}

func BenchmarkMessagesToChatStream(b *testing.B) {
	benchStream(b, anthropicStream(500), func(u io.ReadCloser) io.ReadCloser { return MessagesToChatStream(u, "client-model", true) })
}

func BenchmarkChatToMessagesStream(b *testing.B) {
	benchStream(b, openAIStream(500), func(u io.ReadCloser) io.ReadCloser { return ChatToMessagesStream(u, "client-model") })
}

// BenchmarkPassThrough is the floor: copying the same stream untranslated.
func BenchmarkPassThrough(b *testing.B) {
	benchStream(b, anthropicStream(500), func(u io.ReadCloser) io.ReadCloser { return u })
}

// TestStreamAllocationsDoNotGrowWithEvents checks the translators allocate a
// fixed amount per stream, not per event: a stream ten times longer must not
// cost more than a few extra allocations (buffers growing once).
func TestStreamAllocationsDoNotGrowWithEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counting")
	}
	for _, c := range []struct {
		name string
		mk   func(int) []byte
		tr   func(io.ReadCloser) io.ReadCloser
	}{
		{"MessagesToChat", anthropicStream, func(u io.ReadCloser) io.ReadCloser { return MessagesToChatStream(u, "m", true) }},
		{"ChatToMessages", openAIStream, func(u io.ReadCloser) io.ReadCloser { return ChatToMessagesStream(u, "m") }},
	} {
		allocs := func(n int) float64 {
			in := c.mk(n)
			buf := make([]byte, 32<<10)
			return testing.AllocsPerRun(20, func() {
				r := c.tr(io.NopCloser(bytes.NewReader(in)))
				_, _ = io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf)
			})
		}
		small, large := allocs(100), allocs(1000)
		if large-small > 10 {
			t.Errorf("%s: %v allocations for 100 deltas, %v for 1000: the translator allocates per event", c.name, small, large)
		}
	}
}
