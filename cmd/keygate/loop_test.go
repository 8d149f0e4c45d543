package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/keygate/keygate/internal/detect"
	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/mcpgate"
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

	// The alert is stored behind the suspension: wait for it.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		loops := ruleAlerts(t, in, detect.RuleLoop)
		if len(loops) == 1 && strings.HasPrefix(loops[0].Summary, "4 requests") && strings.Contains(loops[0].Summary, "alike") {
			break
		}
		if len(loops) > 1 || time.Now().After(deadline) {
			t.Fatalf("agent-loop alerts %+v, want one for the stuck key at 4 repeats", loops)
		}
	}
}

// TestToolCallsReachTheDetectors: MCP tool calls pass the detectors like
// model calls; a key that has worked a while and then calls a tool it
// never called raises a new-tool alert naming it.
func TestToolCallsReachTheDetectors(t *testing.T) {
	up := newFakeToolServer(t)
	cfg := testConfig(t, t.TempDir())
	cfg.Alerts.Rate.Forming = time.Second // the new-tool rule's learning time
	in := start(t, cfg, "")
	in.mustCLI(nil, up.token, "secret", "put", "gh-token", "--stdin")
	in.mustCLI(nil, "", "mcp", "add", "github", "--url", up.url, "--secret", "gh-token", "--allow-private")
	key := in.createKey("--name", "tool-agent", "--allow-tool", "github/*")
	cs := connectMCP(t, in.addrs.Gateway+mcpgate.Path, key)
	call := func(tool string) {
		t.Helper()
		if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: tool, Arguments: map[string]any{"text": "x"}}); err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
	}
	call("github__echo")
	if got := ruleAlerts(t, in, detect.RuleNewTool); len(got) != 0 {
		t.Fatalf("the first tool of a new key raised %+v", got)
	}
	time.Sleep(2500 * time.Millisecond)
	call("github__echo")
	call("github__read_config")
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := ruleAlerts(t, in, detect.RuleNewTool)
		if len(got) == 1 && strings.Contains(got[0].Summary, "github/read_config") {
			break
		}
		if len(got) > 1 || time.Now().After(deadline) {
			t.Fatalf("new-tool alerts %+v, want one for github/read_config", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ruleAlerts reads the alerts of one rule through the admin API.
func ruleAlerts(t *testing.T, in *instance, rule string) []detect.Alert {
	t.Helper()
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
	var got []detect.Alert
	for _, a := range out.Alerts {
		if a.Rule == rule {
			got = append(got, a)
		}
	}
	return got
}

// TestDestructiveToolAfterAnUntrustedRead: the shape of a prompt injection
// carried out. A key reads a web page through an open-world tool (its
// server says openWorldHint) and then calls a destructive one
// (destructiveHint): keygate raises destructive-after-untrusted, mapped
// here to suspend, so the agent's next call is refused. A key that calls
// the same destructive tool with nothing untrusted read raises nothing.
func TestDestructiveToolAfterAnUntrustedRead(t *testing.T) {
	up := newFakeToolServer(t)
	cfg := testConfig(t, t.TempDir())
	cfg.Alerts.Actions = map[string]string{detect.RuleDestructiveAfterUntrusted: "suspend"}
	in := start(t, cfg, "")
	in.mustCLI(nil, up.token, "secret", "put", "gh-token", "--stdin")
	in.mustCLI(nil, "", "mcp", "add", "github", "--url", up.url, "--secret", "gh-token", "--allow-private")
	call := func(cs *mcp.ClientSession, tool string) error {
		_, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "github__" + tool, Arguments: map[string]any{"text": "x"}})
		return err
	}
	careful := connectMCP(t, in.addrs.Gateway+mcpgate.Path, in.createKey("--name", "careful", "--allow-tool", "github/*"))
	toolNames(t, careful)
	if err := call(careful, "delete_repo"); err != nil {
		t.Fatalf("a destructive call with nothing untrusted read: %v", err)
	}
	agent := connectMCP(t, in.addrs.Gateway+mcpgate.Path, in.createKey("--name", "browsing-agent", "--allow-tool", "github/*"))
	toolNames(t, agent) // the tools' annotations, as an agent reads them first
	if err := call(agent, "fetch_page"); err != nil {
		t.Fatalf("fetch_page: %v", err)
	}
	if err := call(agent, "delete_repo"); err != nil {
		t.Fatalf("delete_repo: %v", err)
	}
	var alerts []detect.Alert
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		alerts = ruleAlerts(t, in, detect.RuleDestructiveAfterUntrusted)
		if len(alerts) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(alerts) != 1 || alerts[0].Severity != detect.SeverityHigh || !strings.Contains(alerts[0].Summary, "github/delete_repo") || !strings.Contains(alerts[0].Summary, "github/fetch_page") {
		t.Fatalf("destructive-after-untrusted alerts %+v, want one naming both tools", alerts)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		// A suspended key is refused at the HTTP door (403), which ends
		// the client's session.
		err := call(agent, "echo")
		if err != nil && (strings.Contains(err.Error(), "suspended") || strings.Contains(err.Error(), "Forbidden")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent's key was not suspended: %v", err)
		}
	}
	n := up.called("echo")
	if err := call(careful, "echo"); err != nil {
		t.Fatalf("the other key after the alert: %v", err)
	}
	if got := up.called("echo"); got != n+1 {
		t.Fatalf("the server saw %d echo calls once the agent's key was refused, want only the other key's", got-n)
	}
}
