package detect

import (
	"strings"
	"sync"
	"testing"
	"time"
)

func TestOTPLockoutAlert(t *testing.T) {
	var mu sync.Mutex
	acts := map[string]string{}
	r := newRig(t, Config{Actions: map[string]string{RuleOTPBruteForce: ActionSuspend},
		Act: func(a Alert, action string) { mu.Lock(); acts[a.KeyID] = action; mu.Unlock() }})
	r.e.OTPLockout(OTPLockout{At: t0, Until: t0.Add(15 * time.Minute), Subject: "key/key_x", KeyID: "key_x",
		Client: "203.0.113.9", Failures: 5, Max: 5, Window: 15 * time.Minute})
	a := r.expectOne("subject lockout", RuleOTPBruteForce, false)
	t.Log(a.Summary)
	if a.KeyID != "key_x" || a.Client != "203.0.113.9" || a.Severity != SeverityHigh || !a.At.Equal(t0) ||
		a.Numbers["failures"] != 5 || a.Numbers["lockout_seconds"] != 900 || !strings.Contains(a.Summary, "for key key_x") {
		t.Errorf("alert %+v", a)
	}
	r.e.OTPLockout(OTPLockout{At: t0, Until: t0.Add(15 * time.Minute), Subject: "user/u1", Client: "2001:db8::/64",
		ByClient: true, Failures: 20, Max: 20, Window: 15 * time.Minute})
	a = r.expectOne("client lockout", RuleOTPBruteForce, false)
	if a.KeyID != "" || !strings.Contains(a.Summary, "from client 2001:db8::/64") || !strings.Contains(a.Summary, "for user/u1") {
		t.Errorf("alert %+v", a)
	}
	// No recovery notice follows a lockout.
	r.run(3600, nil)
	r.expectNone("after the lockouts")
	mu.Lock()
	defer mu.Unlock()
	if acts["key_x"] != ActionSuspend {
		t.Errorf("actions %v, want key_x suspended", acts)
	}
}
