// Package bench measures keygate against a bare reverse proxy on one
// machine: a fake OpenAI upstream, the standard library's
// httputil.ReverseProxy injecting the key (the baseline), and a real keygate
// with a realistic key, each driven by the same load generator at fixed
// concurrencies in alternating rounds, so drift on a shared machine falls on
// all of them alike.
package bench

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"

	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/gateway"
)

// UpstreamOptions shapes the fake upstream's answers.
func UpstreamOptions(key string) fakeprovider.Options {
	return fakeprovider.Options{
		APIKey:     key,
		ReplyBytes: 512,
		Chunks:     20,
		ChunkDelay: 5 * time.Millisecond,
		NoRecord:   true,
	}
}

// ServeUpstream serves a fake OpenAI API on ln until ctx ends.
func ServeUpstream(ctx context.Context, ln net.Listener, key string) error {
	return serveUntil(ctx, ln, fakeprovider.NewOpenAI(UpstreamOptions(key)))
}

// ServeAnthropicUpstream serves a fake Anthropic Messages API on ln until
// ctx ends, answering like ServeUpstream (same reply size and stream
// pacing): the upstream of the translated target.
func ServeAnthropicUpstream(ctx context.Context, ln net.Listener, key string) error {
	return serveUntil(ctx, ln, fakeprovider.NewAnthropic(UpstreamOptions(key)))
}

// NewBaseline is the yardstick: httputil.ReverseProxy with Rewrite that
// points at the upstream and injects its key, nothing else, over the same
// upstream transport keygate uses. pooled adds a copy-buffer pool, the one
// tuning a careful bare proxy would have, so the report can show keygate's
// cost over that too.
func NewBaseline(upstream *url.URL, key string, pooled bool) http.Handler {
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upstream)
			pr.Out.URL.Path = upstream.Path + pr.In.URL.Path[len("/v1"):]
			pr.Out.Header.Set("Authorization", "Bearer "+key)
		},
		Transport: gateway.NewTransport(gateway.TransportOptions{
			DialTimeout: 10 * time.Second, ResponseHeaderTimeout: time.Minute, MaxIdleConnsPerHost: 256,
		}),
	}
	if pooled {
		p.BufferPool = &pool{sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
	}
	return p
}

type pool struct{ p sync.Pool }

func (b *pool) Get() []byte    { return *b.p.Get().(*[]byte) }
func (b *pool) Put(buf []byte) { b.p.Put(&buf) }

// ServeBaseline serves a baseline proxy on ln until ctx ends.
func ServeBaseline(ctx context.Context, ln net.Listener, upstream *url.URL, key string, pooled bool) error {
	return serveUntil(ctx, ln, NewBaseline(upstream, key, pooled))
}

func serveUntil(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// collector is an OTLP/HTTP trace receiver that accepts and drops every
// export, as a collector on the same machine would: the cost measured is
// keygate's (spans, attributes, batching, encoding, sending), not the
// collector's.
type collector struct {
	URL string
	srv *http.Server
}

func startCollector() (*collector, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
			http.NotFound(w, r)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		// An empty ExportTraceServiceResponse: all spans accepted.
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	})}
	go func() { _ = srv.Serve(ln) }()
	return &collector{URL: "http://" + ln.Addr().String(), srv: srv}, nil
}

// Close stops the collector.
func (c *collector) Close() error { return c.srv.Close() }
