package scrub

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/secret"
)

// words are the text of the sample bodies.
var words = strings.Fields(`the model answered with a long explanation of how the request was
handled and which tools were called along the way including search results citations and a
summary of the findings for the user who asked about Paris weather in June and the best
restaurants near the Eiffel Tower with prices opening hours and reviews from 2024`)

// sampleJSON returns about n bytes of chat-completion JSON, the same for
// the same n.
func sampleJSON(n int) string {
	rng := rand.New(rand.NewPCG(1, uint64(n)))
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, `{"id":"chatcmpl-%016x","object":"chat.completion.chunk","created":%d,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"`,
			rng.Uint64(), 1700000000+i)
		for range 8 + rng.IntN(24) {
			b.WriteString(words[rng.IntN(len(words))])
			b.WriteByte(' ')
		}
		b.WriteString(`"},"finish_reason":null}]}` + "\n")
	}
	return b.String()[:n]
}

// sampleSSE returns events server-sent events of a chat completion stream.
func sampleSSE(events int) [][]byte {
	rng := rand.New(rand.NewPCG(2, uint64(events)))
	out := make([][]byte, events)
	for i := range out {
		out[i] = fmt.Appendf(nil, "data: {\"id\":\"chatcmpl-%016x\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"%s \"}}]}\n\n",
			rng.Uint64(), words[rng.IntN(len(words))])
	}
	return out
}

// onlyWriter hides io.Discard's ReadFrom, so both sides of a benchmark copy
// through the same 32 KiB buffer, as ReverseProxy does.
type onlyWriter struct{ io.Writer }

// eventSource yields one event per Read, as a stream arrives.
type eventSource struct {
	events [][]byte
	i, off int
}

func (e *eventSource) Read(p []byte) (int, error) {
	if e.i == len(e.events) {
		return 0, io.EOF
	}
	n := copy(p, e.events[e.i][e.off:])
	e.off += n
	if e.off == len(e.events[e.i]) {
		e.i, e.off = e.i+1, 0
	}
	return n, nil
}

// BenchmarkBody copies bodies that hold no credential, plainly
// (impl=copy) and through a Reader (impl=scrub), with ReverseProxy's
// 32 KiB buffer: JSON of 1 KiB, 64 KiB and 1 MiB; 1 MiB of base64 (an
// image as b64_json, audio, embeddings), where every letter is frequent;
// a stream of 1,000 SSE events read one per Read as they arrive; and, for
// the cost of replacing, 64 KiB that echoes the key twenty times.
func BenchmarkBody(b *testing.B) {
	s, _ := basicSet(b)
	buf := make([]byte, 32<<10)
	dst := onlyWriter{io.Discard}
	bodies := []struct {
		name string
		doc  string
	}{
		{"1KiB", sampleJSON(1 << 10)},
		{"64KiB", sampleJSON(64 << 10)},
		{"1MiB", sampleJSON(1 << 20)},
		{"base64-1MiB", sampleBase64(1 << 20)},
		{"echoes-64KiB", sampleEchoes(64 << 10)},
	}
	for _, bd := range bodies {
		body := strings.NewReader(bd.doc)
		for _, scrub := range []bool{false, true} {
			b.Run("body="+bd.name+"/impl="+implName(scrub), func(b *testing.B) {
				b.SetBytes(int64(len(bd.doc)))
				b.ReportAllocs()
				for b.Loop() {
					body.Seek(0, io.SeekStart)
					var r io.Reader = struct{ io.Reader }{body}
					if scrub {
						r = s.Reader(body)
					}
					_, _ = io.CopyBuffer(dst, r, buf)
				}
			})
		}
	}
	events := sampleSSE(1000)
	total := 0
	for _, e := range events {
		total += len(e)
	}
	for _, scrub := range []bool{false, true} {
		b.Run("body=sse1000/impl="+implName(scrub), func(b *testing.B) {
			b.SetBytes(int64(total))
			b.ReportAllocs()
			for b.Loop() {
				var r io.Reader = &eventSource{events: events}
				if scrub {
					r = s.Reader(r)
				}
				_, _ = io.CopyBuffer(dst, r, buf)
			}
		})
	}
}

// implName names the two sides of a benchmark.
func implName(scrub bool) string {
	if scrub {
		return "scrub"
	}
	return "copy"
}

// sampleBase64 returns about n bytes of base64 JSON, the same for the same n.
func sampleBase64(n int) string {
	raw := make([]byte, n*3/4)
	rng := rand.New(rand.NewPCG(3, uint64(n)))
	for i := range raw {
		raw[i] = byte(rng.Uint32())
	}
	return `{"data":[{"b64_json":"` + base64.StdEncoding.EncodeToString(raw) + `"}]}`
}

