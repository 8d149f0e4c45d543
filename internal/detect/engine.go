package detect

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Engine runs every detector over the observations keygate feeds it. Observe is called on the
// request path and only updates counters; Tick, called once a second, judges the windows and
// emits alerts. Both are safe for concurrent use. Windows are measured on Tick's clock: an
// observation counts toward the second in which it was observed, not its At.
type Engine struct {
	cfg  Config
	now  func() time.Time
	emit func(Alert)

	keys     [shardCount]keyShard
	clients  [shardCount]authShard
	prefixes [shardCount]authShard

	tickMu sync.Mutex
	sec    int64 // last second ticked, Unix time
	buf    []pendingAlert

	gate gate

	// fleet is the fleet's typical per-key rate (float64 bits), updated at
	// each baseline bucket from fleetBuf, which Tick fills under tickMu.
	fleet    atomic.Uint64
	fleetBuf []float64

	// Window arithmetic in whole seconds, derived once from cfg.
	rateWin, rateSlot, rateBucket, rateFormBuckets int64
	rateAlpha                                      float64
	shortN, shortWin                               int64   // short window in slots and seconds; 0 slots: off
	shortFloor                                     float64 // the count a short window must exceed to be judged
	rateHistNeed                                   float64
	shiftSlot, shiftFormSlots                      int64
	shiftDecay                                     float64
	authWin, authSlot                              int64
	spendWin, spendSlot, spendFormSlots            int64
	spendAlpha                                     float64
	maxSteps                                       int64
}

