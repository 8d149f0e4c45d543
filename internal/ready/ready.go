// Package ready answers readiness probes: a node is ready to take traffic
// only while every part a request needs can serve (the store, the
// key-encryption key, the limiter backend, the audit trail). A load
// balancer or Kubernetes takes a node that is not ready out of rotation
// until it is again.
//
// The probe is unauthenticated, so its answer names each check and says
// "ok" or "failing", never the cause (which may hold an internal address);
// causes go to the log, once per change of state. Each check's result is
// reused for its interval, so a flood of probes cannot turn into a flood of
// database or KMS calls.
package ready

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Check is one part a node needs in order to serve.
type Check struct {
	// Name is shown in the probe's answer ("store", "kek", ...).
	Name string
	// Probe returns nil while the part can serve, or why it cannot.
	Probe func(context.Context) error
	// Every is how long a result is reused before Probe runs again
	// (at least MinInterval).
	Every time.Duration
	// Degrades marks a part every node shares (the database, the KMS,
	// Redis) that the node can serve without for a while, from what it
	// holds: once the part has passed, a failure names it "degraded" and
	// the node stays ready, since taking every node out of the load
	// balancer at once would turn the part's outage into keygate's. A part
	// that has not passed since the node started still makes it not ready,
	// so a node that never reached it (a wrong address, say) gets no
	// traffic.
	Degrades bool
}

// MinInterval is the shortest time a check's result is reused.
const MinInterval = time.Second

// DefaultTimeout bounds each probe run unless Options says otherwise.
const DefaultTimeout = 2 * time.Second

// Options configures a Checker.
type Options struct {
	Log *slog.Logger
	// Timeout bounds each Probe call (default DefaultTimeout); a probe
	// still running then counts as failing.
	Timeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Checker runs the checks and serves the probe.
type Checker struct {
	opts     Options
	checks   []*check
	stopping atomic.Bool
}

type check struct {
	Check
	mu     sync.Mutex // held while probing, so concurrent probes share one run
	at     time.Time  // when err was found; zero before the first run
	err    error
	logged bool // the current failure has been logged
	passed bool // the check has passed since the node started
}

// New returns a Checker over checks.
func New(opts Options, checks ...Check) *Checker {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Checker{opts: opts}
	for _, ch := range checks {
		ch.Every = max(ch.Every, MinInterval)
		c.checks = append(c.checks, &check{Check: ch})
	}
	return c
}

// Result is one check's state.
type Result struct {
	Name string
	Err  error // nil: ok
	// Degraded is set when Err is a failure of a part the node serves
	// without (Check.Degrades, after it passed once).
	Degraded bool
}

// ErrStopping is the result of every check once Stop was called.
var ErrStopping = errors.New("keygate is shutting down")

// Stop makes every later probe answer not ready: the node is draining.
func (c *Checker) Stop() { c.stopping.Store(true) }

// Check runs the checks that are due, in parallel, and returns every
// check's state in the order they were given.
func (c *Checker) Check(ctx context.Context) []Result {
	out := make([]Result, len(c.checks))
	var wg sync.WaitGroup
	for i, ch := range c.checks {
		wg.Go(func() {
			err := c.run(ctx, ch)
			ch.mu.Lock()
			degraded := err != nil && ch.Degrades && ch.passed
			ch.mu.Unlock()
			out[i] = Result{Name: ch.Name, Err: err, Degraded: degraded}
		})
	}
	wg.Wait()
	if c.stopping.Load() {
		for i := range out {
			out[i].Err, out[i].Degraded = ErrStopping, false
		}
	}
	return out
}

// run returns ch's current result, probing again when it is due.
func (c *Checker) run(ctx context.Context, ch *check) error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	now := c.opts.Now()
	if !ch.at.IsZero() && now.Sub(ch.at) < ch.Every {
		return ch.err
	}
	err := c.probe(ctx, ch)
	ch.at = c.opts.Now()
	if err == nil {
		ch.passed = true
	}
	switch {
	case err != nil && !ch.logged && ch.Degrades && ch.passed:
		c.opts.Log.Warn("degraded: "+ch.Name+" cannot serve; the node still answers /readyz with 200", "check", ch.Name, "err", err)
		ch.logged = true
	case err != nil && !ch.logged:
		c.opts.Log.Error("not ready: "+ch.Name+" cannot serve; the node answers /readyz with 503 until it can", "check", ch.Name, "err", err)
		ch.logged = true
	case err == nil && ch.logged:
		c.opts.Log.Info("ready again: "+ch.Name+" serves", "check", ch.Name)
		ch.logged = false
	}
	ch.err = err
	return err
}

// probe calls ch.Probe within the timeout. A probe that does not return in
// time keeps running in its goroutine and is abandoned.
func (c *Checker) probe(ctx context.Context, ch *check) (err error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.Timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("the check panicked: %v", r)
			}
		}()
		done <- ch.Probe(ctx)
	}()
	select {
	case err = <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("no answer within %s", c.opts.Timeout)
	}
}

// ServeHTTP answers a readiness probe: 200 and "ready" when every check
// passes or only degrades, else 503 and "not ready"; then one line per
// check, "name ok", "name degraded" or "name failing". GET and HEAD only.
func (c *Checker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "use GET /readyz", http.StatusMethodNotAllowed)
		return
	}
	res := c.Check(r.Context())
	var b strings.Builder
	ok := true
	for _, x := range res {
		state := "ok"
		switch {
		case errors.Is(x.Err, ErrStopping):
			ok, state = false, "shutting down"
		case x.Degraded:
			state = "degraded"
		case x.Err != nil:
			ok, state = false, "failing"
		}
		fmt.Fprintf(&b, "%s %s\n", x.Name, state)
	}
	if ok {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("ready\n" + b.String()))
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte("not ready\n" + b.String()))
}
