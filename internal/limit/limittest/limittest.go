// Package limittest is the conformance suite every keygate Limiter runs:
// the in-memory one and the Redis one must give the same answers, exactly.
//
//	func TestMemory(t *testing.T) {
//		limittest.Run(t, func(t *testing.T, now func() time.Time) limit.Limiter {
//			return limit.NewMemory(limit.WithClock(now))
//		})
//	}
//
// Limiters whose state several keygate nodes share also run RunShared.
package limittest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/limit"
)

// NewFunc returns a new, independent limiter that reads time from now.
type NewFunc func(t *testing.T, now func() time.Time) limit.Limiter

// NewSharedFunc returns two limiters that share their state, as two keygate
// nodes would, both reading time from now.
type NewSharedFunc func(t *testing.T, now func() time.Time) (a, b limit.Limiter)

// start is when every test begins unless it says otherwise: midday UTC, far
// from any day boundary.
func start() time.Time { return time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC) }

// Run runs the conformance suite. Each call of newLimiter must return a
// limiter with no state in common with any other, that takes the time from
// now instead of a clock of its own.
func Run(t *testing.T, newLimiter NewFunc) {
	tests := []struct {
		name string
		fn   func(t *testing.T, newLimiter NewFunc)
	}{
		{"NoChecks", testNoChecks},
		{"RateConcurrentExact", testRateConcurrentExact},
		{"RateRefill", testRateRefill},
		{"RateUnevenPeriod", testRateUnevenPeriod},
		{"RateTokens", testRateTokens},
		{"RateCostAboveLimit", testRateCostAboveLimit},
		{"RateDebt", testRateDebt},
		{"RateRefundNeverPastFull", testRateRefundNeverPastFull},
		{"QuotaBudgetConcurrent", testQuotaBudgetConcurrent},
		{"QuotaCostAboveLimit", testQuotaCostAboveLimit},
		{"AllOrNothing", testAllOrNothing},
		{"DeniedNamesFirst", testDeniedNamesFirst},
		{"SharedCounterInOneRequest", testSharedCounterInOneRequest},
		{"SettleRefund", testSettleRefund},
		{"SettleExtra", testSettleExtra},
		{"SettleAfterPeriodEnd", testSettleAfterPeriodEnd},
		{"SettleTwice", testSettleTwice},
		{"SettleInvalid", testSettleInvalid},
		{"ConcurrencyLimit", testConcurrencyLimit},
		{"ConcurrencyInFlight", testConcurrencyInFlight},
		{"ConcurrencyLease", testConcurrencyLease},
		{"CalendarDayLocation", testCalendarDayLocation},
		{"CalendarDaylightSaving", testCalendarDaylightSaving},
		{"CalendarMonth", testCalendarMonth},
		{"CalendarTotal", testCalendarTotal},
		{"Validation", testValidation},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newLimiter) })
	}
}

// RunShared runs the tests for limiters that share their state, such as two
// keygate nodes on one Redis: they must count together, and either may
// settle what the other admitted.
func RunShared(t *testing.T, newShared NewSharedFunc) {
	tests := []struct {
		name string
		fn   func(t *testing.T, newShared NewSharedFunc)
	}{
		{"SharedRate", testSharedRate},
		{"SharedBudgetConcurrent", testSharedBudgetConcurrent},
		{"SharedSettle", testSharedSettle},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newShared) })
	}
}

// Clock is a test clock that only moves when told to.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock reading t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock by d, which may be negative.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// env is one test's limiter and clock.
type env struct {
	t     *testing.T
	clock *Clock
	l     limit.Limiter
}

func newEnv(t *testing.T, newLimiter NewFunc, at time.Time) *env {
	c := NewClock(at)
	return &env{t: t, clock: c, l: newLimiter(t, c.Now)}
}

