package usage

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzStreamMeter checks that no input panics the meter and that splitting
// a stream into writes never changes what it reads.
func FuzzStreamMeter(f *testing.F) {
	f.Add([]byte("data: {\"usage\":{\"prompt_tokens\":1}}\n\n"), uint16(3), uint16(20))
	f.Add([]byte("event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":9}}\r\n\r\n"), uint16(10), uint16(1))
	f.Add([]byte("event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":2,\"output_tokens\":3}}}\n\n"), uint16(40), uint16(7))
	f.Add([]byte("data: {\"choices\":[{\"delta\":{\"content\":\"a\\\"\"}}],\"usage\":null}\n\ndata: [DONE]\n\n"), uint16(0), uint16(2))
	f.Add([]byte("data: {\"a\":\ndata: \"b\\\n\r\n\n\"usage\":{\"us\\u0061ge\":{}}:"), uint16(5), uint16(3))
	f.Fuzz(func(t *testing.T, b []byte, split, step uint16) {
		for _, d := range []string{DialectOpenAI, DialectAnthropic, ""} {
			want := meter(d, b)
			s := min(int(split), len(b))
			m := NewStreamMeter(d)
			m.Write(bytes.Clone(b[:s]))
			m.Write(bytes.Clone(b[s:]))
			if got := m.Usage(); got != want {
				t.Fatalf("dialect %q split at %d: %+v, one write: %+v", d, s, got, want)
			}
			n := int(step%64) + 1
			m = NewStreamMeter(d)
			for i := 0; i < len(b); i += n {
				m.Write(bytes.Clone(b[i:min(i+n, len(b))]))
			}
			if got := m.Usage(); got != want {
				t.Fatalf("dialect %q in writes of %d: %+v, one write: %+v", d, n, got, want)
			}
		}
	})
}

// FuzzFromJSON checks FromJSON against encoding/json: on a valid JSON body
// it reads the same usage and fails exactly when encoding/json does; on
// anything else it does not panic.
func FuzzFromJSON(f *testing.F) {
	for _, s := range []string{
		`{"usage":{"prompt_tokens":1,"completion_tokens":2}}`, `{"usage":null}`, `{}`, `[]`, `null`, ``,
		`{"data":[{"usage":{"prompt_tokens":3}}],"usage":{"input_tokens":4,"output_tokens":5}}`,
		`{"usage":{"input_tokens":1,"cache_read_input_tokens":2,"cache_creation_input_tokens":3}}`,
		`{"usage":{"prompt_tokens_details":{"cached_tokens":6},"input_tokens_details":null}}`,
		`{"us\u0061ge":{"prompt_tokens":1},"usage":{"prompt_tokens":2},"x":"\"usage\":{}"}`,
		`{"usage":{"prompt_tokens":1.0}}`, `{"usage":{"prompt_tokens":-1}}`, `{"usage":[]}`,
		`{"a":"usage","b":["usage"],"usage":{}}`, `{"x":{"usage":{"prompt_tokens":9}}}`,
		` {"usage" : { "output_tokens" : 7 } } `, `{"a":"\\","usage":{"input_tokens":1}}`,
		`{"t":"\u003c","usa\u0067e":{"input_tokens":2}}`, `{"t":"\u003cusage\u003e"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := FromJSON(DialectOpenAI, body)
		if err != nil && got != (Usage{}) {
			t.Fatalf("FromJSON(%q) = %+v with error %v", body, got, err)
		}
		if !json.Valid(body) {
			return
		}
		var top map[string]json.RawMessage
		if json.Unmarshal(body, &top) != nil || top == nil {
			if err == nil {
				t.Fatalf("FromJSON(%q) accepted a body that is not an object", body)
			}
			return
		}
		want, _, werr := refUsage(top["usage"])
		if (err != nil) != (werr != nil) || got != want {
			t.Fatalf("FromJSON(%q) = %+v, %v; encoding/json reads %+v, %v", body, got, err, want, werr)
		}
	})
}
