package main

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/fakeprovider"
)

// TestPrometheusMetrics: /metrics on the admin listener needs the admin
// credential and counts requests, denials, upstream latency, tokens and
// how much of each limit is in use, with no key ids or addresses in its
// labels unless per-key series are turned on.
func TestPrometheusMetrics(t *testing.T) {
	for _, perKey := range []bool{false, true} {
		cfg := testConfig(t, t.TempDir())
		cfg.Metrics.KeyLabels = perKey
		in := start(t, cfg, "")
		checkMetrics(t, in, perKey)
	}
}

func checkMetrics(t *testing.T, in *instance, perKey bool) {
	up := newUpstreams(t, fakeprovider.Options{}, fakeprovider.Options{})
	in.register(up)
	key := in.createKey("--name", "metered", "--rpm", "60", "--concurrency", "4")
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
		`keygate_limit_utilization_ratio_count{limit="requests_per_period"} 3`,
		`keygate_limit_utilization_ratio_bucket{limit="requests_per_period",le="0.1"} 3`,
		`keygate_limit_utilization_ratio_count{limit="concurrency"} 3`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, "127.0.0.1") {
		t.Error("/metrics carries an address")
	}
	hasKey := strings.Contains(body, `keygate_key_requests_total{key_id="key_`)
	if hasKey != perKey || (!perKey && strings.Contains(body, "key_")) {
		t.Errorf("per-key series on %v, key ids in /metrics: %v", perKey, hasKey)
	}
	if perKey && !strings.Contains(body, `outcome="proxied"} 3`) {
		t.Error("per-key request counter does not count the key's 3 requests")
	}
}