// ctx returns a context that ends with the test, bounded so that a hung
// limiter fails the test instead of stalling the run.
func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// admit runs Admit on l and fails the test on error.
func admit(t testing.TB, l limit.Limiter, checks ...limit.Check) limit.Decision {
	t.Helper()
	d, err := l.Admit(ctx(t), checks)
	if err != nil {
		t.Fatalf("Admit: %v", err)
	}
	if len(d.Remaining) != len(checks) || len(d.Reset) != len(checks) {
		t.Fatalf("Admit: %d Remaining and %d Reset for %d checks", len(d.Remaining), len(d.Reset), len(checks))
	}
	return d
}

func (e *env) admit(checks ...limit.Check) limit.Decision {
	e.t.Helper()
	return admit(e.t, e.l, checks...)
}

// settle runs Settle on l and fails the test on error.
func settle(t testing.TB, l limit.Limiter, d limit.Decision, actual ...int64) {
	t.Helper()
	if err := l.Settle(ctx(t), d.Reservation, actual); err != nil {
		t.Fatalf("Settle: %v", err)
	}
}

func (e *env) settle(d limit.Decision, actual ...int64) {
	e.t.Helper()
	settle(e.t, e.l, d, actual...)
}

// peek returns what a Rate or Quota check has left now, without consuming
// anything: it admits the check at cost 0.
func (e *env) peek(c limit.Check) int64 {
	e.t.Helper()
	c.Cost = 0
	d := e.admit(c)
	if d.Allowed {
		e.settle(d, 0)
	}
	return d.Remaining[0]
}

// allowed fails the test unless d admitted the request leaving remaining.
func allowed(t testing.TB, d limit.Decision, remaining ...int64) {
	t.Helper()
	if !d.Allowed || d.Denied != -1 {
		t.Fatalf("denied by check %d (retry after %v, remaining %v), want allowed", d.Denied, d.RetryAfter, d.Remaining)
	}
	wantRemaining(t, d, remaining...)
}

// denied fails the test unless check idx refused d, retryable after retry,
// leaving remaining.
func denied(t testing.TB, d limit.Decision, idx int, retry time.Duration, remaining ...int64) {
	t.Helper()
	if d.Allowed {
		t.Fatalf("allowed (remaining %v), want denied by check %d", d.Remaining, idx)
	}
	if d.Denied != idx {
		t.Fatalf("denied by check %d, want check %d", d.Denied, idx)
	}
	if d.RetryAfter != retry {
		t.Errorf("RetryAfter = %v, want %v", d.RetryAfter, retry)
	}
	wantRemaining(t, d, remaining...)
}

func wantRemaining(t testing.TB, d limit.Decision, remaining ...int64) {
	t.Helper()
	for i, want := range remaining {
		if d.Remaining[i] != want {
			t.Errorf("Remaining = %v, want %v", d.Remaining, remaining)
			return
		}
	}
}

func wantReset(t testing.TB, d limit.Decision, i int, want time.Time) {
	t.Helper()
	if !d.Reset[i].Equal(want) {
		t.Errorf("Reset[%d] = %v, want %v", i, d.Reset[i], want)
	}
}

// concurrently runs fn n times at once and returns how many calls were
// allowed.
func concurrently(t *testing.T, n int, fn func() limit.Decision) int {
	t.Helper()
	var wg sync.WaitGroup
	var ok atomic.Int64
	gate := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-gate
			if fn().Allowed {
				ok.Add(1)
			}
		})
	}
	close(gate)
	wg.Wait()
	return int(ok.Load())
}

func rate(key string, n int64, period time.Duration, cost int64) limit.Check {
	return limit.Check{Key: key, Kind: limit.Rate, Limit: n, Period: period, Cost: cost}
}

func conc(key string, n int64) limit.Check {
	return limit.Check{Key: key, Kind: limit.Concurrency, Limit: n}
}

func quota(key string, n int64, cal limit.Calendar, loc *time.Location, cost int64) limit.Check {
	return limit.Check{Key: key, Kind: limit.Quota, Limit: n, Calendar: cal, Location: loc, Cost: cost}
}

func location(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Skipf("time zone %s is not available: %v", name, err)
	}
	return loc
}
