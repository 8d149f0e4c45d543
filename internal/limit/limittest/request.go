package limittest

// The tests of a request as a whole: its checks together, concurrency
// slots, validation, and limiters sharing state.

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/limit"
)

func testNoChecks(t *testing.T, newLimiter NewFunc) {
	e := newEnv(t, newLimiter, start())
	d := e.admit()
	if !d.Allowed || d.Denied != -1 {
		t.Fatalf("a request with no checks: Allowed %v, Denied %d; want allowed, -1", d.Allowed, d.Denied)
	}
	e.settle(d)
	e.settle(d)
}

func testAllOrNothing(t *testing.T, newLimiter NewFunc) {
	e := newEnv(t, newLimiter, start())
	r := rate("key:a:rpm", 5, time.Minute, 1)
	s := conc("key:a:conc", 1)
	q := quota("key:a:usd", 10, limit.Day, nil, 10)
	allowed(t, e.admit(q), 0) // spend the budget

	d := e.admit(r, s, q)
	denied(t, d, 2, 12*time.Hour, 5, 1, 0)
	wantReset(t, d, 0, start())
	wantReset(t, d, 1, time.Time{})
	if d.Reservation.Expires() != (time.Time{}) {
		t.Errorf("a denied request's reservation expires at %v, want zero", d.Reservation.Expires())
	}

	// The refused request took nothing from the rate or the concurrency
	// limit.
	for i := range 5 {
		allowed(t, e.admit(r), int64(4-i))
	}
	denied(t, e.admit(r), 0, 12*time.Second, 0)
	allowed(t, e.admit(s), 0)

	// Refused by a rate limit, a request spends none of its quota.
	q2 := quota("key:b:tpd", 100, limit.Day, nil, 40)
	r2 := rate("key:b:rpm", 1, time.Minute, 1)
	allowed(t, e.admit(r2), 0)
	denied(t, e.admit(q2, r2), 1, time.Minute, 100, 0)
	if got := e.peek(q2); got != 100 {
		t.Fatalf("quota after a request refused by its rate limit: %d left, want 100", got)
	}
}

func testDeniedNamesFirst(t *testing.T, newLimiter NewFunc) {
	e := newEnv(t, newLimiter, start())
	a := quota("key:a:rpd", 1, limit.Day, nil, 1)
	b := rate("key:a:rpm", 1, time.Minute, 1)
	c := quota("key:a:usd", 100, limit.Total, nil, 5)
	allowed(t, e.admit(a, b), 0, 0)
	denied(t, e.admit(c, b, a), 1, time.Minute, 100, 0, 0)
	denied(t, e.admit(a, b, c), 0, 12*time.Hour, 0, 0, 100)
}

func testSharedCounterInOneRequest(t *testing.T, newLimiter NewFunc) {
	e := newEnv(t, newLimiter, start())
	// Two checks of one rate counter add up: 3 + 3 > 5.
	r := rate("key:a:tpm", 5, time.Minute, 3)
	denied(t, e.admit(r, r), 1, 12*time.Second, 5, 5)
	if got := e.peek(r); got != 5 {
		t.Fatalf("after a refused request: %d left, want 5", got)
	}

	q := quota("key:a:tpd", 10, limit.Day, nil, 4)
	d := e.admit(q, q)
	allowed(t, d, 2, 2)
	e.settle(d, 1, 2) // refund 3 and 2
	if got := e.peek(q); got != 7 {
		t.Fatalf("after settling both checks: %d left, want 7", got)
	}
	// A Day and a Month quota with the same Key are different counters.
	m := quota("key:a:tpd", 10, limit.Month, nil, 4)
	allowed(t, e.admit(q, m), 3, 6)

	s := conc("key:a:conc", 2)
	d = e.admit(s, s)
	allowed(t, d, 0, 0)
	denied(t, e.admit(s), 0, 0, 0)
	e.settle(d, 0, 0)
	allowed(t, e.admit(s, s), 0, 0)
}

func testConcurrencyLimit(t *testing.T, newLimiter NewFunc) {
	e := newEnv(t, newLimiter, start())
	s := conc("key:a:conc", 2)
	a := e.admit(s)
	allowed(t, a, 1)
	wantReset(t, a, 0, time.Time{})
	b := e.admit(s)
	allowed(t, b, 0)
	c := e.admit(s)
	denied(t, c, 0, 0, 0)
	e.clock.Advance(time.Minute) // time alone frees nothing
	denied(t, e.admit(s), 0, 0, 0)
	e.settle(a, 0)
	allowed(t, e.admit(s), 0)
	denied(t, e.admit(s), 0, 0, 0)
}

func testConcurrencyInFlight(t *testing.T, newLimiter NewFunc) {
	e := newEnv(t, newLimiter, start())
	s := conc("key:a:conc", 3)
	var inFlight, most, served atomic.Int64
	deadline := time.Now().Add(30 * time.Second)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				d, err := e.l.Admit(ctx(t), []limit.Check{s})
				if err != nil {
					t.Error(err)
					return
				}
				if !d.Allowed {
					time.Sleep(100 * time.Microsecond)
					continue
				}
				n := inFlight.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				time.Sleep(time.Millisecond)
				inFlight.Add(-1)
				if err := e.l.Settle(ctx(t), d.Reservation, []int64{0}); err != nil {
					t.Error(err)
				}
				served.Add(1)
				return
			}
		})
	}
	wg.Wait()
	if got := served.Load(); got != 50 {
		t.Fatalf("%d of 50 requests were served before the deadline", got)
	}
	if got := most.Load(); got > 3 {
		t.Fatalf("%d requests in flight at once, limit 3", got)
	}
	allowed(t, e.admit(s), 2)
}

