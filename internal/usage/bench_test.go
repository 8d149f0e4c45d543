package usage

import (
	"bytes"
	"strings"
	"testing"
)

// embeddingsBatch asks for a batch of 64 full-size embeddings: an answer of
// about 1.4 MB, almost all numbers, with usage at its end.
func embeddingsBatch() string {
	inputs := make([]string, 64)
	for i := range inputs {
		inputs[i] = `"passage ` + strings.Repeat("x", i) + `"`
	}
	return `{"model":"text-embedding-3-large","dimensions":3072,"input":[` + strings.Join(inputs, ",") + `]}`
}

// BenchmarkFromJSON reads usage from plain answers of every kind keygate
// meters. "walk from start" hides the top-level key behind an escape, so
// FromJSON cannot find it from the end and reads the whole answer.
func BenchmarkFromJSON(b *testing.B) {
	bodies := []struct{ name, dialect, path, body string }{
		{"chat", DialectOpenAI, "/v1/chat/completions", `{"model":"gpt-4o-mini",` + chatMessages + `}`},
		{"responses", DialectOpenAI, "/v1/responses", `{"model":"gpt-4o-mini","instructions":"be brief","input":"tell me a short story"}`},
		{"messages", DialectAnthropic, "/v1/messages", `{` + claudeBody + `}`},
		{"embeddings_1MB", DialectOpenAI, "/v1/embeddings", embeddingsBatch()},
	}
	for _, c := range bodies {
		body := capture(b, c.dialect, c.path, c.body, testOptions())
		run := func(name string, body []byte) {
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(body)))
				for b.Loop() {
					if u, err := FromJSON(c.dialect, body); err != nil || !u.Complete {
						b.Fatal(u, err)
					}
				}
			})
		}
		run(c.name, body)
		if c.name == "chat" || c.name == "embeddings_1MB" {
			i := bytes.LastIndex(body, []byte(`"usage"`))
			escaped := append(append(bytes.Clone(body[:i]), `"us\u0061ge"`...), body[i+len(`"usage"`):]...)
			run(c.name+"/walk_from_start", escaped)
		}
	}
}

// BenchmarkStreamMeter meters whole streams written one event per Write, as
// the proxy copies them, and reports the cost per event.
func BenchmarkStreamMeter(b *testing.B) {
	for _, c := range calls() {
		if !c.stream {
			continue
		}
		stream := capture(b, c.dialect, c.path, c.body, testOptions())
		events := bytes.SplitAfter(stream, []byte("\n\n"))
		b.Run(strings.ReplaceAll(c.name, " ", "_"), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(stream)))
			m := NewStreamMeter(c.dialect)
			for b.Loop() {
				*m = StreamMeter{formats: m.formats, buf: m.buf[:0], line: m.line[:0]}
				for _, e := range events {
					m.Write(e)
				}
			}
			if u := m.Usage(); u.Complete != c.final {
				b.Fatalf("usage %+v", u)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(events)), "ns/event")
		})
	}
}
