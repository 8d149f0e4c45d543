package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/store"
)

// testOTPSteps: a one-time password's time step is accepted once per
// subject, and never after a newer one.
func testOTPSteps(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	use := func(subject string, step int64) bool {
		t.Helper()
		ok, err := s.UseOTPStep(ctx(t), subject, step, at(0))
		must(t, err)
		return ok
	}
	if !use("key/a", 100) {
		t.Fatal("the first use of step 100 was refused")
	}
	if use("key/a", 100) {
		t.Fatal("step 100 was accepted twice")
	}
	if use("key/a", 99) {
		t.Fatal("step 99 was accepted after step 100")
	}
	if !use("key/b", 100) {
		t.Fatal("step 100 of another subject was refused")
	}
	if !use("key/a", 101) || use("key/a", 101) {
		t.Fatal("step 101 was not accepted exactly once")
	}
}

// testOTPStepRace: nodes racing to use one code accept it once.
func testOTPStepRace(t *testing.T, newURL func(testing.TB) string) {
	url := newURL(t)
	nodes := []*store.Store{Open(t, url), Open(t, url)}
	for round := int64(0); round < 5; round++ {
		var wg sync.WaitGroup
		var mu sync.Mutex
		won := 0
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func(s *store.Store) {
				defer wg.Done()
				ok, err := s.UseOTPStep(ctx(t), "user/racer", 1000+round, at(0))
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					mu.Lock()
					won++
					mu.Unlock()
				}
			}(nodes[i%2])
		}
		wg.Wait()
		if won != 1 {
			t.Fatalf("round %d: %d racers accepted one step, want exactly 1", round, won)
		}
	}
}

