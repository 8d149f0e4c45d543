package limittest

// The quota, calendar and settlement tests.

import (
	"errors"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/limit"
)

func testQuotaBudgetConcurrent(t *testing.T, newLimiter NewFunc) {
	for _, tc := range []struct {
		cal   limit.Calendar
		retry time.Duration
		reset time.Time
	}{
		{limit.Day, 12 * time.Hour, start().Add(12 * time.Hour)},
		{limit.Month, 17*24*time.Hour + 12*time.Hour, time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)},
		{limit.Total, -1, time.Time{}},
	} {
		t.Run(tc.cal.String(), func(t *testing.T) {
			e := newEnv(t, newLimiter, start())
			c := quota("key:a:usd", 20, tc.cal, nil, 10) // micro-dollars
			if got := concurrently(t, 50, func() limit.Decision { return e.admit(c) }); got != 2 {
				t.Fatalf("50 concurrent requests of 10 against a budget of 20: %d allowed, want 2", got)
			}
			d := e.admit(c)
			denied(t, d, 0, tc.retry, 0)
			wantReset(t, d, 0, tc.reset)
		})
	}
}

func testQuotaCostAboveLimit(t *testing.T, newLimiter NewFunc) {
	e := newEnv(t, newLimiter, start())
	c := quota("key:a:tpd", 20, limit.Day, nil, 21)
	denied(t, e.admit(c), 0, -1, 20)
	c.Cost = 20
	allowed(t, e.admit(c), 0)
}

func testSettleRefund(t *testing.T, newLimiter NewFunc) {
	e := newEnv(t, newLimiter, start())
	q := quota("key:a:usd", 20, limit.Day, nil, 10)
	d1 := e.admit(q)
	allowed(t, d1, 10)
	allowed(t, e.admit(q), 0)
	denied(t, e.admit(q), 0, 12*time.Hour, 0)
	e.settle(d1, 3)
	if got := e.peek(q); got != 7 {
		t.Fatalf("after a refund of 7: %d left, want 7", got)
	}
	q.Cost = 7
	allowed(t, e.admit(q), 0)
}

func testSettleExtra(t *testing.T, newLimiter NewFunc) {
	e := newEnv(t, newLimiter, start())
	q := quota("key:a:usd", 20, limit.Day, nil, 10)
	d := e.admit(q)
	allowed(t, d, 10)
	e.settle(d, 25) // the call cost more than its estimate: charged in full
	denied(t, e.admit(q), 0, 12*time.Hour, 0)
	q.Cost = 0
	denied(t, e.admit(q), 0, 12*time.Hour, 0)
}

func testSettleAfterPeriodEnd(t *testing.T, newLimiter NewFunc) {
	before := time.Date(2025, 3, 14, 23, 59, 0, 0, time.UTC)
	e := newEnv(t, newLimiter, before)
	q := quota("key:a:usd", 20, limit.Day, nil, 10)
	d1 := e.admit(q)
	allowed(t, d1, 10)
	d2 := e.admit(q)
	allowed(t, d2, 0)

	e.clock.Advance(2 * time.Minute) // the next day
	d3 := e.admit(q)
	allowed(t, d3, 10)
	e.settle(d1, 20) // 10 more, for yesterday
	e.settle(d2, 0)  // 10 back, for yesterday
	if got := e.peek(q); got != 10 {
		t.Fatalf("today after settling yesterday's requests: %d left, want 10", got)
	}
	// Step the clock back to look at the day that ended.
	e.clock.Set(before.Add(30 * time.Second))
	if got := e.peek(q); got != 0 {
		t.Fatalf("yesterday after its settlements: %d left, want 0 (20 spent)", got)
	}
	q.Cost = 1
	denied(t, e.admit(q), 0, 30*time.Second, 0)
}

func testSettleTwice(t *testing.T, newLimiter NewFunc) {
	e := newEnv(t, newLimiter, start())
	s := conc("key:a:conc", 1)
	q := quota("key:a:usd", 100, limit.Day, nil, 10)
	d1 := e.admit(s, q)
	allowed(t, d1, 0, 90)
	e.settle(d1, 0, 5)
	d2 := e.admit(s, q)
	allowed(t, d2, 0, 85)

	e.settle(d1, 0, 0) // a no-op: it must neither free d2's slot nor refund again
	copied := d1
	e.settle(copied, 0, 0)
	denied(t, e.admit(s, q), 0, 0, 0, 85)
	if got := e.peek(q); got != 85 {
		t.Fatalf("after settling twice: %d left, want 85", got)
	}
}

