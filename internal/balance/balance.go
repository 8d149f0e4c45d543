// Package balance decides which deployment of a model alias serves a
// request, and in which order the others are tried when it fails: the
// alias's strategy (priority, weighted random, least busy, lowest latency,
// lowest cost) orders the candidates, a circuit breaker per deployment takes
// a failing one out and probes it back in, and a cool-down honours an
// upstream's Retry-After.
//
// A Health is long-lived and shared by every request: it outlives routing
// table reloads, so what keygate learned of a deployment survives a change
// of configuration elsewhere.
package balance

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Strategy orders an alias's deployments for a request.
type Strategy string

// The strategies an alias may use.
const (
	// Priority tries deployments in the order they are listed.
	Priority Strategy = "priority"
	// Weighted picks at random in proportion to the deployments' weights,
	// then falls back among the rest the same way.
	Weighted Strategy = "weighted"
	// LeastBusy prefers the deployment with the fewest requests in flight
	// on this node.
	LeastBusy Strategy = "least-busy"
	// LowestLatency prefers the deployment with the lowest moving average
	// time to response headers; one not yet measured is tried first.
	LowestLatency Strategy = "lowest-latency"
	// LowestCost prefers the cheapest deployment at its price.
	LowestCost Strategy = "lowest-cost"
)

// ParseStrategy reads a strategy name; "" is Priority.
func ParseStrategy(s string) (Strategy, error) {
	switch Strategy(s) {
	case "":
		return Priority, nil
	case Priority, Weighted, LeastBusy, LowestLatency, LowestCost:
		return Strategy(s), nil
	}
	return "", fmt.Errorf("unknown strategy %q; use priority, weighted, least-busy, lowest-latency or lowest-cost", s)
}

// Candidate is one deployment as a strategy sees it.
type Candidate struct {
	Weight int     // Weighted: relative share, at least 1
	Cost   float64 // LowestCost: any consistent unit, such as USD per million tokens
	State  *State  // LeastBusy, LowestLatency: the deployment's live state
}

// Order returns the indexes of cands in the order they should be tried.
// rnd supplies randomness for Weighted (and for ties); nil uses the
// package's generator.
func Order(s Strategy, cands []Candidate, rnd *rand.Rand) []int {
	idx := make([]int, len(cands))
	for i := range idx {
		idx[i] = i
	}
	float := rand.Float64
	if rnd != nil {
		float = rnd.Float64
	}
	switch s {
	case Weighted:
		total := 0
		for _, c := range cands {
			total += max(c.Weight, 1)
		}
		// Weighted sampling without replacement: each pick removes its
		// weight from the pool.
		for i := range idx {
			x := float() * float64(total)
			j := i
			for ; j < len(idx)-1; j++ {
				w := float64(max(cands[idx[j]].Weight, 1))
				if x < w {
					break
				}
				x -= w
			}
			total -= max(cands[idx[j]].Weight, 1)
			idx[i], idx[j] = idx[j], idx[i]
			// Keep the rest in list order for the next draw.
			slices.Sort(idx[i+1:])
		}
	case LeastBusy:
		slices.SortStableFunc(idx, func(a, b int) int {
			return int(cands[a].State.InFlight() - cands[b].State.InFlight())
		})
	case LowestLatency:
		slices.SortStableFunc(idx, func(a, b int) int {
			la, lb := cands[a].State.Latency(), cands[b].State.Latency()
			switch {
			case la < lb:
				return -1
			case la > lb:
				return 1
			}
			return 0
		})
	case LowestCost:
		slices.SortStableFunc(idx, func(a, b int) int {
			switch {
			case cands[a].Cost < cands[b].Cost:
				return -1
			case cands[a].Cost > cands[b].Cost:
				return 1
			}
			return 0
		})
	}
	return idx
}

// BreakerConfig tunes the circuit breakers.
type BreakerConfig struct {
	// Failures in a row that open a deployment's breaker (default 5).
	Failures int
	// Cooldown is how long an open breaker keeps its deployment out
	// before one probe request is let through (default 30s).
	Cooldown time.Duration
}

func (c BreakerConfig) withDefaults() BreakerConfig {
	if c.Failures <= 0 {
		c.Failures = 5
	}
	if c.Cooldown <= 0 {
		c.Cooldown = 30 * time.Second
	}
	return c
}

// Breaker states, as State.Breaker reports them.
const (
	Closed   = "closed"
	Open     = "open"
	HalfOpen = "half-open"
)

// State is what keygate knows of one deployment right now. It is safe for
// concurrent use.
type State struct {
	cfg BreakerConfig

	mu        sync.Mutex
	failures  int       // in a row
	openUntil time.Time // while open: when a probe may go
	open      bool
	probing   bool // half-open: the one probe is in flight

	inFlight  atomic.Int64
	latency   atomic.Int64 // moving average, nanoseconds; 0 unknown
	coolUntil atomic.Int64 // Unix nanoseconds: the upstream asked to wait until then

	errMu sync.Mutex
	errs  [RecentErrors]UpstreamError // a ring; errN counts every one recorded
	errN  int
}

// RecentErrors is how many of a deployment's last upstream errors State
// keeps to show an operator.
const RecentErrors = 5

