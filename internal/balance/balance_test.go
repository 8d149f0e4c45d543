package balance_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/balance"
)

func TestParseStrategy(t *testing.T) {
	for in, want := range map[string]balance.Strategy{"": balance.Priority, "weighted": balance.Weighted, "lowest-cost": balance.LowestCost} {
		if got, err := balance.ParseStrategy(in); err != nil || got != want {
			t.Errorf("ParseStrategy(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := balance.ParseStrategy("fastest"); err == nil {
		t.Error("an unknown strategy was accepted")
	}
}

// TestWeightedWithinTolerance: over many draws each deployment comes first
// in proportion to its weight (within 4 standard deviations), and every
// order lists every deployment once.
func TestWeightedWithinTolerance(t *testing.T) {
	cands := []balance.Candidate{{Weight: 1}, {Weight: 3}, {Weight: 6}}
	rnd := rand.New(rand.NewPCG(1, 2))
	const n = 20000
	first := make([]int, len(cands))
	for range n {
		o := balance.Order(balance.Weighted, cands, rnd)
		s := slices.Clone(o)
		slices.Sort(s)
		if !slices.Equal(s, []int{0, 1, 2}) {
			t.Fatalf("order %v is not a permutation", o)
		}
		first[o[0]]++
	}
	for i, c := range cands {
		p := float64(c.Weight) / 10
		want := p * n
		sd := math.Sqrt(n * p * (1 - p))
		if math.Abs(float64(first[i])-want) > 4*sd {
			t.Errorf("deployment %d (weight %d) first %d times in %d, want %.0f ± %.0f", i, c.Weight, first[i], n, want, 4*sd)
		}
	}
	// The fallback after the first pick follows the remaining weights too:
	// when weight 6 is drawn first, weight 3 should come next 3 times in 4.
	second := 0
	total := 0
	for range n {
		o := balance.Order(balance.Weighted, cands, rnd)
		if o[0] == 2 {
			total++
			if o[1] == 1 {
				second++
			}
		}
	}
	if p := float64(second) / float64(total); math.Abs(p-0.75) > 0.03 {
		t.Errorf("after weight 6, weight 3 came next %.3f of the time, want 0.75", p)
	}
}

func TestOrderByState(t *testing.T) {
	h := balance.NewHealth(balance.BreakerConfig{})
	a, b, c := h.Of("a"), h.Of("b"), h.Of("c")
	if h.Of("a") != a {
		t.Fatal("Health.Of returned a new state for a known name")
	}
	cands := []balance.Candidate{{State: a, Cost: 5}, {State: b, Cost: 1}, {State: c, Cost: 3}}

	if o := balance.Order(balance.Priority, cands, nil); !slices.Equal(o, []int{0, 1, 2}) {
		t.Errorf("priority: %v", o)
	}
	if o := balance.Order(balance.LowestCost, cands, nil); !slices.Equal(o, []int{1, 2, 0}) {
		t.Errorf("lowest cost: %v", o)
	}
	doneA := a.Start()
	a.Start()
	c.Start()
	if o := balance.Order(balance.LeastBusy, cands, nil); !slices.Equal(o, []int{1, 2, 0}) {
		t.Errorf("least busy with a=2, b=0, c=1 in flight: %v", o)
	}
	doneA()
	doneA() // ending twice counts once
	if a.InFlight() != 1 {
		t.Errorf("in flight %d after one of two ended", a.InFlight())
	}
	a.Success(300 * time.Millisecond)
	b.Success(100 * time.Millisecond)
	// c is unmeasured: it goes first so it gets measured.
	if o := balance.Order(balance.LowestLatency, cands, nil); !slices.Equal(o, []int{2, 1, 0}) {
		t.Errorf("lowest latency: %v", o)
	}
	for range 20 {
		b.Success(500 * time.Millisecond)
	}
	if o := balance.Order(balance.LowestLatency, cands, nil); o[1] != 0 {
		t.Errorf("after b slowed down to 500ms its average should pass a's 300ms: %v (b %v)", o, b.Latency())
	}
}

// TestBreaker walks a breaker through closed, open, half-open with one
// probe, back to open on a failed probe, and closed on a good one.
func TestBreaker(t *testing.T) {
	h := balance.NewHealth(balance.BreakerConfig{Failures: 3, Cooldown: 10 * time.Second})
	s := h.Of("d")
	now := time.Unix(1_700_000_000, 0)
	for i := range 2 {
		s.Failure(now)
		if ok, _ := s.Acquire(now); !ok || s.Breaker(now) != balance.Closed {
			t.Fatalf("after %d failures: refused or %s", i+1, s.Breaker(now))
		}
	}
	s.Success(time.Millisecond) // a success resets the count
	for range 2 {
		s.Failure(now)
	}
	if s.Breaker(now) != balance.Closed {
		t.Fatal("two failures after a success opened the breaker")
	}
	s.Failure(now)
	if ok, _ := s.Acquire(now); ok || s.Breaker(now) != balance.Open {
		t.Fatalf("after 3 failures in a row: acquired %v, %s", ok, s.Breaker(now))
	}
	later := now.Add(10 * time.Second)
	if s.Breaker(later) != balance.HalfOpen {
		t.Fatalf("after the cooldown: %s", s.Breaker(later))
	}
	// Exactly one probe among many concurrent requests.
	var mu sync.Mutex
	probes, admitted := 0, 0
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			ok, probe := s.Acquire(later)
			mu.Lock()
			defer mu.Unlock()
			if ok {
				admitted++
			}
			if probe {
				probes++
			}
		})
	}
	wg.Wait()
	if probes != 1 || admitted != 1 {
		t.Fatalf("half-open let %d requests through with %d probes, want 1 and 1", admitted, probes)
	}
	s.Failure(later)
	if ok, _ := s.Acquire(later.Add(time.Second)); ok || s.Breaker(later.Add(time.Second)) != balance.Open {
		t.Fatal("a failed probe did not open the breaker again")
	}
	again := later.Add(10 * time.Second)
	ok, probe := s.Acquire(again)
	if !ok || !probe {
		t.Fatal("no probe after the second cooldown")
	}
	s.Release(probe) // the client left: say nothing of health, let another probe go
	if ok, probe := s.Acquire(again); !ok || !probe {
		t.Fatal("a released probe did not let another go")
	}
	s.Success(time.Millisecond)
	if ok, probe := s.Acquire(again); !ok || probe || s.Breaker(again) != balance.Closed {
		t.Fatal("a good probe did not close the breaker")
	}
}

