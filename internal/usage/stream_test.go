package usage

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// streams returns the captured streaming answers of calls.
func streams(t *testing.T) map[string]call {
	out := map[string]call{}
	for _, c := range calls() {
		if c.stream {
			c.body = string(capture(t, c.dialect, c.path, c.body, testOptions()))
			out[c.name] = c
		}
	}
	return out
}

// TestEverySplit: however the stream is cut into writes, the result is the
// same as for one write.
func TestEverySplit(t *testing.T) {
	for name, c := range streams(t) {
		t.Run(name, func(t *testing.T) {
			stream := []byte(c.body)
			want := meter(c.dialect, stream)
			bytewise := NewStreamMeter(c.dialect)
			for i := range stream {
				bytewise.Write(stream[i : i+1])
			}
			if got := bytewise.Usage(); got != want {
				t.Fatalf("one byte per write: %+v, want %+v", got, want)
			}
			for i := 0; i <= len(stream); i++ {
				m := NewStreamMeter(c.dialect)
				// Separate slices, so a meter that kept a reference to an
				// earlier write would see it overwritten.
				a, b := bytes.Clone(stream[:i]), bytes.Clone(stream[i:])
				m.Write(a)
				clear(a)
				m.Write(b)
				if got := m.Usage(); got != want {
					t.Fatalf("split at %d: %+v, want %+v", i, got, want)
				}
			}
		})
	}
}

func TestCRLF(t *testing.T) {
	for name, c := range streams(t) {
		want := meter(c.dialect, []byte(c.body))
		crlf := []byte(strings.ReplaceAll(c.body, "\n", "\r\n"))
		if got := meter(c.dialect, crlf); got != want {
			t.Errorf("%s with CRLF: %+v, want %+v", name, got, want)
		}
		m := NewStreamMeter(c.dialect)
		for i := range crlf {
			m.Write(crlf[i : i+1])
		}
		if got := m.Usage(); got != want {
			t.Errorf("%s with CRLF, one byte per write: %+v, want %+v", name, got, want)
		}
	}
}

// TestTruncated: a stream cut anywhere before the end of its final usage
// event is not Complete and reports the figures seen so far.
func TestTruncated(t *testing.T) {
	for name, c := range streams(t) {
		if !c.final {
			continue
		}
		stream := []byte(c.body)
		full := meter(c.dialect, stream)
		var finalEnd, startEnd int
		switch c.dialect {
		case DialectAnthropic:
			finalEnd = endOfEvent(t, stream, "event: message_delta")
			startEnd = endOfEvent(t, stream, "event: message_start")
		default:
			if strings.HasPrefix(c.path, "/v1/responses") {
				finalEnd = endOfEvent(t, stream, "event: response.completed")
			} else {
				finalEnd = endOfEvent(t, stream, `"usage":{`)
			}
			startEnd = len(stream) + 1
		}
		var prev Usage
		for cut := 0; cut <= len(stream); cut++ {
			got := meter(c.dialect, stream[:cut])
			if got.StreamedBytes < prev.StreamedBytes {
				t.Fatalf("%s cut at %d: StreamedBytes went down", name, cut)
			}
			prev = got
			if cut >= finalEnd {
				if got.Complete != true || got.InputTokens != full.InputTokens || got.OutputTokens != full.OutputTokens {
					t.Fatalf("%s cut at %d, after the final usage: %+v", name, cut, got)
				}
				continue
			}
			want := Usage{StreamedBytes: got.StreamedBytes}
			if cut >= startEnd { // Anthropic's opening figures
				want.InputTokens, want.OutputTokens = full.InputTokens, 1
			}
			if got != want {
				t.Fatalf("%s cut at %d: %+v, want %+v", name, cut, got, want)
			}
		}
	}
}

// endOfEvent returns the offset just past the blank line ending the first
// event containing marker.
func endOfEvent(t *testing.T, stream []byte, marker string) int {
	i := bytes.Index(stream, []byte(marker))
	if i < 0 {
		t.Fatalf("no %q in stream", marker)
	}
	return i + bytes.Index(stream[i:], []byte("\n\n")) + 2
}

