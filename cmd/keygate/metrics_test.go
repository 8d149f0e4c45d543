package main

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/fakeprovider"
)

// TestPrometheusMetrics: /metrics on the admin listener needs the admin
// credential and counts requests, denials, upstream latency and tokens,
// with no key ids or addresses in its labels.
func TestPrometheusMetrics(t *testing.T) {
	in := start(t, testConfig(t, t.TempDir()), "")
	up := newUpstreams(t, fakeprovider.Options{}, fakeprovider.Options{})
	in.register(up)
	key := in.createKey("--name", "metered")
	chat := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
	for range 3 {
		postJSON(t, in.addrs.Gateway+"/v1/chat/completions", key, chat)
	}
	postJSON(t, in.addrs.Gateway+"/v1/chat/completions", "kg_live_not-a-key", chat)

	resp, err := http.Get(in.addrs.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("/metrics without the admin credential: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", in.addrs.Admin+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+in.admin)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body := string(b)
	for _, want := range []string{
		`keygate_requests_total{code="2xx",dialect="openai",outcome="proxied"} 3`,
		`keygate_requests_total{code="4xx",dialect="openai",outcome="denied"} 1`,
		`keygate_denials_total{reason="invalid_api_key"} 1`,
		`keygate_upstream_duration_seconds_count{provider="openai"} 3`,
		`keygate_tokens_total{direction="output",provider="openai"}`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, "key_") || strings.Contains(body, "127.0.0.1") {
		t.Error("/metrics carries a key id or an address")
	}
}