// sampleEchoes returns about n bytes of JSON holding testKey twenty times.
func sampleEchoes(n int) string {
	doc := sampleJSON(n)
	for i := range 20 {
		at := i * (len(doc) / 20)
		doc = doc[:at] + testKey + doc[at+len(testKey):]
	}
	return doc
}

// BenchmarkForRequest builds the Set of a Bearer request and of a Basic
// one, as the gateway would per call without a cache, and finds it in a
// Cache.
func BenchmarkForRequest(b *testing.B) {
	for _, basic := range []bool{false, true} {
		req, _ := http.NewRequest("POST", "https://api.example.com/v1/chat/completions", nil)
		req.Header.Set("Content-Type", "application/json")
		if basic {
			req.SetBasicAuth(testUser, testKey)
		} else {
			req.Header.Set("Authorization", "Bearer "+testKey)
		}
		key := secret.New(testKey)
		b.Run(fmt.Sprintf("basic=%v/impl=build", basic), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ForRequest(req, key)
			}
		})
		c := NewCache(16)
		b.Run(fmt.Sprintf("basic=%v/impl=cache", basic), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.ForRequest(req, key)
			}
		})
	}
}

// BenchmarkOverhead measures a plain copy and a scrubbing one of the same
// body in alternating batches within each iteration, so both see the same
// machine load, and reports copy-ns/op, scrub-ns/op and their difference
// in percent. transport=memory reads the body from memory as BenchmarkBody
// does; transport=http reads it from a real HTTP server over loopback, as
// the gateway reads an upstream (the SSE stream flushes every event).
func BenchmarkOverhead(b *testing.B) {
	s, _ := basicSet(b)
	buf := make([]byte, 32<<10)
	dst := onlyWriter{io.Discard}
	docs := map[string][]byte{
		"1KiB":        []byte(sampleJSON(1 << 10)),
		"64KiB":       []byte(sampleJSON(64 << 10)),
		"1MiB":        []byte(sampleJSON(1 << 20)),
		"base64-1MiB": []byte(sampleBase64(1 << 20)),
	}
	events := sampleSSE(1000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/sse1000" {
			w.Header().Set("Content-Type", "text/event-stream")
			for _, e := range events {
				_, _ = w.Write(e)
				w.(http.Flusher).Flush()
			}
			return
		}
		_, _ = w.Write(docs[r.URL.Path[1:]])
	}))
	defer srv.Close()
	client := srv.Client()
	copyFrom := func(r io.Reader, scrub bool) {
		if scrub {
			r = s.Reader(r)
		} else {
			r = struct{ io.Reader }{r}
		}
		if _, err := io.CopyBuffer(dst, r, buf); err != nil {
			b.Fatal(err)
		}
	}
	for _, name := range []string{"1KiB", "64KiB", "1MiB", "base64-1MiB", "sse1000"} {
		b.Run("body="+name+"/transport=memory", func(b *testing.B) {
			doc := docs[name]
			paired(b, func(scrub bool) {
				if name == "sse1000" {
					copyFrom(&eventSource{events: events}, scrub)
					return
				}
				copyFrom(bytes.NewReader(doc), scrub)
			})
		})
		b.Run("body="+name+"/transport=http", func(b *testing.B) {
			paired(b, func(scrub bool) {
				resp, err := client.Get(srv.URL + "/" + name)
				if err != nil {
					b.Fatal(err)
				}
				copyFrom(resp.Body, scrub)
				resp.Body.Close()
			})
		})
	}
}

// paired runs run(false) and run(true) in alternating batches of equal
// size, each batch lasting at least 50µs, and reports the time of each.
func paired(b *testing.B, run func(scrub bool)) {
	batch := 1
	for {
		t := time.Now()
		for range batch {
			run(false)
		}
		if time.Since(t) > 50*time.Microsecond {
			break
		}
		batch *= 2
	}
	var plain, scrub time.Duration
	n := 0
	for b.Loop() {
		t0 := time.Now()
		for range batch {
			run(false)
		}
		t1 := time.Now()
		for range batch {
			run(true)
		}
		plain, scrub, n = plain+t1.Sub(t0), scrub+time.Since(t1), n+batch
	}
	b.ReportMetric(float64(plain.Nanoseconds())/float64(n), "copy-ns/op")
	b.ReportMetric(float64(scrub.Nanoseconds())/float64(n), "scrub-ns/op")
	b.ReportMetric(100*(float64(scrub)/float64(plain)-1), "%over")
}