// testOTPCounters: attempts are counted per window, locked out once, counted
// afresh after the lockout, taken back, reset and pruned.
func testOTPCounters(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	c := store.OTPCounter{Scope: store.OTPSubject, Name: "key/k1"}
	other := store.OTPCounter{Scope: store.OTPClient, Name: "key/k1"} // same name, other scope
	const win = 15 * time.Minute
	charge := func(c store.OTPCounter, off time.Duration) store.OTPCount {
		t.Helper()
		n, err := s.ChargeOTP(ctx(t), c, at(off), win)
		must(t, err)
		return n
	}
	for i := 1; i <= 3; i++ {
		if n := charge(c, time.Duration(i)*time.Second); n.Failures != i || n.LockedUntil != nil {
			t.Fatalf("charge %d: %+v", i, n)
		}
	}
	if n := charge(other, 0); n.Failures != 1 {
		t.Fatalf("the client counter of the same name: %+v, want its own count", n)
	}
	first := charge(c, 4*time.Second)
	checkTime(t, "Since", first.Since, at(time.Second))
	must(t, s.RefundOTP(ctx(t), c, first.Since, at(5*time.Second)))
	if n := charge(c, 6*time.Second); n.Failures != 4 {
		t.Fatalf("after a refund: %d attempts, want 4", n.Failures)
	}
	// A refund for a window that has ended changes nothing.
	must(t, s.RefundOTP(ctx(t), c, at(-time.Hour), at(7*time.Second)))
	if n := charge(c, 8*time.Second); n.Failures != 5 {
		t.Fatalf("after a stale refund: %d attempts, want 5", n.Failures)
	}

	// The lockout starts once; a second lock while it holds reports its end.
	until, started, err := s.LockOTP(ctx(t), c, at(10*time.Second), at(10*time.Second+win))
	must(t, err)
	if !started {
		t.Fatal("LockOTP did not start the lockout")
	}
	checkTime(t, "lockout end", until, at(10*time.Second+win))
	until, started, err = s.LockOTP(ctx(t), c, at(20*time.Second), at(20*time.Second+win))
	must(t, err)
	if started {
		t.Fatal("a second LockOTP started another lockout")
	}
	checkTime(t, "lockout end", until, at(10*time.Second+win))
	got, end, err := s.OTPLockout(ctx(t), at(30*time.Second), other, c)
	must(t, err)
	if got != c {
		t.Fatalf("OTPLockout found %+v, want %+v", got, c)
	}
	checkTime(t, "OTPLockout end", end, at(10*time.Second+win))
	if got, end, err := s.OTPLockout(ctx(t), at(30*time.Second), other); err != nil || got != (store.OTPCounter{}) || !end.IsZero() {
		t.Fatalf("OTPLockout of an unlocked counter: %+v %v %v", got, end, err)
	}
	if n := charge(c, 30*time.Second); !n.Locked(at(30*time.Second)) || n.Failures != 0 {
		t.Fatalf("a charge while locked: %+v, want locked and unchanged", n)
	}
	must(t, s.ResetOTP(ctx(t), c, at(31*time.Second)))
	if n := charge(c, 32*time.Second); !n.Locked(at(32 * time.Second)) {
		t.Fatal("a reset lifted a lockout")
	}
	// After the lockout, attempts are counted afresh.
	after := 11*time.Second + win
	if got, _, err := s.OTPLockout(ctx(t), at(after), c); err != nil || got != (store.OTPCounter{}) {
		t.Fatalf("OTPLockout after the lockout ended: %+v %v", got, err)
	}
	if n := charge(c, after); n.Locked(at(after)) || n.Failures != 1 {
		t.Fatalf("the first charge after the lockout: %+v, want 1 attempt, unlocked", n)
	}
	// A reset forgets the count.
	must(t, s.ResetOTP(ctx(t), c, at(after+time.Second)))
	if n := charge(c, after+2*time.Second); n.Failures != 1 || n.LockedUntil != nil {
		t.Fatalf("after a reset: %+v", n)
	}
	// A window that has ended starts again.
	if n := charge(c, after+2*time.Second+win); n.Failures != 1 {
		t.Fatalf("a charge a window later: %+v, want a new window", n)
	}

	// Pruning forgets counters whose window ended, but not a lockout in force.
	locked := store.OTPCounter{Scope: store.OTPClient, Name: "203.0.113.9"}
	charge(locked, 0)
	_, _, err = s.LockOTP(ctx(t), locked, at(0), at(2*time.Hour))
	must(t, err)
	pruned, err := s.PruneOTP(ctx(t), at(time.Hour), win)
	must(t, err)
	if pruned != 2 { // c's window and other's ended
		t.Fatalf("pruned %d counters, want 2", pruned)
	}
	if n := charge(locked, time.Hour); !n.Locked(at(time.Hour)) {
		t.Fatal("pruning dropped a lockout in force")
	}
}

// testOTPCounterRace: two nodes charging one counter lose no attempt, and
// of nodes racing to lock it exactly one starts the lockout.
func testOTPCounterRace(t *testing.T, newURL func(testing.TB) string) {
	url := newURL(t)
	nodes := []*store.Store{Open(t, url), Open(t, url)}
	c := store.OTPCounter{Scope: store.OTPClient, Name: "198.51.100.7"}
	var wg sync.WaitGroup
	const each = 20
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(s *store.Store) {
			defer wg.Done()
			for j := 0; j < each; j++ {
				if _, err := s.ChargeOTP(ctx(t), c, at(time.Second), time.Hour); err != nil {
					t.Error(err)
					return
				}
			}
		}(nodes[i%2])
	}
	wg.Wait()
	n, err := nodes[0].ChargeOTP(ctx(t), c, at(time.Second), time.Hour)
	must(t, err)
	if n.Failures != 4*each+1 {
		t.Fatalf("%d attempts counted, want %d", n.Failures, 4*each+1)
	}
	var mu sync.Mutex
	started := 0
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(s *store.Store) {
			defer wg.Done()
			_, ok, err := s.LockOTP(ctx(t), c, at(2*time.Second), at(time.Hour))
			if err != nil {
				t.Error(err)
				return
			}
			if ok {
				mu.Lock()
				started++
				mu.Unlock()
			}
		}(nodes[i%2])
	}
	wg.Wait()
	if started != 1 {
		t.Fatalf("%d racers started the lockout, want exactly 1", started)
	}
}
