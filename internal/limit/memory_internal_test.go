package limit

import (
	"context"
	"testing"
	"time"
)

// size returns how many counters m holds.
func (m *Memory) size() int {
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		n += len(sh.rates) + len(sh.slots)
		for _, qs := range sh.quotas {
			n += len(qs.counts)
		}
		sh.mu.Unlock()
	}
	return n
}

func TestMemoryDropsIdleState(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2025, 3, 14, 23, 0, 0, 0, time.UTC)
	m := NewMemory(WithClock(func() time.Time { return now }))
	checks := func(i int) []Check {
		k := "key:" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		return []Check{
			{Key: k, Kind: Rate, Limit: 10, Period: time.Minute, Cost: 1},
			{Key: k, Kind: Concurrency, Limit: 10},
			{Key: k, Kind: Quota, Limit: 10, Calendar: Day, Cost: 1},
			{Key: k, Kind: Quota, Limit: 10, Calendar: Total, Cost: 1},
		}
	}
	var held []Reservation
	for i := range 500 {
		d, err := m.Admit(ctx, checks(i))
		if err != nil || !d.Allowed {
			t.Fatalf("Admit: %v, %+v", err, d)
		}
		held = append(held, d.Reservation)
	}
	if got := m.size(); got != 2000 {
		t.Fatalf("%d counters after 500 requests of 4 checks, want 2000", got)
	}
	for i, r := range held[:250] {
		if err := m.Settle(ctx, r, []int64{1, 0, 1, 1}); err != nil {
			t.Fatalf("Settle %d: %v", i, err)
		}
	}
	m.Sweep()
	if got := m.size(); got != 2000-250 {
		t.Fatalf("%d counters after settling half, before buckets refill, want %d (only concurrency counters with nothing in flight go)", got, 2000-250)
	}

	now = now.Add(6 * time.Second) // every bucket is full again
	m.Sweep()
	if got := m.size(); got != 2000-250-500 {
		t.Fatalf("%d counters once buckets are full, want %d", got, 2000-250-500)
	}
	now = now.Add(2 * time.Hour) // the day ended over an hour ago; the leases expired
	m.Sweep()
	if got := m.size(); got != 500 {
		t.Fatalf("%d counters left after the day ended, want 500 (Total quotas stay)", got)
	}
	// The lazy sweep in Admit does the same without Sweep.
	for i := range 500 {
		if _, err := m.Admit(ctx, checks(i)[:1]); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(2 * time.Minute)
	for i := range 2000 {
		if _, err := m.Admit(ctx, []Check{{Key: "other:" + string(rune(i)), Kind: Quota, Limit: 1, Calendar: Total}}); err != nil {
			t.Fatal(err)
		}
	}
	if got := m.size(); got != 500+2000 {
		t.Fatalf("%d counters after the lazy sweep, want %d", got, 2500)
	}
}

func TestMemoryRejectsForeignReservation(t *testing.T) {
	a, b := NewMemory(), NewMemory()
	d, err := a.Admit(context.Background(), []Check{{Key: "k", Kind: Concurrency, Limit: 1}})
	if err != nil || !d.Allowed {
		t.Fatalf("Admit: %v, %+v", err, d)
	}
	if err := b.Settle(context.Background(), d.Reservation, []int64{0}); err == nil {
		t.Fatal("a limiter settled another limiter's reservation")
	}
	if err := a.Settle(context.Background(), d.Reservation, []int64{0}); err != nil {
		t.Fatal(err)
	}
}

func TestMemoryManyChecks(t *testing.T) {
	// More checks than fit the small-request fast path.
	m := NewMemory()
	var checks []Check
	for i := range 9 {
		checks = append(checks, Check{Key: "k" + string(rune('a'+i)), Kind: Quota, Limit: 10, Calendar: Day, Cost: 4})
	}
	checks = append(checks, checks[0])
	d, err := m.Admit(t.Context(), checks)
	if err != nil || !d.Allowed || d.Remaining[0] != 2 || d.Remaining[1] != 6 {
		t.Fatalf("Admit: %v, %+v", err, d)
	}
	checks[1].Cost = 0
	if d, _ := m.Admit(t.Context(), checks); d.Allowed || d.Denied != 0 || d.Remaining[0] != 2 {
		t.Fatalf("second Admit: %+v, want denied by check 0", d)
	}
	if err := m.Settle(t.Context(), d.Reservation, make([]int64, len(checks))); err != nil {
		t.Fatal(err)
	}
	if d, _ := m.Admit(t.Context(), checks); !d.Allowed {
		t.Fatalf("after refunding everything: %+v", d)
	}
}
