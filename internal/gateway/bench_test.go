package gateway

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/keysource"
	"github.com/keygate/keygate/internal/leak"
	"github.com/keygate/keygate/internal/limit"
	"github.com/keygate/keygate/internal/metrics"
	"github.com/keygate/keygate/internal/pricing"
	"github.com/keygate/keygate/internal/route"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/tracing"
	"github.com/keygate/keygate/internal/usage"
)

// memTransport answers upstream requests by calling the fake provider's
// handler in memory, so a benchmark measures the proxy, not the network.
type memTransport struct{ h http.Handler }

func (t memTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	resp := rec.Result()
	resp.Request = r // as net/http's transport sets it
	return resp, nil
}

// keyMap is a Lookup over a map: the verifier's cache sits in front of it.
type keyMap map[[32]byte]store.Key

func (m keyMap) GetKey(_ context.Context, id string) (store.Key, error) {
	for _, k := range m {
		if k.ID == id {
			return k, nil
		}
	}
	return store.Key{}, store.ErrNotFound
}

func (m keyMap) GetKeyByHash(_ context.Context, h []byte) (store.Key, error) {
	if k, ok := m[[32]byte(h)]; ok {
		return k, nil
	}
	return store.Key{}, store.ErrNotFound
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(c int) { s.code = c; s.ResponseWriter.WriteHeader(c) }

// discardWriter is a ResponseWriter that keeps nothing.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

const benchBody = `{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write one sentence about reverse proxies."}],"max_tokens":128}`

// BenchmarkServeHTTP compares keygate's full request path (key check,
// body peek, routing, allowances, credential swap, access log) with a bare
// httputil.ReverseProxy that only injects the key, over the same in-memory
// upstream. The difference is what keygate adds per request.
func BenchmarkServeHTTP(b *testing.B) {
	upKey := "bench-upstream-key-123"
	up := fakeprovider.NewOpenAI(fakeprovider.Options{APIKey: upKey, NoRecord: true})
	tr := memTransport{up}
	base, _ := url.Parse("http://upstream.invalid/v1")

	pepper := bytes.Repeat([]byte{7}, 32)
	h, _ := apikey.NewHasher(pepper)
	raw, _ := apikey.Generate("live")
	hash := h.Hash(raw.Reveal())
	exp := time.Now().Add(24 * time.Hour)
	keys := keyMap{hash: {ID: "key_bench", Name: "bench", Hash: hash[:], AllowModels: []string{"gpt-4o*"}, AllowProviders: []string{"openai"}, ExpiresAt: &exp}}
	table := route.NewTable([]*route.Upstream{{Name: "openai", Dialect: "openai", BaseURL: base, Models: []string{"gpt-*"}, Key: secret.New(upKey)}})

	run := func(b *testing.B, handler http.Handler, key string) {
		b.ReportAllocs()
		w := &discardWriter{h: http.Header{}}
		ok := 0
		for b.Loop() {
			r := httptest.NewRequest("POST", "/v1/chat/completions", bytes.NewReader([]byte(benchBody)))
			r.Header.Set("Authorization", "Bearer "+key)
			r.Header.Set("Content-Type", "application/json")
			clear(w.h)
			sw := &statusWriter{ResponseWriter: w}
			handler.ServeHTTP(sw, r)
			if sw.code == 0 || sw.code == http.StatusOK {
				ok++
			}
		}
		if ok != b.N {
			b.Fatalf("%d of %d requests failed", b.N-ok, b.N)
		}
	}
	for _, pooled := range []bool{false, true} {
		name := "baseline"
		if pooled {
			name = "baseline+pool"
		}
		b.Run(name, func(b *testing.B) {
			rp := &httputil.ReverseProxy{Transport: tr, Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(base)
				pr.Out.URL.Path = "/v1/chat/completions"
				pr.Out.Header.Set("Authorization", "Bearer "+upKey)
			}}
			if pooled {
				rp.BufferPool = newBufferPool()
			}
			run(b, rp, "client-key")
		})
	}
	for _, accessLog := range []bool{false, true} {
		name := "keygate"
		if accessLog {
			name = "keygate+accesslog"
		}
		b.Run(name, func(b *testing.B) {
			g := New(Options{
				Keys: keysource.New(h, keys), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
				MaxBodyBytes: 1 << 20, Transport: tr, AccessLog: accessLog,
			}, table)
			run(b, g, raw.Reveal())
		})
	}
	// The credential check on requests and answers, with one vault value to
	// look for, beside "keygate" without it: what the check costs.
	b.Run("keygate+leakcheck", func(b *testing.B) {
		g := New(Options{
			Keys: keysource.New(h, keys), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			MaxBodyBytes: 1 << 20, Transport: tr, Leaks: &LeakOptions{},
		}, table)
		m, err := leak.New(leak.Options{Values: []leak.Value{{Name: "provider/openai", Value: secret.New(upKey)}}})
		if err != nil {
			b.Fatal(err)
		}
		g.SetLeakMatcher(m)
		run(b, g, raw.Reveal())
	})
	// As `keygate serve` runs by default: usage metered and recorded, failed
	// authentication throttled; then with a key under every kind of limit.
	prices, _ := pricing.NewTable(nil)
	limited := keys[hash]
	limited.ID = "key_limited"
	limited.Limits = []byte(`{"rps":1000000000,"rpm":100000000,"tpm":100000000,"concurrency":100000,` +
		`"quotas":[{"limit":1000000000000,"unit":"requests","period":"day"}],"budgets":[{"micro_usd":1000000000000,"period":"month"}]}`)
	limRaw, _ := apikey.Generate("live")
	limHash := h.Hash(limRaw.Reveal())
	limited.Hash = limHash[:]
	keys[limHash] = limited
	// Audit off and on, in the same run: every request chained and written
	// to a synced JSON-lines file.
	b.Run("keygate+audit", func(b *testing.B) {
		f, err := audit.OpenFile(filepath.Join(b.TempDir(), "audit.jsonl"), audit.FileOptions{})
		if err != nil {
			b.Fatal(err)
		}
		w, err := audit.NewWriter(audit.NewChain(audit.Event{}), []audit.Sink{f}, audit.WriterOptions{})
		if err != nil {
			b.Fatal(err)
		}
		defer w.Close(context.Background())
		g := New(Options{
			Keys: keysource.New(h, keys), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			MaxBodyBytes: 1 << 20, Transport: tr, Audit: w,
		}, table)
		run(b, g, raw.Reveal())
	})
	for _, tc := range []struct{ name, key string }{{"keygate+metering", raw.Reveal()}, {"keygate+limits", limRaw.Reveal()}} {
		b.Run(tc.name, func(b *testing.B) {
			mem := limit.NewMemory()
			g := New(Options{
				Keys: keysource.New(h, keys), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
				MaxBodyBytes: 1 << 20, Transport: tr,
				Limits: LimitOptions{
					Shared: mem, Local: mem, Prices: prices, Location: time.UTC, DefaultMaxTokens: 4096,
					Usage: usage.NewRecorder(nil, time.UTC, nil), AuthFailures: 10, AuthFailureWindow: 10 * time.Minute,
				},
			}, table)
			run(b, g, tc.key)
		})
	}
}

