package limittest

// The rate-limit tests.

import (
	"testing"
	"time"

	"github.com/keygate/keygate/internal/limit"
)

func testRateConcurrentExact(t *testing.T, newLimiter NewFunc) {
	e := newEnv(t, newLimiter, start())
	c := rate("key:a:rpm", 5, time.Minute, 1)
	if got := concurrently(t, 50, func() limit.Decision { return e.admit(c) }); got != 5 {
		t.Fatalf("50 concurrent requests against 5 per minute: %d allowed, want 5", got)
	}
	denied(t, e.admit(c), 0, 12*time.Second, 0)
}

func testRateRefill(t *testing.T, newLimiter NewFunc) {
	e := newEnv(t, newLimiter, start())
	c := rate("key:a:rps", 5, time.Second, 1)
	for i := range 5 {
		d := e.admit(c)
		allowed(t, d, int64(4-i))
		wantReset(t, d, 0, start().Add(time.Duration(i+1)*200*time.Millisecond))
	}
	d := e.admit(c)
	denied(t, d, 0, 200*time.Millisecond, 0)
	wantReset(t, d, 0, start().Add(time.Second))

	e.clock.Advance(199 * time.Millisecond)
	denied(t, e.admit(c), 0, time.Millisecond, 0)
	e.clock.Advance(time.Millisecond)
	d = e.admit(c)
	allowed(t, d, 0)
	wantReset(t, d, 0, start().Add(1200*time.Millisecond))

	e.clock.Advance(time.Second) // full again
	if got := e.peek(c); got != 5 {
		t.Fatalf("after a full period: %d left, want 5", got)
	}
	d = e.admit(c)
	allowed(t, d, 4)
	wantReset(t, d, 0, e.clock.Now().Add(200*time.Millisecond))
}

func testRateUnevenPeriod(t *testing.T, newLimiter NewFunc) {
	// 7 per minute is 8571428.571…µs per request; the bucket must not lose
	// the fraction.
	e := newEnv(t, newLimiter, start())
	c := rate("key:a:rpm", 7, time.Minute, 1)
	for range 7 {
		allowed(t, e.admit(c))
	}
	d := e.admit(c)
	denied(t, d, 0, 8571429*time.Microsecond, 0)
	wantReset(t, d, 0, start().Add(time.Minute))
	e.clock.Advance(8571428 * time.Microsecond)
	denied(t, e.admit(c), 0, time.Microsecond, 0)
	e.clock.Advance(time.Microsecond)
	allowed(t, e.admit(c), 0)

	// Seven units take exactly one minute to refill.
	e2 := newEnv(t, newLimiter, start())
	for range 7 {
		allowed(t, e2.admit(c))
	}
	e2.clock.Advance(time.Minute - time.Microsecond)
	if got := e2.peek(c); got != 6 {
		t.Fatalf("a microsecond before the minute: %d left, want 6", got)
	}
	e2.clock.Advance(time.Microsecond)
	if got := e2.peek(c); got != 7 {
		t.Fatalf("after exactly a minute: %d left, want 7", got)
	}
}

func testRateTokens(t *testing.T, newLimiter NewFunc) {
	e := newEnv(t, newLimiter, start())
	c := rate("key:a:tpm", 1000, time.Minute, 300)
	allowed(t, e.admit(c), 700)
	allowed(t, e.admit(c), 400)
	allowed(t, e.admit(c), 100)
	// 200 more tokens at 1000 a minute take 12 seconds.
	d := e.admit(c)
	denied(t, d, 0, 12*time.Second, 100)
	wantReset(t, d, 0, start().Add(54*time.Second))
	e.clock.Advance(6 * time.Second) // 100 more tokens
	denied(t, e.admit(c), 0, 6*time.Second, 200)
	e.clock.Advance(6 * time.Second)
	allowed(t, e.admit(c), 0)
}

func testRateCostAboveLimit(t *testing.T, newLimiter NewFunc) {
	e := newEnv(t, newLimiter, start())
	c := rate("key:a:tpm", 5, time.Minute, 6)
	d := e.admit(c)
	denied(t, d, 0, -1, 5)
	c.Cost = 5
	allowed(t, e.admit(c), 0)
}

func testRateDebt(t *testing.T, newLimiter NewFunc) {
	e := newEnv(t, newLimiter, start())
	c := rate("key:a:tpm", 10, time.Minute, 1) // 6s a unit
	d := e.admit(c)
	allowed(t, d, 9)
	e.settle(d, 15) // 14 units more than reserved: the bucket owes 5
	d = e.admit(c)
	// The TAT is now start+90s; one more unit conforms at start+36s.
	denied(t, d, 0, 36*time.Second, 0)
	wantReset(t, d, 0, start().Add(90*time.Second))
	e.clock.Advance(36 * time.Second)
	allowed(t, e.admit(c), 0)
}

func testRateRefundNeverPastFull(t *testing.T, newLimiter NewFunc) {
	e := newEnv(t, newLimiter, start())
	c := rate("key:a:tpm", 10, time.Minute, 5)
	d := e.admit(c)
	allowed(t, d, 5)
	e.settle(d, 2)
	if got := e.peek(c); got != 8 {
		t.Fatalf("after refunding 3 of 5: %d left, want 8", got)
	}
	d = e.admit(c)
	allowed(t, d, 3)
	e.settle(d, 0)
	if got := e.peek(c); got != 8 {
		t.Fatalf("after refunding all 5: %d left, want 8", got)
	}

	// A refund arriving after the bucket refilled does not fill it past
	// full.
	e2 := newEnv(t, newLimiter, start())
	d = e2.admit(c)
	allowed(t, d, 5)
	e2.clock.Advance(time.Minute)
	e2.settle(d, 0)
	c.Cost = 10
	allowed(t, e2.admit(c), 0)
	c.Cost = 1
	denied(t, e2.admit(c), 0, 6*time.Second, 0)
}