func TestEventForms(t *testing.T) {
	tests := []struct {
		name, dialect, stream string
		want                  Usage
	}{
		{"multi-line data", DialectOpenAI,
			"data: {\"choices\":[],\ndata: \"usage\":{\"prompt_tokens\":3,\ndata: \"completion_tokens\":4}}\n\n",
			Usage{InputTokens: 3, OutputTokens: 4, Complete: true}},
		{"no space after colon", DialectAnthropic,
			"event:message_delta\ndata:{\"type\":\"message_delta\",\"usage\":{\"output_tokens\":5}}\n\n",
			Usage{OutputTokens: 5, Complete: true}},
		{"no event lines", DialectAnthropic,
			"data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":7,\"output_tokens\":1}}}\n\n" +
				"data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hey\"}}\n\n",
			Usage{InputTokens: 7, OutputTokens: 1, StreamedBytes: 3}},
		{"comments, ids and retry", DialectAnthropic,
			": keep-alive\nid: 4\nretry: 100\nevent: message_delta\n: note\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":5}}\n\n",
			Usage{OutputTokens: 5, Complete: true}},
		{"anthropic delta with input and cache", DialectAnthropic,
			"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":4,\"output_tokens\":1}}}\n\n" +
				"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":20}}\n\n" +
				"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":6,\"output_tokens\":30}}\n\n",
			Usage{InputTokens: 12, OutputTokens: 30, CacheReadTokens: 4, CacheWriteTokens: 6, Complete: true}},
		{"tool call and thinking deltas", DialectAnthropic,
			"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\":1\"}}\n\n" +
				"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hmm\"}}\n\n",
			Usage{StreamedBytes: 11}},
		{"chat tool call arguments", DialectOpenAI,
			"data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"x\\\"\"}}]}}]}\n\n",
			Usage{StreamedBytes: 6}},
		{"responses incomplete", DialectOpenAI,
			"event: response.incomplete\ndata: {\"type\":\"response.incomplete\",\"response\":{\"status\":\"incomplete\",\"usage\":{\"input_tokens\":9,\"output_tokens\":16}}}\n\n",
			Usage{InputTokens: 9, OutputTokens: 16, Complete: true}},
		{"responses created has null usage", DialectOpenAI,
			"event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"usage\":null}}\n\n",
			Usage{}},
		{"usage spoofed in content", DialectOpenAI,
			"data: {\"choices\":[{\"delta\":{\"content\":\"\\\"usage\\\":{\\\"prompt_tokens\\\":1}\"}}],\"usage\":null}\n\n",
			Usage{StreamedBytes: 31}},
		{"usage null then nested usage", DialectOpenAI,
			"data: {\"choices\":[{\"delta\":{},\"usage\":{\"prompt_tokens\":1}}],\"usage\":null,\"x\":1}\n\n",
			Usage{}},
		{"event without blank line is not dispatched", DialectAnthropic,
			"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":5}}\n",
			Usage{}},
		{"malformed usage is ignored", DialectOpenAI,
			"data: {\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":3}}\n\ndata: {\"usage\":{\"prompt_tokens\":\"x\"}}\n\n",
			Usage{InputTokens: 2, OutputTokens: 3, Complete: true}},
		{"long event name", DialectOpenAI,
			"event: " + strings.Repeat("n", 100) + "\ndata: {\"usage\":{\"prompt_tokens\":2}}\n\n",
			Usage{}},
		{"done and garbage", DialectOpenAI, "data: [DONE]\n\ndata: nonsense\n\ndata\n\nevent\n\n\n\n", Usage{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, s := range []string{tt.stream, strings.ReplaceAll(tt.stream, "\n", "\r\n")} {
				if got := meter(tt.dialect, []byte(s)); got != tt.want {
					t.Fatalf("%q: %+v, want %+v", s, got, tt.want)
				}
				m := NewStreamMeter(tt.dialect)
				for i := range s {
					m.Write([]byte(s[i : i+1]))
				}
				if got := m.Usage(); got != tt.want {
					t.Fatalf("%q one byte per write: %+v, want %+v", s, got, tt.want)
				}
			}
		})
	}
}