// BenchmarkTracing runs the same data path with tracing off, with every
// request traced and exported over OTLP/HTTP to a collector in this
// process, and with one trace in ten kept, in one run: the differences
// are what tracing costs. The metrics (with the overhead histogram) are
// on in all three.
func BenchmarkTracing(b *testing.B) {
	upKey := "bench-upstream-key-123"
	up := fakeprovider.NewOpenAI(fakeprovider.Options{APIKey: upKey, NoRecord: true})
	tr := memTransport{up}
	base, _ := url.Parse("http://upstream.invalid/v1")
	h, _ := apikey.NewHasher(bytes.Repeat([]byte{7}, 32))
	raw, _ := apikey.Generate("live")
	hash := h.Hash(raw.Reveal())
	keys := keyMap{hash: {ID: "key_bench", Name: "bench", Hash: hash[:]}}
	table := route.NewTable([]*route.Upstream{{Name: "openai", Dialect: "openai", BaseURL: base, Models: []string{"gpt-*"}, Key: secret.New(upKey)}})
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()
	for _, name := range []string{"off", "otlp", "otlp-sampled-10pct"} {
		b.Run(name, func(b *testing.B) {
			o := Options{
				Keys: keysource.New(h, keys), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
				MaxBodyBytes: 1 << 20, Transport: tr, Metrics: metrics.New(metrics.Options{}),
			}
			if name != "off" {
				ratio := 1.0
				if name == "otlp-sampled-10pct" {
					ratio = 0.1
				}
				tp, err := tracing.New(context.Background(), tracing.Options{Endpoint: collector.URL, SampleRatio: ratio})
				if err != nil {
					b.Fatal(err)
				}
				defer tp.Shutdown(context.Background())
				o.Tracer = tp.Tracer()
			}
			g := New(o, table)
			b.ReportAllocs()
			w := &discardWriter{h: http.Header{}}
			for b.Loop() {
				r := httptest.NewRequest("POST", "/v1/chat/completions", bytes.NewReader([]byte(benchBody)))
				r.Header.Set("Authorization", "Bearer "+raw.Reveal())
				clear(w.h)
				sw := &statusWriter{ResponseWriter: w}
				g.ServeHTTP(sw, r)
				if sw.code != 0 && sw.code != http.StatusOK {
					b.Fatalf("status %d", sw.code)
				}
			}
		})
	}
}
