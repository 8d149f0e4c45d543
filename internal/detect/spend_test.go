package detect

import (
	"strings"
	"testing"
)

func TestSpendVelocity(t *testing.T) {
	r := newRig(t, Config{})
	const budget = 100_000_000 // $100 for the period
	var spent int64
	req := func(cost int64) {
		spent += cost
		r.observe(Observation{KeyID: "key_team", Model: "gpt-4o", MicroUSD: cost, BudgetMicroUSD: budget, SpentMicroUSD: spent})
	}
	noBudget := func(cost int64) { r.observe(Observation{KeyID: "key_free", Model: "gpt-4o", MicroUSD: cost}) }
	normal := func(int) { req(500); noBudget(500) } // $1.80 an hour each

	r.run(1800, normal)
	r.expectNone("normal spend and baseline formation")

	// The anomaly: each request costs $1 (a runaway agent on a large context); the key with no
	// budget does the same and is not judged by this rule.
	var spentAtAlert int64
	for i := 0; i < 60 && spentAtAlert == 0; i++ {
		r.run(1, func(int) { req(1_000_000); noBudget(1_000_000) })
		r.mu.Lock()
		if len(r.got) > 0 {
			spentAtAlert = spent
		}
		r.mu.Unlock()
	}
	a := r.expectOne("runaway spend", RuleSpendVelocity, false)
	t.Log(a.Summary)
	if a.KeyID != "key_team" || a.Severity != SeverityHigh {
		t.Errorf("alert key %q severity %q, want key_team high", a.KeyID, a.Severity)
	}
	n := a.Numbers
	if !near(n["baseline_usd_per_hour"], 1.8, 0.01) {
		t.Errorf("baseline $%.4f/h, want $1.80/h", n["baseline_usd_per_hour"])
	}
	if n["usd_per_hour"] <= 4*n["baseline_usd_per_hour"] || n["hours_to_exhaust"] >= 1 || n["horizon_hours"] != 1 {
		t.Errorf("numbers %v: want a rate above 4x the baseline that exhausts the budget within 1h", n)
	}
	if want := float64(budget-spentAtAlert) / 1e6; !near(n["remaining_usd"], want, 1e-9) {
		t.Errorf("remaining $%.2f, want $%.2f", n["remaining_usd"], want)
	}
	if !near(n["hours_to_exhaust"], n["remaining_usd"]/n["usd_per_hour"], 1e-9) {
		t.Errorf("hours to exhaust %v is not remaining / rate in %v", n["hours_to_exhaust"], n)
	}
	if !strings.Contains(a.Summary, "remaining budget $") {
		t.Errorf("summary %q", a.Summary)
	}

	// Recovery once the costly requests have left the 10-minute window.
	r.run(15*60, normal)
	r.expectOne("recovery", RuleSpendVelocity, true)
	r.run(30*60, normal)
	r.expectNone("after recovery")
}