// TestOverlongEvent: an event past MaxEventBytes is skipped, whether it
// arrives in one write or many, and the stream is read on after it.
func TestOverlongEvent(t *testing.T) {
	final := "data: {\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}\n\n"
	want := Usage{InputTokens: 7, OutputTokens: 3, Complete: true}
	long := "data: {\"usage\":{\"prompt_tokens\":5},\"pad\":\"" + strings.Repeat("x", MaxEventBytes) + "\"}\n\n"
	multi := strings.Repeat("data: {\"usage\":{\"prompt_tokens\":5},\"pad\":\""+strings.Repeat("y", 1000)+"\"}\n", MaxEventBytes/1000+1) + "\n"
	for name, s := range map[string]string{"one line": long, "many data lines": multi} {
		stream := []byte(s + final)
		if got := meter(DialectOpenAI, stream); got != want {
			t.Errorf("%s, one write: %+v", name, got)
		}
		m := NewStreamMeter(DialectOpenAI)
		for len(stream) > 0 {
			n := min(len(stream), 4093)
			m.Write(stream[:n])
			stream = stream[n:]
		}
		if got := m.Usage(); got != want {
			t.Errorf("%s, 4 KB writes: %+v", name, got)
		}
		if cap(m.line) > bufKeep || cap(m.buf) > bufKeep {
			t.Errorf("%s: the meter kept %d + %d bytes of buffer", name, cap(m.line), cap(m.buf))
		}
	}
	// Just under the limit is still read.
	pad := MaxEventBytes - len("data: {\"usage\":{\"prompt_tokens\":5},\"pad\":\"\"}\r")
	edge := "data: {\"usage\":{\"prompt_tokens\":5},\"pad\":\"" + strings.Repeat("z", pad) + "\"}\r\n\r\n"
	m := NewStreamMeter(DialectOpenAI)
	m.Write([]byte(edge[:100]))
	m.Write([]byte(edge[100:]))
	if got := m.Usage(); got.InputTokens != 5 || got != meter(DialectOpenAI, []byte(edge)) {
		t.Errorf("event of exactly MaxEventBytes: %+v", got)
	}
}

// TestNoAllocations: content deltas, usage events and plain answers are
// read without allocating once a meter is warm.
func TestNoAllocations(t *testing.T) {
	for name, c := range streams(t) {
		events := bytes.SplitAfter([]byte(c.body), []byte("\n\n"))
		m := NewStreamMeter(c.dialect)
		for _, e := range events {
			m.Write(e)
		}
		if n := testing.AllocsPerRun(20, func() {
			for _, e := range events {
				m.Write(e)
			}
		}); n != 0 {
			t.Errorf("%s: %v allocations per stream", name, n)
		}
	}
	for _, c := range calls() {
		if c.stream {
			continue
		}
		body := capture(t, c.dialect, c.path, c.body, testOptions())
		if n := testing.AllocsPerRun(20, func() { _, _ = FromJSON(c.dialect, body) }); n != 0 {
			t.Errorf("FromJSON %s: %v allocations", c.name, n)
		}
	}
	if n := testing.AllocsPerRun(20, func() { _, _ = FromJSON(DialectOpenAI, []byte(`{"usage":"x"}`)) }); n != 0 {
		t.Errorf("FromJSON error: %v allocations", n)
	}
}

// TestStreamedBytesEscapes: content size counts JSON escapes as written.
func TestStreamedBytesEscapes(t *testing.T) {
	text := "tab\there \"quoted\" \\ é 😀 <b>"
	quoted, _ := json.Marshal(text)
	ev := `data: {"choices":[{"index":0,"delta":{"content":` + string(quoted) + `}}]}` + "\n\n"
	if got := meter(DialectOpenAI, []byte(ev)); got.StreamedBytes != int64(len(quoted)-2) {
		t.Fatalf("StreamedBytes = %d, want %d", got.StreamedBytes, len(quoted)-2)
	}
}
