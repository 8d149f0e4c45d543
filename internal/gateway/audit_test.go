package gateway_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/gateway"
)

// downSink is an audit destination that cannot be written, as a full disk
// or an unreachable collector would be.
type downSink struct{}

func (downSink) Write(context.Context, []audit.Event) error { return errors.New("disk full") }
func (downSink) Close() error                               { return nil }

// TestAuditFailClosed: with fail-closed auditing, once no sink can record
// the trail, requests are refused before anything goes upstream.
func TestAuditFailClosed(t *testing.T) {
	k := newKeys(t)
	up := newFake(t, "openai", fakeprovider.Options{})
	w, err := audit.NewWriter(audit.NewChain(audit.Event{}), []audit.Sink{downSink{}}, audit.WriterOptions{
		FailClosed: true, FlushInterval: 10 * time.Millisecond, Deadline: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		w.Close(ctx)
	})
	key := k.issue("audited", nil)
	g := newGatewayWith(t, k.verifier(), nil, func(o *gateway.Options) { o.Audit, o.AuditFailClosed = w, true }, up.upstream("openai", "openai", "gpt-*"))
	if a := send(t, "POST", g.url+"/v1/chat/completions", chatBody, "Authorization", "Bearer "+key); a.status != 200 {
		t.Fatalf("first request: %d", a.status)
	}
	deadline := time.Now().Add(5 * time.Second)
	for w.Healthy() {
		if time.Now().After(deadline) {
			t.Fatal("the writer never noticed its only sink is down")
		}
		time.Sleep(10 * time.Millisecond)
	}
	n := up.RequestCount()
	if _, code := openAIError(t, send(t, "POST", g.url+"/v1/chat/completions", chatBody, "Authorization", "Bearer "+key), http.StatusServiceUnavailable); code != "audit_unavailable" {
		t.Fatalf("with no audit sink working: %q", code)
	}
	if up.RequestCount() != n {
		t.Fatal("a request went upstream while the audit trail could not record it")
	}
	// Nor is a model listing or a passthrough call served, nor a token
	// issued or revoked; the health check still answers.
	for _, p := range []string{"/v1/models", "/proxy/svc/x"} {
		if _, code := openAIError(t, send(t, "GET", g.url+p, "", "Authorization", "Bearer "+key), http.StatusServiceUnavailable); code != "audit_unavailable" {
			t.Fatalf("GET %s with no audit sink working: %q", p, code)
		}
	}
	for _, p := range []string{"/oauth/token", "/oauth/revoke", "/oauth/introspect"} {
		a := send(t, "POST", g.url+p, "grant_type=refresh_token&token=x", "Content-Type", "application/x-www-form-urlencoded")
		if a.status != http.StatusServiceUnavailable || !strings.Contains(string(a.body), `"temporarily_unavailable"`) || a.header.Get("Retry-After") == "" {
			t.Fatalf("POST %s with no audit sink working: %d %s", p, a.status, a.body)
		}
	}
	if a := send(t, "GET", g.url+"/healthz", ""); a.status != 200 {
		t.Fatalf("health check: %d", a.status)
	}
}
