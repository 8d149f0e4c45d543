package leak

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/secret"
)

// prompt returns a chat request body of about n bytes with no credential.
func prompt(n int) []byte {
	var b strings.Builder
	for b.Len() < n {
		fmt.Fprintf(&b, "Refactor the handler so the %d retries back off; keep the tests green and explain the change. ", b.Len())
	}
	body, _ := json.Marshal(map[string]any{"model": "gpt-4o-mini", "messages": []map[string]string{{"role": "user", "content": b.String()}}})
	return body
}

func benchValues(n int) []Value {
	vs := make([]Value, n)
	for i := range vs {
		vs[i] = Value{Name: fmt.Sprint("secret:", i), Value: secret.New(value(24 + i%40))}
	}
	return vs
}

// BenchmarkCheck measures the check per KiB of body with 200 vault values
// watched, against copying the body (what forwarding it costs anyway).
// ns/op divided by KiB is the cost per KiB; MB/s compares directly.
func BenchmarkCheck(b *testing.B) {
	m := mustNew(b, Options{Values: benchValues(200), TokenIssuer: "https://keygate.internal"})
	for _, size := range []int{1 << 10, 16 << 10, 256 << 10} {
		body := prompt(size)
		b.Run(fmt.Sprintf("copy/%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				io.Copy(io.Discard, bytes.NewReader(body))
			}
		})
		b.Run(fmt.Sprintf("check/%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if hs := m.Check(body); len(hs) != 0 {
					b.Fatal(hs)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(body))*1024, "ns/KiB")
		})
	}
}

// BenchmarkStream measures a streamed answer checked and redacted in
// 128-byte pieces, the size of an SSE event.
func BenchmarkStream(b *testing.B) {
	m := mustNew(b, Options{Values: benchValues(200)})
	body := prompt(64 << 10)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		s := m.NewStream(io.Discard, true, nil)
		for i := 0; i < len(body); i += 128 {
			s.Write(body[i:min(len(body), i+128)])
		}
		s.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(body))*1024, "ns/KiB")
}

// BenchmarkNew measures building a Matcher for 1000 vault values, which
// happens when the vault changes.
func BenchmarkNew(b *testing.B) {
	vs := benchValues(1000)
	for b.Loop() {
		mustNew(b, Options{Values: vs})
	}
}
