package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/detect"
	"github.com/keygate/keygate/internal/fakeprovider"
)

// TestAgentLoopIsStopped: an agent that keeps sending requests whose
// conversations end alike (here the same failing tool result, its history
// growing each turn) raises an agent-loop alert, and with the rule mapped
// to suspend its key is refused from then on, before anything goes
// upstream. An agent whose conversation moves on is left alone.
func TestAgentLoopIsStopped(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Alerts.Loop.Repeats = 4
	cfg.Alerts.Actions = map[string]string{detect.RuleLoop: "suspend"}
	in := start(t, cfg, "")
	up := newUpstreams(t, fakeprovider.Options{}, fakeprovider.Options{})
	in.register(up)
	gw := in.addrs.Gateway
	step := `{"role":"assistant","content":"I will run the tests again."},{"role":"user","content":"FAIL: TestRetry expected 3 attempts, got 1"}`
	turn := func(history string) string {
		return `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"fix the flaky test"}` + history + `]}`
	}

	busy := in.createKey("--name", "moving-on")
	for i := range 8 {
		h := strings.Repeat(","+step, i) + `,{"role":"user","content":"now try attempt ` + string(rune('a'+i)) + `"}`
		if c, body := postJSON(t, gw+"/v1/chat/completions", busy, turn(h)); c != 200 {
			t.Fatalf("a conversation that moves on, turn %d: %d %s", i, c, body)
		}
	}

	stuck := in.createKey("--name", "stuck-agent")
	history := ""
	var refused string
	for i := 0; i < 20 && refused == ""; i++ {
		history += "," + step
		c, body := postJSON(t, gw+"/v1/chat/completions", stuck, turn(history))
		switch {
		case c == 200:
		case c == 403 && strings.Contains(body, "suspended"):
			refused = body
		default:
			t.Fatalf("turn %d of the loop: %d %s", i, c, body)
		}
		time.Sleep(20 * time.Millisecond) // the suspension is applied off the request path
	}
	if refused == "" {
		t.Fatal("an agent repeating the same step 20 times was never stopped")
	}
	n := up.openai.RequestCount()
	if c, _ := postJSON(t, gw+"/v1/chat/completions", stuck, turn(history)); c != 403 || up.openai.RequestCount() != n {
		t.Fatalf("the suspended key: %d, upstream requests %d -> %d", c, n, up.openai.RequestCount())
	}
	if c, body := postJSON(t, gw+"/v1/chat/completions", busy, turn(`,{"role":"user","content":"one more"}`)); c != 200 {
		t.Fatalf("the other agent after the loop alert: %d %s", c, body)
	}

	req, _ := http.NewRequest("GET", in.addrs.Admin+"/api/v1/alerts", nil)
	req.Header.Set("Authorization", "Bearer "+in.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Alerts []detect.Alert `json:"alerts"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("alerts: %s: %v", resp.Status, err)
	}
	var loops []detect.Alert
	for _, a := range out.Alerts {
		if a.Rule == detect.RuleLoop {
			loops = append(loops, a)
		}
	}
	if len(loops) != 1 || !strings.HasPrefix(loops[0].Summary, "4 requests") || !strings.Contains(loops[0].Summary, "alike") {
		t.Fatalf("agent-loop alerts %+v, want one for the stuck key at 4 repeats", loops)
	}
}