// UpstreamError is one failed attempt at a deployment, as an operator
// sees it: when, the upstream's HTTP status (0 when it never answered) and
// what went wrong in keygate's own words. It never holds the request, the
// answer's body or the error text of the transport, which can name the
// upstream URL and so a key sent in its query.
type UpstreamError struct {
	At     time.Time
	Status int
	Reason string
}

// RecordError keeps e among the deployment's recent errors, dropping the
// oldest past RecentErrors. It does not move the breaker: Failure does.
func (s *State) RecordError(e UpstreamError) {
	s.errMu.Lock()
	s.errs[s.errN%RecentErrors] = e
	s.errN++
	s.errMu.Unlock()
}

// Errors returns the deployment's recent errors, newest first.
func (s *State) Errors() []UpstreamError {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	n := min(s.errN, RecentErrors)
	out := make([]UpstreamError, 0, n)
	for i := range n {
		out = append(out, s.errs[(s.errN-1-i)%RecentErrors])
	}
	return out
}

// Failures returns the failures in a row the breaker has counted since
// the last success.
func (s *State) Failures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failures
}

// Acquire asks to send a request to the deployment at now. It is refused
// while the deployment cools down after a 429, or while its breaker is
// open; once the cool-down of an open breaker has passed, exactly one
// probe is let through (half-open) until its outcome is reported. probe
// reports whether this request is that probe.
func (s *State) Acquire(now time.Time) (ok, probe bool) {
	if now.UnixNano() < s.coolUntil.Load() {
		return false, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.open {
		return true, false
	}
	if s.probing || now.Before(s.openUntil) {
		return false, false
	}
	s.probing = true
	return true, true
}

// Success reports a request that got an answer other than a server error
// or 429, with its time to response headers. It closes the breaker.
func (s *State) Success(d time.Duration) {
	s.mu.Lock()
	s.failures, s.open, s.probing = 0, false, false
	s.mu.Unlock()
	s.observeLatency(d)
}

// Failure reports a request that failed (no answer, a timeout, a server
// error). Enough in a row open the breaker; a failed probe opens it again.
func (s *State) Failure(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures++
	if s.probing || s.failures >= s.cfg.Failures {
		s.open, s.probing = true, false
		s.openUntil = now.Add(s.cfg.Cooldown)
	}
}

// Release ends a probe whose outcome says nothing of the deployment's
// health (the client went away), so another may be sent.
func (s *State) Release(probe bool) {
	if !probe {
		return
	}
	s.mu.Lock()
	s.probing = false
	s.mu.Unlock()
}

// CoolUntil keeps the deployment out until t, as an upstream's Retry-After
// asked. A later time extends it; an earlier one changes nothing.
func (s *State) CoolUntil(t time.Time) {
	n := t.UnixNano()
	for {
		cur := s.coolUntil.Load()
		if n <= cur || s.coolUntil.CompareAndSwap(cur, n) {
			return
		}
	}
}

// CoolingUntil returns when the deployment's cool-down ends, or the zero
// time when it is not cooling at now.
func (s *State) CoolingUntil(now time.Time) time.Time {
	n := s.coolUntil.Load()
	if n <= now.UnixNano() {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Breaker returns the breaker's state at now: closed, open, or half-open
// (open, and a probe may go or is in flight).
func (s *State) Breaker(now time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.open:
		return Closed
	case s.probing || !now.Before(s.openUntil):
		return HalfOpen
	}
	return Open
}

// Start counts a request in flight; the returned function ends it.
func (s *State) Start() (done func()) {
	s.inFlight.Add(1)
	var once sync.Once
	return func() { once.Do(func() { s.inFlight.Add(-1) }) }
}

// InFlight returns the requests in flight on this node.
func (s *State) InFlight() int64 { return s.inFlight.Load() }

// Latency returns the moving average time to response headers, or 0
// before the first measurement.
func (s *State) Latency() time.Duration { return time.Duration(s.latency.Load()) }

// latencyWeight is the weight of a new measurement in the moving average.
const latencyWeight = 0.2

func (s *State) observeLatency(d time.Duration) {
	if d <= 0 {
		return
	}
	for {
		cur := s.latency.Load()
		next := int64(d)
		if cur != 0 {
			next = int64(float64(cur) + latencyWeight*(float64(d)-float64(cur)))
		}
		if s.latency.CompareAndSwap(cur, next) {
			return
		}
	}
}

// Health holds the State of every deployment by name. It is safe for
// concurrent use.
type Health struct {
	cfg BreakerConfig
	mu  sync.RWMutex
	m   map[string]*State
}

// NewHealth returns an empty Health whose breakers use cfg.
func NewHealth(cfg BreakerConfig) *Health {
	return &Health{cfg: cfg.withDefaults(), m: map[string]*State{}}
}

// Of returns the state of the named deployment, creating it at first use.
func (h *Health) Of(name string) *State {
	h.mu.RLock()
	s := h.m[name]
	h.mu.RUnlock()
	if s != nil {
		return s
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if s = h.m[name]; s == nil {
		s = &State{cfg: h.cfg}
		h.m[name] = s
	}
	return s
}

// Lookup returns the state of the named deployment, or false when this
// node has sent it nothing yet (its breaker is closed and it has no errors).
func (h *Health) Lookup(name string) (*State, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	s, ok := h.m[name]
	return s, ok
}

// ParseRetryAfter reads a Retry-After value, in seconds or as an HTTP
// date, as a wait from now. It reports false for a missing or unreadable
// value.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 32); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}
