package chaos

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
)

// suite runs the load, the faults, the admin changes and the soak over a
// built cluster, and keeps what happened for the checks.
type suite struct {
	c    *cluster
	load *loader

	mu       sync.Mutex
	phases   []*phase
	kills    []killEvent
	adminOps []adminOp
	probes   []probe
	soak     []soakSample
	churnN   int
}

// phase is a stretch of the run: the steady state, one fault from its
// injection to the end of its recovery, or the soak.
type phase struct {
	name   string
	does   string
	fault  bool
	start  time.Time
	healed time.Time // zero for steady stretches
	end    time.Time
	errs   []string // injecting or healing went wrong
}

// adminOp is one admin change made during the run.
type adminOp struct {
	at    time.Time
	what  string
	err   error
	phase string
}

// probe is one node checked directly after a change: a revoked key must
// be refused, a new key served, within a second.
type probe struct {
	what  string
	node  string
	took  time.Duration
	ok    bool
	phase string
}

func newSuite(c *cluster) *suite {
	s := &suite{c: c}
	s.load = newLoader("http://"+c.lb.addr, c.o.Rate, c.o.Workers, c.keys, c.holders)
	return s
}

func (s *suite) run(ctx context.Context) (*Report, error) {
	c, o := s.c, s.c.o
	lctx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	go func() { s.load.run(lctx); close(loadDone) }()
	actx, stopAdmin := context.WithCancel(ctx)
	adminDone := make(chan struct{})
	go func() { s.adminLoop(actx); close(adminDone) }()

	c.progress("load: %.0f calls/s, at most %d in flight; steady state for %v", o.Rate, o.Workers, o.Steady)
	s.stretch(ctx, &phase{name: "steady state", does: "no fault"}, o.Steady)
	for _, f := range s.faults() {
		if ctx.Err() != nil {
			break
		}
		if !selected(f.name, o.Only) {
			continue
		}
		p := &phase{name: f.name, does: f.does, fault: true, start: time.Now()}
		s.addPhase(p)
		c.progress("fault: %s (held %v)", f.name, o.Hold)
		if err := f.inject(ctx); err != nil {
			p.errs = append(p.errs, "inject: "+err.Error())
		}
		sleep(ctx, o.Hold)
		c.progress("heal: %s", f.name)
		if err := f.heal(ctx); err != nil {
			p.errs = append(p.errs, "heal: "+err.Error())
			c.progress("heal failed: %v", err)
		}
		p.healed = time.Now()
		sleep(ctx, o.Recover)
		p.end = time.Now()
	}
	if o.Soak > 0 && ctx.Err() == nil {
		c.progress("soak: steady load for %v", o.Soak)
		s.runSoak(ctx, o.Soak)
	}
	stopAdmin()
	<-adminDone
	stopLoad()
	<-loadDone
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	c.progress("load stopped; waiting for the nodes to flush, then checking")
	sleep(ctx, 6*time.Second) // past the 5 s usage flush
	rep := s.report(ctx)
	if failed := rep.Failed(); len(failed) > 0 {
		return rep, fmt.Errorf("chaos: %d check(s) failed: %s", len(failed), strings.Join(failed, "; "))
	}
	return rep, nil
}

// stretch runs the load with no fault for d, as phase p.
func (s *suite) stretch(ctx context.Context, p *phase, d time.Duration) {
	p.start = time.Now()
	s.addPhase(p)
	sleep(ctx, d)
	p.end = time.Now()
}

func (s *suite) addPhase(p *phase) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.phases = append(s.phases, p)
}

// phaseAt names the phase running at t.
func (s *suite) phaseAt(t time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.phases) - 1; i >= 0; i-- {
		if !t.Before(s.phases[i].start) {
			return s.phases[i].name
		}
	}
	return ""
}

