package detect

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestPassThroughSignals(t *testing.T) {
	r := newRig(t, Config{})
	r.run(60, func(int) { r.observe(Observation{KeyID: "key_a", Model: "m"}) })
	r.expectNone("ordinary requests")

	// An impossible-travel finding raises a high alert at once, before any tick.
	r.observe(Observation{KeyID: "key_a", Client: "192.0.2.1", Model: "m", Risk: "impossible-travel"})
	a := r.expectOne("impossible travel", "impossible-travel", false)
	if a.KeyID != "key_a" || a.Severity != SeverityHigh || len(a.Events) != 1 || a.Events[0] != r.seq {
		t.Errorf("alert %+v, want key_a, high, event %d", a, r.seq)
	}
	// Repeats while it is active are not alerted again.
	r.run(60, func(int) { r.observe(Observation{KeyID: "key_a", Client: "192.0.2.1", Risk: "impossible-travel"}) })
	r.expectNone("repeated finding")

	r.observe(Observation{KeyID: "key_b", Client: "192.0.2.2", Risk: "unusual-hour"})
	if a := r.expectOne("unusual hour", "unusual-hour", false); a.Severity != SeverityMedium || a.KeyID != "key_b" {
		t.Errorf("alert %+v, want key_b medium", a)
	}
	r.observe(Observation{KeyID: "key_c", Client: "192.0.2.3", RefreshReuse: true})
	if a := r.expectOne("refresh reuse", RuleRefreshReuse, false); a.Severity != SeverityHigh || a.KeyID != "key_c" {
		t.Errorf("alert %+v, want key_c high", a)
	}

	// Ten quiet minutes end each finding with one recovery notice.
	r.run(11*60, nil)
	got := r.take()
	rec := map[string]bool{}
	for _, a := range got {
		if !a.Recovered {
			t.Errorf("unexpected alert %+v", a)
		}
		rec[a.Rule+" "+a.KeyID] = true
	}
	if len(got) != 3 || !rec["impossible-travel key_a"] || !rec["unusual-hour key_b"] || !rec["refresh-reuse key_c"] {
		t.Errorf("recoveries %v, want one for each finding", rec)
	}
}

func TestActions(t *testing.T) {
	var mu sync.Mutex
	acts := map[string]string{}
	cfg := Config{
		Actions: map[string]string{"impossible-travel": ActionSuspend, RuleAuthFailClient: ActionStepUp, "unusual-hour": ActionNotify},
		Act: func(a Alert, action string) {
			mu.Lock()
			acts[a.Rule+" "+a.KeyID+a.Client] = action
			mu.Unlock()
		},
	}
	r := newRig(t, cfg)
	r.observe(Observation{KeyID: "key_a", Risk: "impossible-travel"})
	r.observe(Observation{KeyID: "key_b", Risk: "unusual-hour"})
	r.run(1, func(int) {
		for i := 0; i < 21; i++ {
			r.observe(Observation{AuthFailed: true, Client: "203.0.113.4"})
		}
	})
	r.run(11*60, nil) // recoveries carry no action
	mu.Lock()
	defer mu.Unlock()
	want := map[string]string{"impossible-travel key_a": ActionSuspend, RuleAuthFailClient + " 203.0.113.4": ActionStepUp}
	if fmt.Sprint(acts) != fmt.Sprint(want) {
		t.Errorf("actions %v, want %v", acts, want)
	}
}

func TestBadActionRejected(t *testing.T) {
	_, err := NewEngine(Config{Actions: map[string]string{"rate-spike": "delete"}}, time.Now, func(Alert) {})
	if err == nil {
		t.Fatal("NewEngine accepted the action \"delete\"")
	}
	t.Log(err)
}

func TestAlertRateLimit(t *testing.T) {
	var mu sync.Mutex
	acted := 0
	r := newRig(t, Config{Limits: LimitConfig{PerMinute: 5},
		Actions: map[string]string{"new-network": ActionSuspend},
		Act:     func(Alert, string) { mu.Lock(); acted++; mu.Unlock() }})
	for i := 0; i < 8; i++ {
		r.observe(Observation{KeyID: fmt.Sprintf("key_%d", i), Risk: "new-network"})
	}
	if got := r.take(); len(got) != 5 {
		t.Fatalf("got %d alerts in the first minute, want the limit of 5", len(got))
	}
	mu.Lock()
	if acted != 8 {
		t.Errorf("acted on %d alerts, want all 8 even when notifications are held back", acted)
	}
	mu.Unlock()
	r.run(61, nil)
	s := r.expectOne("summary", RuleAlertsSuppressed, false)
	if s.Numbers["suppressed"] != 3 || s.Numbers["suppressed_new-network"] != 3 {
		t.Errorf("summary numbers %v, want 3 held back", s.Numbers)
	}
	// Only the alerts that were sent get a recovery notice.
	r.run(10*60, nil)
	got := r.take()
	if len(got) != 5 {
		t.Errorf("got %d recoveries, want 5", len(got))
	}
}