// NewEngine builds an Engine. now is keygate's clock; emit receives every alert that passes
// de-duplication and the rate limit, and must not block (Dispatcher.Emit does not).
func NewEngine(cfg Config, now func() time.Time, emit func(Alert)) (*Engine, error) {
	if now == nil || emit == nil {
		return nil, errors.New("detect: new engine: a clock and an emit function are required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	secs := func(d time.Duration) int64 { return int64(d / time.Second) }
	// A window is cut into at most 60 slots of whole seconds.
	slot := func(w time.Duration) int64 { return max(1, (secs(w)+59)/60) }
	e := &Engine{cfg: cfg, now: now, emit: emit}
	e.rateSlot = slot(cfg.Rate.Window)
	e.rateWin = secs(cfg.Rate.Window) / e.rateSlot * e.rateSlot
	e.rateBucket = max(e.rateSlot, secs(cfg.Rate.Bucket)/e.rateSlot*e.rateSlot)
	e.rateFormBuckets = max(1, (secs(cfg.Rate.Forming)+e.rateBucket-1)/e.rateBucket)
	e.rateAlpha = float64(e.rateBucket) / float64(secs(cfg.Rate.BaselineWindow))
	if n := secs(cfg.Rate.ShortWindow) / e.rateSlot; n >= 1 && n < e.rateWin/e.rateSlot {
		e.shortN, e.shortWin = n, n*e.rateSlot
	}
	e.shortFloor = math.Inf(1)
	if e.shortN > 0 {
		e.shortFloor = cfg.Rate.Factor * cfg.Rate.Floor * float64(e.shortWin)
	}
	e.rateHistNeed = cfg.Rate.History.Seconds()
	e.shiftSlot = max(1, secs(cfg.Shift.Window)/shiftSlots)
	e.shiftFormSlots = max(1, (secs(cfg.Shift.Forming)+e.shiftSlot-1)/e.shiftSlot)
	e.shiftDecay = math.Exp(-float64(e.shiftSlot) / float64(secs(cfg.Shift.BaselineWindow)))
	e.authSlot = slot(cfg.Auth.Window)
	e.authWin = secs(cfg.Auth.Window) / e.authSlot * e.authSlot
	e.spendSlot = slot(cfg.Spend.Window)
	e.spendWin = secs(cfg.Spend.Window) / e.spendSlot * e.spendSlot
	e.spendFormSlots = max(1, (secs(cfg.Spend.Forming)+e.spendSlot-1)/e.spendSlot)
	e.spendAlpha = float64(e.spendSlot) / float64(secs(cfg.Spend.BaselineWindow))
	// After a stall longer than this many slots every window is empty anyway.
	e.maxSteps = 3600
	for i := range e.keys {
		e.keys[i].m = make(map[string]*keyState)
		e.clients[i].m = make(map[string]*authState)
		e.prefixes[i].m = make(map[string]*authState)
	}
	e.sec = now().Unix()
	e.gate.init(cfg)
	return e, nil
}

// Observe records one observation. It takes one shard lock and allocates only the first time
// a key, client or prefix is seen; risk findings and refresh reuse are alerted at once.
func (e *Engine) Observe(o Observation) {
	if o.Risk != "" || o.RefreshReuse {
		e.observeRisk(&o)
	}
	if o.AuthFailed {
		if o.Client != "" {
			e.authFail(&e.clients[shardOf(o.Client)], RuleAuthFailClient, o.Client, o.EventSeq)
		}
		if o.KeyPrefix != "" {
			p := safePrefix(o.KeyPrefix)
			e.authFail(&e.prefixes[shardOf(p)], RuleAuthFailPrefix, p, o.EventSeq)
		}
		return
	}
	if o.KeyID == "" {
		return
	}
	sh := &e.keys[shardOf(o.KeyID)]
	sh.mu.Lock()
	st := sh.m[o.KeyID]
	if st == nil {
		st = e.newKeyState()
		sh.m[o.KeyID] = st
	}
	early, tripped := st.observe(e, o.KeyID, &o)
	sh.mu.Unlock()
	if tripped {
		e.deliver(e.now(), []pendingAlert{early})
	}
}

// maxPrefix bounds the credential prefix kept and shown: a whole credential must never reach an alert.
const maxPrefix = 12

func safePrefix(p string) string {
	if len(p) > maxPrefix {
		return p[:maxPrefix]
	}
	return p
}

// Tick advances every window to now, judges them, and emits the resulting alerts. keygate calls
// it once a second; a late call catches up on the seconds it missed.
func (e *Engine) Tick(now time.Time) {
	e.tickMu.Lock()
	defer e.tickMu.Unlock()
	to := now.Unix()
	from := e.sec
	if to <= from {
		return
	}
	e.sec = to
	out := e.buf[:0]
	bucket, _ := boundaries(from, to, e.rateBucket)
	for i := range e.keys {
		sh := &e.keys[i]
		sh.mu.Lock()
		for id, st := range sh.m {
			out = st.tick(e, id, from, to, out)
			if st.idle(e, to) {
				delete(sh.m, id)
			} else if bucket > 0 {
				e.fleetAdd(st)
			}
		}
		sh.mu.Unlock()
	}
	if bucket > 0 {
		e.fleetUpdate()
	}
	for i := range e.clients {
		out = e.tickAuth(&e.clients[i], RuleAuthFailClient, from, to, out)
		out = e.tickAuth(&e.prefixes[i], RuleAuthFailPrefix, from, to, out)
	}
	out = e.gate.expireRisk(now, out)
	e.deliver(now, out)
	clear(out)
	e.buf = out[:0]
}

// deliver stamps, de-duplicates, rate limits, acts on and emits alerts.
func (e *Engine) deliver(now time.Time, ps []pendingAlert) {
	var send []Alert
	var acts []Alert
	e.gate.mu.Lock()
	for i := range ps {
		p := &ps[i]
		if p.a.ID == "" {
			p.a.ID = newID()
		}
		if p.a.At.IsZero() {
			p.a.At = now
		}
		if !p.a.Recovered && e.action(p.a.Rule) != ActionNotify {
			acts = append(acts, p.a)
		}
		if e.gate.admit(&p.a, p.subject, now) {
			send = append(send, p.a)
		}
	}
	if s, ok := e.gate.summary(now); ok {
		s.ID = newID()
		send = append(send, s)
	}
	e.gate.mu.Unlock()
	for _, a := range acts {
		if e.cfg.Act != nil {
			e.cfg.Act(a, e.action(a.Rule))
		}
	}
	for _, a := range send {
		e.emit(a)
	}
}

func (e *Engine) action(rule string) string {
	if a, ok := e.cfg.Actions[rule]; ok && a != "" {
		return a
	}
	return ActionNotify
}

func newID() string { return rand.Text() }

// authState counts failed authentications of one client address or key prefix.
type authState struct {
	cur        int64
	win        ring
	ev         seqs
	latch      latch
	lastActive int64
}

// authFail counts one failed authentication. With one-second slots the
// window the next tick will judge is known now (it drops the oldest slot),
// so a burst that crosses the threshold is alerted at once rather than up
// to a second later; the tick then finds the alert already raised.
func (e *Engine) authFail(sh *authShard, rule, subject string, seq uint64) {
	sh.mu.Lock()
	st := sh.m[subject]
	if st == nil {
		st = &authState{win: newRing(int(e.authWin / e.authSlot)), ev: seqs{v: make([]uint64, e.cfg.EventsPerAlert)}}
		sh.m[subject] = st
	}
	st.cur++
	st.ev.add(seq)
	var early pendingAlert
	tripped := false
	if e.authSlot == 1 && !st.latch.on {
		if count := st.win.sum - st.win.v[st.win.pos] + st.cur; count > int64(e.cfg.Auth.Max) {
			st.latch.on, st.latch.clearAt = true, 0
			early, tripped = e.authRaise(rule, subject, count, st), true
		}
	}
	sh.mu.Unlock()
	if tripped {
		e.deliver(e.now(), []pendingAlert{early})
	}
}

// authRaise is the alert for count failures of one address or key prefix.
func (e *Engine) authRaise(rule, subject string, count int64, st *authState) pendingAlert {
	c := e.cfg.Auth
	a := Alert{Rule: rule, Severity: SeverityMedium}
	what := "key prefix " + subject
	if rule == RuleAuthFailClient {
		a.Client, what = subject, "client "+subject
	} else {
		a.KeyPrefix = subject
	}
	a.Summary = fmt.Sprintf("%d failed authentications from %s in %v (threshold more than %d)", count, what, c.Window, c.Max)
	a.Numbers = map[string]float64{"failures": float64(count), "threshold": float64(c.Max), "window_seconds": float64(e.authWin)}
	a.Events = st.ev.list()
	return pendingAlert{a: a, subject: rule + "\x00" + subject}
}

func (e *Engine) tickAuth(sh *authShard, rule string, from, to int64, out []pendingAlert) []pendingAlert {
	c := e.cfg.Auth
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for subject, st := range sh.m {
		n, _ := boundaries(from, to, e.authSlot)
		n = min(n, e.maxSteps)
		for i := int64(0); i < n; i++ {
			if st.cur > 0 {
				st.lastActive = to
			}
			st.win.push(st.cur)
			st.cur = 0
		}
		count := st.win.sum
		tr := st.latch.step(count > int64(c.Max), to, int64(c.RecoverAfter/time.Second))
		var a Alert
		var what string
		if tr != none {
			a.Rule = rule
			if rule == RuleAuthFailClient {
				a.Client, what = subject, "client "+subject
			} else {
				a.KeyPrefix, what = subject, "key prefix "+subject
			}
		}
		switch tr {
		case raise:
			out = append(out, e.authRaise(rule, subject, count, st))
		case recovery:
			a.Severity, a.Recovered = SeverityInfo, true
			a.Summary = fmt.Sprintf("failed authentications from %s are down to %d in %v (threshold more than %d)", what, count, c.Window, c.Max)
			a.Numbers = map[string]float64{"failures": float64(count), "threshold": float64(c.Max)}
			out = append(out, pendingAlert{a: a, subject: rule + "\x00" + subject})
		}
		if count == 0 && st.cur == 0 && !st.latch.on && to-st.lastActive >= e.authWin {
			delete(sh.m, subject)
		}
	}
	return out
}