// selected says whether a fault is among those only names (all when empty).
func selected(name string, only []string) bool {
	if len(only) == 0 {
		return true
	}
	for _, o := range only {
		if strings.Contains(strings.ToLower(name), strings.ToLower(strings.TrimSpace(o))) {
			return true
		}
	}
	return false
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// adminOp runs one admin change and records it.
func (s *suite) adminOp(ctx context.Context, what string, f func(context.Context) error) error {
	at := time.Now()
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := f(octx)
	if ctx.Err() != nil {
		return err // the run is ending
	}
	ph := s.phaseAt(at)
	s.mu.Lock()
	s.adminOps = append(s.adminOps, adminOp{at: at, what: what, err: err, phase: ph})
	s.mu.Unlock()
	return err
}

// adminLoop changes keys through node-1's admin API while the load runs:
// creates keys the load then uses, rotates and revokes them, and after
// each change checks every node directly.
func (s *suite) adminLoop(ctx context.Context) {
	every := 5 * time.Second
	if s.c.o.Short {
		every = 2 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		switch {
		case i%4 == 2 && len(s.c.keys.live(churnKey)) > 2:
			s.rotateOne(ctx)
		case i%4 == 3 && len(s.c.keys.live(churnKey)) > 2:
			s.revokeOne(ctx)
		default:
			s.createOne(ctx)
		}
	}
}

func (s *suite) createOne(ctx context.Context) {
	ac, err := s.c.adminClient(0)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.churnN++
	name := fmt.Sprintf("chaos-churn-%d", s.churnN)
	s.mu.Unlock()
	var created adminapi.CreatedKey
	err = s.adminOp(ctx, "key create", func(ctx context.Context) error {
		created, err = ac.CreateKey(ctx, adminapi.CreateKeyRequest{Name: name, AllowServices: []string{"echo"}, ExpiresIn: "2d"})
		return err
	})
	if err != nil {
		return
	}
	k := &apiKey{id: created.Key.ID, name: name, secret: created.Secret, class: churnKey}
	s.probeNodes(ctx, "new key served", k.secret, true)
	s.c.keys.add(k)
}

func (s *suite) rotateOne(ctx context.Context) {
	live := s.c.keys.live(churnKey)
	old := live[0]
	ac, err := s.c.adminClient(0)
	if err != nil {
		return
	}
	const grace = 2 * time.Second
	sent := time.Now()
	var rot adminapi.RotatedKey
	err = s.adminOp(ctx, "key rotate", func(ctx context.Context) error {
		rot, err = ac.RotateKey(ctx, old.id, grace.String())
		return err
	})
	if err != nil {
		return
	}
	old.retire(sent.Add(grace), time.Now().Add(grace))
	k := &apiKey{id: rot.Key.ID, name: rot.Key.Name, secret: rot.Secret, class: churnKey}
	s.probeNodes(ctx, "rotated key's successor served", k.secret, true)
	s.c.keys.add(k)
}

func (s *suite) revokeOne(ctx context.Context) {
	live := s.c.keys.live(churnKey)
	k := live[len(live)/2]
	ac, err := s.c.adminClient(0)
	if err != nil {
		return
	}
	sent := time.Now()
	err = s.adminOp(ctx, "key revoke", func(ctx context.Context) error {
		_, err := ac.RevokeKey(ctx, k.id)
		return err
	})
	if err != nil {
		return
	}
	k.retire(sent, time.Now())
	s.probeNodes(ctx, "revoked key refused", k.secret, false)
}

// probeNodes asks every running node directly, with a passthrough call
// (no model provider involved: a provider fault must not slow the probe),
// until the key is served (want true) or refused (want false), for at
// most a second.
func (s *suite) probeNodes(ctx context.Context, what, key string, want bool) {
	var wg sync.WaitGroup
	start := time.Now()
	phaseName := s.phaseAt(start)
	for _, n := range s.c.nodes {
		if !n.running() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := probe{what: what, node: n.name, phase: phaseName}
			for {
				code := s.c.pingAt(ctx, n.gateway, key)
				served := code == http.StatusOK
				p.took = time.Since(start)
				if served == want {
					p.ok = true
					break
				}
				if p.took > time.Second || ctx.Err() != nil {
					break
				}
				time.Sleep(25 * time.Millisecond)
			}
			if !n.running() {
				return // stopped by a fault meanwhile: nothing to judge
			}
			s.mu.Lock()
			s.probes = append(s.probes, p)
			s.mu.Unlock()
		}()
	}
	wg.Wait()
}

// pingAt calls the passthrough service at one gateway with key and
// returns the status.
func (c *cluster) pingAt(ctx context.Context, addr, key string) int {
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/proxy/echo/v1/ping", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := c.probe.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// chatAt sends one chat call to one gateway with key.
func (c *cluster) chatAt(ctx context.Context, addr, key string) (int, string) {
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/v1/chat/completions",
		strings.NewReader(`{"model":"chat","max_tokens":16,"messages":[{"role":"user","content":"ready?"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.probe.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	return resp.StatusCode, string(b)
}
