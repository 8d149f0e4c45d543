package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestAlertWithinSeconds measures the time from the request that trips a
// detector (a burst of failed authentication from one address) to the
// alert webhook receiving the alert: 5 seconds at most, the goal under one.
// The alert names the rule and the numbers, carries a signature, and lands
// on the audit trail.
func TestAlertWithinSeconds(t *testing.T) {
	var mu sync.Mutex
	var got []map[string]any
	var sigs []string
	received := make(chan time.Time, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var a map[string]any
		json.Unmarshal(b, &a)
		mu.Lock()
		got = append(got, a)
		sigs = append(sigs, r.Header.Get("X-Keygate-Signature"))
		mu.Unlock()
		received <- time.Now()
	}))
	defer hook.Close()
	cfg := testConfig(t, t.TempDir())
	cfg.Alerts.Webhook = hook.URL
	cfg.Egress.Allow = []string{"127.0.0.1"} // the receiver runs on loopback
	cfg.Alerts.AuthFailures = 5
	in := start(t, cfg, "")

	var tripped time.Time
	for i := range 6 {
		tripped = time.Now()
		postJSON(t, in.addrs.Gateway+"/v1/chat/completions", "kg_live_guess"+strings.Repeat("x", i), `{"model":"gpt-4o-mini"}`)
	}
	select {
	case at := <-received:
		latency := at.Sub(tripped)
		t.Logf("alert delivered %v after the request that tripped it", latency)
		if latency > 5*time.Second {
			t.Fatalf("alert took %v, more than 5 s", latency)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no alert within 5 s of the tripping request")
	}
	mu.Lock()
	a := got[0]
	sig := sigs[0]
	mu.Unlock()
	if !strings.HasPrefix(a["rule"].(string), "auth-failure") || a["client"] != "127.0.0.1" || !strings.Contains(a["summary"].(string), "6") || !strings.HasPrefix(sig, "sha256=") {
		t.Fatalf("alert %v, signature %q", a, sig)
	}
	var evs struct {
		Events []json.RawMessage `json:"events"`
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		decodeJSON(t, in.mustCLI(nil, "", "--json", "audit", "search", "--type", "alert"), &evs)
		if len(evs.Events) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the alert is not on the audit trail")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