func TestCoolDown(t *testing.T) {
	s := balance.NewHealth(balance.BreakerConfig{}).Of("d")
	now := time.Unix(1_700_000_000, 0)
	s.CoolUntil(now.Add(2 * time.Second))
	s.CoolUntil(now.Add(time.Second)) // earlier: no change
	if ok, _ := s.Acquire(now.Add(1500 * time.Millisecond)); ok {
		t.Fatal("acquired while cooling down")
	}
	if got := s.CoolingUntil(now); !got.Equal(now.Add(2 * time.Second)) {
		t.Fatalf("cooling until %v", got)
	}
	if ok, _ := s.Acquire(now.Add(2 * time.Second)); !ok {
		t.Fatal("still refused after the cool-down")
	}
	if !s.CoolingUntil(now.Add(3 * time.Second)).IsZero() {
		t.Fatal("reports cooling after the cool-down")
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"3", 3 * time.Second, true},
		{"0", 0, true},
		{"Fri, 02 Jan 2026 03:04:15 GMT", 10 * time.Second, true},
		{"Fri, 02 Jan 2026 03:04:00 GMT", 0, true}, // in the past
		{"", 0, false}, {"-1", 0, false}, {"soon", 0, false}, {"1.5", 0, false},
	} {
		got, ok := balance.ParseRetryAfter(c.in, now)
		if got != c.want || ok != c.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestRecentErrors(t *testing.T) {
	h := balance.NewHealth(balance.BreakerConfig{Failures: 2, Cooldown: time.Minute})
	if _, ok := h.Lookup("d"); ok {
		t.Fatal("a deployment nothing was sent to has a state")
	}
	s := h.Of("d")
	if got := s.Errors(); len(got) != 0 {
		t.Fatalf("errors before any: %v", got)
	}
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range balance.RecentErrors + 2 {
		s.RecordError(balance.UpstreamError{At: start.Add(time.Duration(i) * time.Second), Status: 500 + i, Reason: "upstream error"})
	}
	got := s.Errors()
	if len(got) != balance.RecentErrors {
		t.Fatalf("kept %d errors, want the last %d", len(got), balance.RecentErrors)
	}
	for i, e := range got {
		if want := 500 + balance.RecentErrors + 1 - i; e.Status != want {
			t.Fatalf("error %d has status %d, want %d (newest first)", i, e.Status, want)
		}
	}
	s.Failure(start)
	if s.Failures() != 1 {
		t.Fatalf("failures in a row: %d, want 1", s.Failures())
	}
	if st, ok := h.Lookup("d"); !ok || st != s {
		t.Fatal("Lookup does not find the deployment's state")
	}
}
