package detect

import (
	"fmt"
	"testing"
)

func TestFailedAuthBurst(t *testing.T) {
	r := newRig(t, Config{})
	// Normal: a few typos a minute from several clients against several prefixes.
	normal := func(sec int) {
		if sec%4 == 0 {
			r.observe(Observation{AuthFailed: true, Client: fmt.Sprintf("10.1.0.%d", sec%7), KeyPrefix: fmt.Sprintf("kg_live_%02d", sec%5)})
		}
	}
	r.run(600, normal)
	r.expectNone("normal failures")

	// Anomaly one: one client tries 25 credentials in one second. The
	// alert goes out with the failure that crosses the threshold, before
	// the second's tick.
	for i := 0; i < 21; i++ {
		r.observe(Observation{AuthFailed: true, Client: "203.0.113.9", KeyPrefix: fmt.Sprintf("kg_test_%03d", i)})
	}
	a := r.expectOne("client burst, before the tick", RuleAuthFailClient, false)
	if a.Client != "203.0.113.9" || a.KeyID != "" || a.Numbers["failures"] != 21 || a.Numbers["threshold"] != 20 {
		t.Errorf("alert client %q numbers %v, want 203.0.113.9 with 21 failures over threshold 20", a.Client, a.Numbers)
	}
	if len(a.Events) != 16 {
		t.Errorf("events %v, want the 16 latest", a.Events)
	}
	r.run(1, func(int) {
		for i := 21; i < 25; i++ {
			r.observe(Observation{AuthFailed: true, Client: "203.0.113.9", KeyPrefix: fmt.Sprintf("kg_test_%03d", i)})
		}
	})
	r.expectNone("the rest of the burst and the tick")
	r.run(30, normal)
	r.expectNone("client burst still in the window")
	r.run(120, normal)
	r.expectOne("client recovery", RuleAuthFailClient, true)

	// Anomaly two: 30 clients, one attempt each, all against one key prefix. The prefix shown
	// is cut short, so a whole credential pasted as a prefix never reaches an alert.
	full := "kg_live_Secr3tSecr3tSecr3tSecr3t"
	r.run(10, func(sec int) {
		for i := 0; i < 3; i++ {
			r.observe(Observation{AuthFailed: true, Client: fmt.Sprintf("198.51.100.%d", sec*3+i), KeyPrefix: full})
		}
	})
	a = r.expectOne("prefix burst", RuleAuthFailPrefix, false)
	if a.KeyPrefix != full[:maxPrefix] || a.Numbers["failures"] != 21 {
		t.Errorf("alert prefix %q numbers %v, want %q with 21 failures", a.KeyPrefix, a.Numbers, full[:maxPrefix])
	}
	r.run(200, normal)
	rec := r.expectOne("prefix recovery", RuleAuthFailPrefix, true)
	if rec.KeyPrefix != full[:maxPrefix] {
		t.Errorf("recovery prefix %q", rec.KeyPrefix)
	}
}