func testSettleInvalid(t *testing.T, newLimiter NewFunc) {
	e := newEnv(t, newLimiter, start())
	q := quota("key:a:usd", 100, limit.Day, nil, 10)
	d := e.admit(q)
	for _, actual := range [][]int64{nil, {1, 2}, {-1}, {limit.MaxValue + 1}} {
		err := e.l.Settle(ctx(t), d.Reservation, actual)
		if !errors.Is(err, limit.ErrInvalid) {
			t.Errorf("Settle with actual %v: error %v, want ErrInvalid", actual, err)
		}
	}
	if got := e.peek(q); got != 90 {
		t.Fatalf("after refused settlements: %d left, want 90", got)
	}
	e.settle(d, 4) // the reservation is still unsettled
	if got := e.peek(q); got != 96 {
		t.Fatalf("after settling: %d left, want 96", got)
	}
}

func testCalendarDayLocation(t *testing.T, newLimiter NewFunc) {
	berlin := location(t, "Europe/Berlin")
	at := time.Date(2025, 3, 14, 22, 30, 0, 0, time.UTC) // 23:30 in Berlin
	e := newEnv(t, newLimiter, at)
	q := quota("key:a:rpd", 1, limit.Day, berlin, 1)
	d := e.admit(q)
	allowed(t, d, 0)
	midnight := time.Date(2025, 3, 15, 0, 0, 0, 0, berlin)
	wantReset(t, d, 0, midnight)
	denied(t, e.admit(q), 0, 30*time.Minute, 0)

	e.clock.Advance(30 * time.Minute) // Berlin midnight, 23:00 UTC
	d = e.admit(q)
	allowed(t, d, 0)
	wantReset(t, d, 0, time.Date(2025, 3, 16, 0, 0, 0, 0, berlin))
	e.clock.Advance(90 * time.Minute) // past UTC midnight: nothing resets
	denied(t, e.admit(q), 0, 22*time.Hour+30*time.Minute, 0)

	// The same counter in UTC is a different day: it did reset.
	u := quota("key:b:rpd", 1, limit.Day, nil, 1)
	e.clock.Set(at)
	allowed(t, e.admit(u), 0)
	e.clock.Set(at.Add(2 * time.Hour))
	allowed(t, e.admit(u), 0)
}

func testCalendarDaylightSaving(t *testing.T, newLimiter NewFunc) {
	// 30 March 2025 is 23 hours long in Berlin.
	berlin := location(t, "Europe/Berlin")
	e := newEnv(t, newLimiter, time.Date(2025, 3, 30, 10, 0, 0, 0, time.UTC))
	q := quota("key:a:rpd", 1, limit.Day, berlin, 1)
	d := e.admit(q)
	allowed(t, d, 0)
	wantReset(t, d, 0, time.Date(2025, 3, 30, 22, 0, 0, 0, time.UTC))
	denied(t, e.admit(q), 0, 12*time.Hour, 0)
}

func testCalendarMonth(t *testing.T, newLimiter NewFunc) {
	at := time.Date(2025, 1, 31, 23, 0, 0, 0, time.UTC)
	e := newEnv(t, newLimiter, at)
	q := quota("key:a:usd", 100, limit.Month, nil, 60)
	d := e.admit(q)
	allowed(t, d, 40)
	wantReset(t, d, 0, time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC))
	denied(t, e.admit(q), 0, time.Hour, 40)

	e.clock.Advance(time.Hour) // 1 February
	d = e.admit(q)
	allowed(t, d, 40)
	wantReset(t, d, 0, time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC))
	e.clock.Advance(27*24*time.Hour + time.Hour) // 28 February, 01:00
	denied(t, e.admit(q), 0, 23*time.Hour, 40)

	// In Tokyo, 31 January 23:00 UTC is already February.
	tokyo := location(t, "Asia/Tokyo")
	e.clock.Set(at)
	d = e.admit(quota("key:b:usd", 100, limit.Month, tokyo, 1))
	allowed(t, d, 99)
	wantReset(t, d, 0, time.Date(2025, 3, 1, 0, 0, 0, 0, tokyo))
}

func testCalendarTotal(t *testing.T, newLimiter NewFunc) {
	e := newEnv(t, newLimiter, start())
	q := quota("key:a:usd", 30, limit.Total, nil, 10)
	for _, left := range []int64{20, 10, 0} {
		d := e.admit(q)
		allowed(t, d, left)
		wantReset(t, d, 0, time.Time{})
	}
	e.clock.Advance(400 * 24 * time.Hour)
	d := e.admit(q)
	denied(t, d, 0, -1, 0)
	wantReset(t, d, 0, time.Time{})
}