func testConcurrencyLease(t *testing.T, newLimiter NewFunc) {
	// A slot whose request never settles (its node crashed) frees itself
	// after the default lease of 15 minutes.
	e := newEnv(t, newLimiter, start())
	s := conc("key:a:conc", 1)
	a := e.admit(s)
	allowed(t, a, 0)
	if got, want := a.Reservation.Expires(), start().Add(15*time.Minute); !got.Equal(want) {
		t.Errorf("Expires() = %v, want %v", got, want)
	}
	e.clock.Advance(15*time.Minute - time.Second)
	denied(t, e.admit(s), 0, 0, 0)
	e.clock.Advance(time.Second)
	b := e.admit(s)
	allowed(t, b, 0)
	e.settle(a, 0) // late: must not free b's slot
	denied(t, e.admit(s), 0, 0, 0)
	e.settle(b, 0)
	allowed(t, e.admit(s), 0)
}

func testValidation(t *testing.T, newLimiter NewFunc) {
	e := newEnv(t, newLimiter, start())
	good := rate("key:a:rpm", 1, time.Minute, 1)
	for _, tc := range []struct {
		name  string
		check limit.Check
	}{
		{"empty Key", limit.Check{Kind: limit.Rate, Limit: 1, Period: time.Second}},
		{"zero Limit", limit.Check{Key: "k", Kind: limit.Concurrency}},
		{"negative Limit", limit.Check{Key: "k", Kind: limit.Concurrency, Limit: -1}},
		{"Limit above MaxValue", limit.Check{Key: "k", Kind: limit.Quota, Calendar: limit.Total, Limit: limit.MaxValue + 1}},
		{"rate without Period", limit.Check{Key: "k", Kind: limit.Rate, Limit: 1}},
		{"rate with Period below a microsecond", limit.Check{Key: "k", Kind: limit.Rate, Limit: 1, Period: time.Nanosecond}},
		{"rate too large for exact arithmetic", limit.Check{Key: "k", Kind: limit.Rate, Limit: 1 << 40, Period: time.Hour}},
		{"quota without Calendar", limit.Check{Key: "k", Kind: limit.Quota, Limit: 1}},
		{"quota with unknown Calendar", limit.Check{Key: "k", Kind: limit.Quota, Limit: 1, Calendar: 9}},
		{"negative Cost", limit.Check{Key: "k", Kind: limit.Quota, Limit: 1, Calendar: limit.Day, Cost: -1}},
		{"Cost above MaxValue", limit.Check{Key: "k", Kind: limit.Quota, Limit: 1, Calendar: limit.Day, Cost: limit.MaxValue + 1}},
		{"no Kind", limit.Check{Key: "k", Limit: 1}},
		{"unknown Kind", limit.Check{Key: "k", Kind: 9, Limit: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.l.Admit(ctx(t), []limit.Check{good, tc.check})
			if !errors.Is(err, limit.ErrInvalid) {
				t.Fatalf("Admit: error %v, want ErrInvalid", err)
			}
		})
	}
	// None of the refused requests took the one unit the good check has.
	allowed(t, e.admit(good), 0)
}

func testSharedRate(t *testing.T, newShared NewSharedFunc) {
	c := NewClock(start())
	a, b := newShared(t, c.Now)
	r := rate("key:a:rpm", 5, time.Minute, 1)
	for range 3 {
		allowed(t, admit(t, a, r))
	}
	allowed(t, admit(t, b, r), 1)
	allowed(t, admit(t, b, r), 0)
	denied(t, admit(t, a, r), 0, 12*time.Second, 0)
	denied(t, admit(t, b, r), 0, 12*time.Second, 0)
}

func testSharedBudgetConcurrent(t *testing.T, newShared NewSharedFunc) {
	c := NewClock(start())
	a, b := newShared(t, c.Now)
	q := quota("key:a:usd", 20, limit.Day, nil, 10)
	var n atomic.Int64
	got := concurrently(t, 50, func() limit.Decision {
		l := a
		if n.Add(1)%2 == 0 {
			l = b
		}
		return admit(t, l, q)
	})
	if got != 2 {
		t.Fatalf("50 concurrent requests on two nodes against a budget for 2: %d allowed", got)
	}
}

func testSharedSettle(t *testing.T, newShared NewSharedFunc) {
	c := NewClock(start())
	a, b := newShared(t, c.Now)
	s := conc("key:a:conc", 1)
	q := quota("key:a:usd", 100, limit.Day, nil, 50)
	d := admit(t, a, s, q)
	allowed(t, d, 0, 50)
	denied(t, admit(t, b, s, q), 0, 0, 0, 50)
	settle(t, b, d, 0, 20) // the other node finishes the request
	settle(t, a, d, 0, 0)  // a no-op
	allowed(t, admit(t, a, s, q), 0, 30)
}
