package detect

import (
	"sync"
	"testing"
	"time"
)

// t0 is a round second, so every window's slots line up with the start of a test.
var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// rig drives an Engine with a hand-moved clock and keeps what it emits.
type rig struct {
	t   *testing.T
	mu  sync.Mutex
	now time.Time
	e   *Engine
	got []Alert
	seq uint64
}

func newRig(t *testing.T, cfg Config) *rig {
	t.Helper()
	r := &rig{t: t, now: t0}
	e, err := NewEngine(cfg, r.clock, func(a Alert) {
		r.mu.Lock()
		r.got = append(r.got, a)
		r.mu.Unlock()
	})
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	r.e = e
	return r
}

func (r *rig) clock() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.now
}

// observe stamps o with the rig's clock and the next event number.
func (r *rig) observe(o Observation) {
	r.seq++
	o.EventSeq = r.seq
	o.At = r.clock()
	r.e.Observe(o)
}

// run plays secs seconds: each second the traffic function observes, then the clock moves
// one second and the engine ticks.
func (r *rig) run(secs int, traffic func(sec int)) {
	for s := 0; s < secs; s++ {
		if traffic != nil {
			traffic(s)
		}
		r.mu.Lock()
		r.now = r.now.Add(time.Second)
		now := r.now
		r.mu.Unlock()
		r.e.Tick(now)
	}
}

// peek returns the alerts emitted so far, keeping them.
func (r *rig) peek() []Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Alert(nil), r.got...)
}

// take returns and forgets the alerts emitted so far.
func (r *rig) take() []Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.got
	r.got = nil
	return got
}

func (r *rig) expectNone(phase string) {
	r.t.Helper()
	for _, a := range r.take() {
		r.t.Errorf("%s: unexpected alert %s key=%q client=%q recovered=%v: %s", phase, a.Rule, a.KeyID, a.Client, a.Recovered, a.Summary)
	}
}

// expectOne asserts exactly one alert was emitted, with the given rule and recovery flag.
func (r *rig) expectOne(phase, rule string, recovered bool) Alert {
	r.t.Helper()
	got := r.take()
	if len(got) != 1 {
		for _, a := range got {
			r.t.Logf("  got %s key=%q recovered=%v: %s", a.Rule, a.KeyID, a.Recovered, a.Summary)
		}
		r.t.Fatalf("%s: got %d alerts, want exactly one %s (recovered=%v)", phase, len(got), rule, recovered)
	}
	a := got[0]
	if a.Rule != rule || a.Recovered != recovered {
		r.t.Fatalf("%s: got %s recovered=%v, want %s recovered=%v: %s", phase, a.Rule, a.Recovered, rule, recovered, a.Summary)
	}
	if a.ID == "" || a.At.IsZero() || a.Summary == "" || a.Severity == "" {
		r.t.Errorf("%s: alert lacks id, time, summary or severity: %+v", phase, a)
	}
	return a
}

func near(got, want, tol float64) bool { return got >= want-tol && got <= want+tol }

// runSpread plays secs seconds in which the traffic function's requests are spread evenly over
// each second, the clock moving between them, so an alert raised between ticks carries the
// simulated moment it was raised.
func (r *rig) runSpread(secs int, traffic func(sec int) []Observation) {
	for s := 0; s < secs; s++ {
		r.mu.Lock()
		start := r.now
		r.mu.Unlock()
		obs := traffic(s)
		for i, o := range obs {
			r.mu.Lock()
			r.now = start.Add(time.Duration(i) * time.Second / time.Duration(len(obs)))
			r.mu.Unlock()
			r.observe(o)
		}
		r.mu.Lock()
		r.now = start.Add(time.Second)
		now := r.now
		r.mu.Unlock()
		r.e.Tick(now)
	}
}

// repeat returns n copies of o.
func repeat(o Observation, n int) []Observation {
	out := make([]Observation, n)
	for i := range out {
		out[i] = o
	}
	return out
}
