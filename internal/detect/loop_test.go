package detect

import (
	"strings"
	"testing"
)

// alertsOf returns the rig's alerts of one rule.
func (r *rig) alertsOf(rule string) []Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Alert
	for _, a := range r.got {
		if a.Rule == rule {
			out = append(out, a)
		}
	}
	return out
}

// TestLoopAlertsWhenAnAgentRepeatsItself: a key whose requests keep ending
// their conversation alike, even cycling through two steps, alerts once,
// with the events behind it; one whose conversation moves on never does.
func TestLoopAlertsWhenAnAgentRepeatsItself(t *testing.T) {
	r := newRig(t, Config{Loop: LoopConfig{Repeats: 5}})
	// Moving on: every request ends differently.
	r.run(30, func(s int) { r.observe(Observation{KeyID: "key_busy", Model: "m", Turn: uint64(1000 + s)}) })
	if got := r.alertsOf(RuleLoop); len(got) != 0 {
		t.Fatalf("a conversation that moves on raised %+v", got)
	}
	// A loop of two steps: A, B, A, B, ...
	r.run(12, func(s int) { r.observe(Observation{KeyID: "key_stuck", Model: "m", Turn: uint64(1 + s%2)}) })
	got := r.alertsOf(RuleLoop)
	if len(got) != 1 || got[0].KeyID != "key_stuck" || got[0].Numbers["repeats"] != 5 || len(got[0].Events) == 0 {
		t.Fatalf("a key repeating two steps: alerts %+v, want one for key_stuck at 5 repeats with its events", got)
	}
}

// TestLoopRepeatsCountWithinTheWindow: repeats further apart than the
// window do not add up.
func TestLoopRepeatsCountWithinTheWindow(t *testing.T) {
	r := newRig(t, Config{Loop: LoopConfig{Repeats: 3, Window: 60e9}})
	r.run(300, func(s int) {
		if s%45 == 0 { // one repeat every 45 s: two in a minute at most
			r.observe(Observation{KeyID: "key_slow", Turn: 7})
		}
	})
	if got := r.alertsOf(RuleLoop); len(got) != 0 {
		t.Fatalf("repeats 45 s apart with 3 needed in 60 s raised %+v", got)
	}
}

// TestContextGrowthAlerts: a key whose context grows with every request
// past the threshold alerts once; one that compacts (its context shrinks)
// starts counting again.
func TestContextGrowthAlerts(t *testing.T) {
	r := newRig(t, Config{Loop: LoopConfig{ContextTokens: 10_000, Growing: 5}})
	ctx := int64(2_000)
	r.run(20, func(s int) {
		if s == 3 {
			ctx = 1_000 // compacted before the threshold: counting starts again
		}
		ctx += 1_500
		r.observe(Observation{KeyID: "key_grow", ContextTokens: ctx})
	})
	got := r.alertsOf(RuleContextGrowth)
	if len(got) != 1 || got[0].Numbers["context_tokens"] != 10_000 || got[0].Numbers["growing_requests"] != 5 {
		t.Fatalf("context growth: alerts %+v, want one past 10,000 tokens", got)
	}
	r2 := newRig(t, Config{Loop: LoopConfig{ContextTokens: -1, Repeats: -1}})
	r2.run(40, func(s int) { r2.observe(Observation{KeyID: "k", ContextTokens: int64(1000 * (s + 1)), Turn: 9}) })
	if len(r2.alertsOf(RuleContextGrowth))+len(r2.alertsOf(RuleLoop)) != 0 {
		t.Fatal("rules turned off still alerted")
	}
}

// TestNewToolAlerts: a key calls its usual tools while it forms a habit,
// then a tool it never called: one alert naming the tool. A tool first
// called while the key is new, or refused by keygate, is not alerted.
func TestNewToolAlerts(t *testing.T) {
	r := newRig(t, Config{Rate: RateConfig{Forming: 30e9}})
	r.run(40, func(s int) {
		tool := "github/echo"
		if s == 5 {
			tool = "github/read_config" // new, but the key is new too
		}
		r.observe(Observation{KeyID: "key_agent", Provider: "github", Model: tool, Path: "/mcp", Tool: tool})
	})
	if got := r.alertsOf(RuleNewTool); len(got) != 0 {
		t.Fatalf("tools first called while the key was forming its habit: %+v", got)
	}
	r.observe(Observation{KeyID: "key_agent", Tool: "github/delete_repo", ToolDenied: true})
	r.observe(Observation{KeyID: "key_agent", Tool: "db/drop_table"})
	r.observe(Observation{KeyID: "key_agent", Tool: "db/drop_table"})
	got := r.alertsOf(RuleNewTool)
	if len(got) != 1 || !strings.Contains(got[0].Summary, "db/drop_table") || got[0].Numbers["tools_known"] != 3 {
		t.Fatalf("a new tool after the habit formed: %+v, want one alert for db/drop_table", got)
	}
}

// TestDestructiveAfterUntrusted: a destructive tool called within ten
// minutes of reading an open-world tool's result is a high alert naming
// both; one called with no such read before, one called after the window,
// and a refused call raise nothing, and a refused read taints nothing.
func TestDestructiveAfterUntrusted(t *testing.T) {
	r := newRig(t, Config{})
	read := Observation{KeyID: "key_agent", Tool: "web/fetch", ToolOpenWorld: true}
	del := Observation{KeyID: "key_agent", Tool: "github/delete_repo", ToolDestructive: true}
	r.observe(del) // nothing untrusted read yet
	r.observe(Observation{KeyID: "key_agent", Tool: "web/fetch", ToolOpenWorld: true, ToolDenied: true})
	r.observe(del)
	if got := r.alertsOf(RuleDestructiveAfterUntrusted); len(got) != 0 {
		t.Fatalf("alerts without an untrusted read: %+v", got)
	}
	r.observe(read)
	r.run(90, nil)
	denied := del
	denied.ToolDenied = true
	r.observe(denied)
	r.observe(del)
	got := r.alertsOf(RuleDestructiveAfterUntrusted)
	if len(got) != 1 || got[0].Severity != SeverityHigh || !strings.Contains(got[0].Summary, "github/delete_repo") ||
		!strings.Contains(got[0].Summary, "web/fetch") || got[0].Numbers["seconds_since_untrusted"] != 90 {
		t.Fatalf("a destructive call 90s after an untrusted read: %+v", got)
	}
	r.observe(Observation{KeyID: "key_other", Tool: "github/delete_repo", ToolDestructive: true})
	r.run(600, nil)
	r.observe(Observation{KeyID: "key_agent", Tool: "db/drop_table", ToolDestructive: true})
	if got := r.alertsOf(RuleDestructiveAfterUntrusted); len(got) != 1 {
		t.Fatalf("another key, or a call past the window, raised %+v", got[1:])
	}
}
