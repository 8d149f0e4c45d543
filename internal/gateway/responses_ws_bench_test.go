package gateway_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/route"
)

// BenchmarkResponsesWebSocket times one streamed response, from the
// request to its response.completed event, over each transport in the same
// run: straight to the fake provider (direct), and through keygate, over
// HTTP with server-sent events (sse) and over a WebSocket, to a provider
// WebSocket (ws) or to HTTP streams upstream (ws-http-upstream). Each
// WebSocket benchmark keeps one socket open for all its responses, as
// Codex does; each HTTP one reuses pooled connections. What keygate adds
// to a response is the keygate row less the direct row of its transport.
//
//	go test ./internal/gateway -run '^$' -bench ResponsesWebSocket -benchtime 2000x
func BenchmarkResponsesWebSocket(b *testing.B) {
	up := newFakeTB(b, fakeprovider.Options{NoRecord: true})
	ks := newKeys(b)
	key := ks.issue("bench", nil)
	newGW := func(httpUpstream bool) string {
		g := gateway.New(gateway.Options{
			Keys: ks.verifier(), Log: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxBodyBytes: 1 << 20,
			Transport:   gateway.NewTransport(gateway.TransportOptions{DialTimeout: 5 * time.Second, ResponseHeaderTimeout: 20 * time.Second, MaxIdleConnsPerHost: 16}),
			Now:         func() time.Time { return gatewayNow },
			ResponsesWS: gateway.ResponsesWSOptions{HTTPUpstream: httpUpstream},
		}, route.NewTable([]*route.Upstream{upstreamAt("openai", "openai", up.url+"/v1", up.key, "gpt-*")}))
		srv := httptest.NewServer(g)
		b.Cleanup(srv.Close)
		return srv.URL
	}
	gwURL, gwHTTPUp := newGW(false), newGW(true)
	const input = `"input":[{"role":"user","content":[{"type":"input_text","text":"write a haiku about gateways"}]}]`
	sse := func(b *testing.B, base, bearer string) {
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
		body := []byte(`{"model":"gpt-4o-mini","stream":true,` + input + `}`)
		b.ReportAllocs()
		for b.Loop() {
			req, _ := http.NewRequest(http.MethodPost, base+"/v1/responses", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+bearer)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			all, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !bytes.Contains(all, []byte("response.completed")) {
				b.Fatalf("%d %s", resp.StatusCode, all)
			}
		}
	}
	ws := func(b *testing.B, base, bearer string) {
		ctx := context.Background()
		h := http.Header{}
		h.Set("Authorization", "Bearer "+bearer)
		conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/v1/responses", &websocket.DialOptions{HTTPHeader: h})
		if err != nil {
			b.Fatal(err)
		}
		defer conn.CloseNow()
		conn.SetReadLimit(1 << 20)
		event := []byte(`{"type":"response.create","model":"gpt-4o-mini",` + input + `}`)
		b.ReportAllocs()
		for b.Loop() {
			if err := conn.Write(ctx, websocket.MessageText, event); err != nil {
				b.Fatal(err)
			}
			for {
				_, msg, err := conn.Read(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if bytes.HasPrefix(msg, []byte(`{"type":"response.completed"`)) {
					break
				}
				if bytes.HasPrefix(msg, []byte(`{"type":"error"`)) {
					b.Fatalf("%s", msg)
				}
			}
		}
		conn.Close(websocket.StatusNormalClosure, "")
	}
	b.Run("direct/sse", func(b *testing.B) { sse(b, up.url, up.key) })
	b.Run("direct/ws", func(b *testing.B) { ws(b, up.url, up.key) })
	b.Run("keygate/sse", func(b *testing.B) { sse(b, gwURL, key) })
	b.Run("keygate/ws", func(b *testing.B) { ws(b, gwURL, key) })
	b.Run("keygate/ws-http-upstream", func(b *testing.B) { ws(b, gwHTTPUp, key) })
}
