package limit

import (
	"context"
	"errors"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// shardCount is how many independently locked parts Memory's counters are
// split into. A request locks only the shards its checks' keys hash to, in
// ascending order so that two requests can never wait for each other, so
// requests on different keys run in parallel and one Admit is a handful of
// uncontended locks rather than one global lock.
const shardCount = 64

// smallRequest is the number of checks whose working state Admit keeps on
// the stack and whose results it allocates in one block: a key with a
// limit of every kind (two rates, tokens, concurrency, a quota and a
// budget) plus its token's fits.
const smallRequest = 8

// Memory is a Limiter that keeps its counters in this process: exact for a
// single keygate node, but each node of a cluster would count on its own
// (use Redis there).
//
// Idle state is dropped lazily: whenever Admit locks a shard it has not
// swept for the sweep interval (one minute by default), it first drops that
// shard's full buckets, concurrency counters with nothing in flight and
// quota counters whose period ended more than an hour ago. Sweep does the
// same for every shard at once. Total quotas are never dropped: they are
// lifetime budgets.
type Memory struct {
	settings
	sweepEvery int64 // µs
	seed       maphash.Seed
	// calendar caches, per Calendar, the last quota period computed, which
	// the next requests in that period reuse.
	calendar [Month]atomic.Pointer[cachedPeriod]
	shards   [shardCount]shard
}

// cachedPeriod is a quota period of some Calendar in loc, which starts at
// start (µs).
type cachedPeriod struct {
	loc   *time.Location
	start int64
	p     period
}

// shard is one lock's worth of counters.
type shard struct {
	mu     sync.Mutex
	rates  map[string]*state
	slots  map[string]*slotSet
	quotas map[string]*quotaSet
	seq    uint64 // reservations numbered by this shard
	swept  int64  // µs of the last sweep
	peak   int    // entries after the last sweep that rebuilt the maps
	_      [64]byte
}

// slotSet is a concurrency counter: the slots held, each with its lease
// expiry. A reservation remembers the index of its slot, so that settling
// frees it without a search.
type slotSet struct {
	slots    []slot
	free     []int32 // indexes of free slots
	live     int64   // slots held
	earliest int64   // no lease expires before this µs (a lower bound)
}

// slot is one admission's hold on a concurrency limit; seq 0 marks a free
// slot.
type slot struct {
	seq   uint64 // the reservation
	check int    // the reservation's check
	exp   int64  // µs when the lease expires
}

// quotaSet holds the counters of a quota Key: usually one, the current
// period of one Calendar.
type quotaSet struct {
	counts []*quotaCount
}

// quotaCount is the units used in one quota period.
type quotaCount struct {
	cal   Calendar
	label int64
	used  int64
	end   int64 // µs when the period ends; 0 for Total
}

// find returns the counter of period label of cal, or nil.
func (qs *quotaSet) find(cal Calendar, label int64) *quotaCount {
	for _, q := range qs.counts {
		if q.cal == cal && q.label == label {
			return q
		}
	}
	return nil
}

// NewMemory returns an in-memory Limiter.
func NewMemory(opts ...MemoryOption) *Memory {
	m := &Memory{
		settings:   settings{lease: defaultLease},
		sweepEvery: time.Minute.Microseconds(),
		seed:       maphash.MakeSeed(),
	}
	for _, o := range opts {
		o.applyMemory(m)
	}
	if m.now == nil {
		m.now = time.Now
	}
	for i := range m.shards {
		sh := &m.shards[i]
		sh.rates = make(map[string]*state)
		sh.slots = make(map[string]*slotSet)
		sh.quotas = make(map[string]*quotaSet)
	}
	return m
}

// ref points at a counter in a shard; nil fields are counters not yet
// created.
type ref struct {
	rate   *state
	slots  *slotSet
	quotas *quotaSet
	quota  *quotaCount
}

// work is Admit's per-call state, on the stack for small requests.
type work struct {
	alias []int
	base  []state
	next  []state
	refs  []ref
	shard []uint8
	locks []uint8
}

// smallWork backs a work for up to smallRequest checks.
type smallWork struct {
	alias      [smallRequest]int
	base, next [smallRequest]state
	refs       [smallRequest]ref
	shard      [smallRequest]uint8
	locks      [smallRequest]uint8
}

// smallBlock holds, in one allocation, what Admit returns for up to
// smallRequest checks.
type smallBlock struct {
	hold
	checks    [smallRequest]Check
	periods   [smallRequest]period
	slots     [smallRequest]int32
	remaining [smallRequest]int64
	reset     [smallRequest]time.Time
}

// Admit implements Limiter.
func (m *Memory) Admit(ctx context.Context, checks []Check) (Decision, error) {
	if err := validate(checks); err != nil {
		return Decision{Denied: -1}, err
	}
	n := len(checks)
	if n == 0 {
		return Decision{Allowed: true, Denied: -1}, nil
	}
	now := m.now()
	us := now.UnixMicro()

	var d Decision
	var h *hold
	var sw smallWork
	var w work
	if n <= smallRequest {
		b := new(smallBlock)
		h = &b.hold
		h.checks, h.periods, h.slots = b.checks[:n:n], b.periods[:n:n], b.slots[:n:n]
		d.Remaining, d.Reset = b.remaining[:n:n], b.reset[:n:n]
		w = work{sw.alias[:n], sw.base[:n], sw.next[:n], sw.refs[:n], sw.shard[:n], sw.locks[:0]}
	} else {
		h = &hold{checks: make([]Check, n), periods: make([]period, n), slots: make([]int32, n)}
		d.Remaining, d.Reset = make([]int64, n), make([]time.Time, n)
		w = work{make([]int, n), make([]state, n), make([]state, n), make([]ref, n), make([]uint8, n), make([]uint8, 0, n)}
	}
	copy(h.checks, checks)
	checks = h.checks
	for i := range checks {
		if checks[i].Kind == Quota {
			h.periods[i] = m.period(&checks[i], now, us)
		}
		w.shard[i] = m.shardOf(checks[i].Key)
	}
	aliases(checks, h.periods, w.alias)
	w.locks = m.lock(w.shard, w.locks)
	for _, s := range w.locks {
		if sh := &m.shards[s]; us-sh.swept >= m.sweepEvery {
			sh.sweep(us)
		}
	}

	for i := range checks {
		if w.alias[i] == i {
			w.base[i], w.refs[i] = m.load(&checks[i], &h.periods[i], w.shard[i], us)
		}
	}
	evaluate(checks, h.periods, w.alias, w.base, w.next, us, &d)
	if d.Allowed {
		// Reservations are numbered by the first shard locked, so that
		// requests on different keys share no counter: unique because
		// the shard's index is in the low bits.
		first := &m.shards[w.locks[0]]
		first.seq++
		seq := first.seq<<8 | uint64(w.locks[0])
		exp := us + m.lease.Microseconds()
		for i := range checks {
			h.slots[i] = m.apply(&checks[i], &h.periods[i], w.shard[i], &w.refs[w.alias[i]], w.next[w.alias[i]], slot{seq, i, exp})
			if checks[i].Kind == Concurrency {
				d.Reservation.expires = time.UnixMicro(exp)
			}
		}
		d.Reservation.seq, d.Reservation.issuer, d.Reservation.h = seq, m, h
	}
	m.unlock(w.locks)
	return d, nil
}

// period returns the quota period of c containing now (us in µs).
func (m *Memory) period(c *Check, now time.Time, us int64) period {
	if c.Calendar == Total {
		return period{}
	}
	loc := c.location()
	cache := &m.calendar[c.Calendar-1]
	if e := cache.Load(); e != nil && e.loc == loc && e.start <= us && us < e.p.end {
		return e.p
	}
	p, start := periodAt(c, now)
	cache.Store(&cachedPeriod{loc, start, p})
	return p
}

// load reads the committed state of c's counter in shard s.
func (m *Memory) load(c *Check, p *period, s uint8, us int64) (state, ref) {
	sh := &m.shards[s]
	switch c.Kind {
	case Rate:
		if b := sh.rates[c.Key]; b != nil {
			return *b, ref{rate: b}
		}
	case Concurrency:
		if set := sh.slots[c.Key]; set != nil {
			set.expire(us)
			return state{v: set.live}, ref{slots: set}
		}
	case Quota:
		if qs := sh.quotas[c.Key]; qs != nil {
			if q := qs.find(c.Calendar, p.label); q != nil {
				return state{v: q.used}, ref{quotas: qs, quota: q}
			}
			return state{}, ref{quotas: qs}
		}
	}
	return state{}, ref{}
}

// apply stores an admitted request's effect on check c's counter: its new
// state (the same for every check sharing the counter) and, for
// Concurrency, the slot it holds, whose index it returns.
func (m *Memory) apply(c *Check, p *period, s uint8, r *ref, next state, sl slot) int32 {
	sh := &m.shards[s]
	switch c.Kind {
	case Rate:
		if r.rate == nil {
			r.rate = new(state)
			sh.rates[c.Key] = r.rate
		}
		*r.rate = next
	case Concurrency:
		if r.slots == nil {
			r.slots = &slotSet{earliest: sl.exp}
			sh.slots[c.Key] = r.slots
		}
		return r.slots.hold(sl)
	case Quota:
		if r.quota == nil {
			if r.quotas == nil {
				// An earlier check of this request, another Calendar of
				// the same Key, may have created the set since load.
				if r.quotas = sh.quotas[c.Key]; r.quotas == nil {
					r.quotas = new(quotaSet)
					sh.quotas[c.Key] = r.quotas
				}
			}
			r.quota = &quotaCount{cal: c.Calendar, label: p.label, end: p.end}
			r.quotas.counts = append(r.quotas.counts, r.quota)
		}
		r.quota.used = next.v
	}
	return 0
}

// Settle implements Limiter.
func (m *Memory) Settle(ctx context.Context, r Reservation, actual []int64) error {
	if err := checkSettle(&r, actual); err != nil {
		return err
	}
	if r.h == nil {
		return nil
	}
	if r.issuer != m {
		return errors.New("limit: settle: the reservation was made by another limiter")
	}
	if !r.h.settled.CompareAndSwap(false, true) {
		return nil
	}
	checks := r.h.checks
	var buf [2 * smallRequest]uint8
	shards, locks := buf[:0:smallRequest], buf[smallRequest:smallRequest]
	if len(checks) > smallRequest {
		shards, locks = make([]uint8, 0, len(checks)), make([]uint8, 0, len(checks))
	}
	for i := range checks {
		shards = append(shards, m.shardOf(checks[i].Key))
	}
	var us int64 // read from the clock when first needed
	now := func() int64 {
		if us == 0 {
			us = m.now().UnixMicro()
		}
		return us
	}
	locks = m.lock(shards, locks)
	for i := range checks {
		c := &checks[i]
		sh := &m.shards[shards[i]]
		delta := actual[i] - c.Cost
		switch c.Kind {
		case Rate:
			if delta == 0 {
				continue
			}
			b := sh.rates[c.Key]
			var s state
			if b != nil {
				s = *b
			}
			s = rateBase(s, now(), c.Limit)
			if delta > 0 {
				s = rateAdd(s, delta, c.Period.Microseconds(), c.Limit, now())
			} else {
				s = rateSub(s, -delta, c.Period.Microseconds(), c.Limit, now())
			}
			if b == nil {
				b = new(state)
				sh.rates[c.Key] = b
			}
			*b = s
		case Concurrency:
			if set := sh.slots[c.Key]; set != nil {
				set.release(r.h.slots[i], r.seq, i)
			}
		case Quota:
			if delta == 0 {
				continue
			}
			p := &r.h.periods[i]
			qs := sh.quotas[c.Key]
			var q *quotaCount
			if qs != nil {
				q = qs.find(c.Calendar, p.label)
			}
			if q == nil {
				if delta < 0 || (p.end != 0 && p.end+quotaMargin.Microseconds() <= now()) {
					continue
				}
				if qs == nil {
					qs = new(quotaSet)
					sh.quotas[c.Key] = qs
				}
				q = &quotaCount{cal: c.Calendar, label: p.label, end: p.end}
				qs.counts = append(qs.counts, q)
			}
			q.used = max(0, q.used+delta)
		}
	}
	m.unlock(locks)
	return nil
}

// Sweep drops idle state from every shard now: buckets that are full again,
// concurrency counters with nothing in flight and quota counters whose
// period ended more than an hour ago. Admit already does this lazily, shard
// by shard, once per sweep interval; a server may also call Sweep on a
// timer to return memory after a burst of keys that then went quiet.
func (m *Memory) Sweep() {
	us := m.now().UnixMicro()
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		sh.sweep(us)
		sh.mu.Unlock()
	}
}

// sweep drops sh's idle state as of us; sh.mu must be held.
func (sh *shard) sweep(us int64) {
	sh.swept = us
	for k, b := range sh.rates {
		if b.v < us || (b.v == us && b.frac == 0) {
			delete(sh.rates, k)
		}
	}
	for k, set := range sh.slots {
		set.expire(us)
		if set.live == 0 {
			delete(sh.slots, k)
		}
	}
	margin := quotaMargin.Microseconds()
	for k, qs := range sh.quotas {
		qs.counts = slices.DeleteFunc(qs.counts, func(q *quotaCount) bool {
			return q.end != 0 && q.end+margin <= us
		})
		if len(qs.counts) == 0 {
			delete(sh.quotas, k)
		}
	}
	// Go maps keep their size after deletes; rebuild them once most of
	// their entries are gone, so a burst of keys does not pin memory.
	size := len(sh.rates) + len(sh.slots) + len(sh.quotas)
	if sh.peak > 1024 && size < sh.peak/4 {
		sh.rates = rebuild(sh.rates)
		sh.slots = rebuild(sh.slots)
		sh.quotas = rebuild(sh.quotas)
		sh.peak = size
	}
	sh.peak = max(sh.peak, size)
}

// rebuild returns a right-sized copy of m.
func rebuild[K comparable, V any](m map[K]V) map[K]V {
	c := make(map[K]V, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// hold takes a slot and returns its index.
func (set *slotSet) hold(sl slot) int32 {
	set.live++
	set.earliest = min(set.earliest, sl.exp)
	if n := len(set.free); n > 0 {
		i := set.free[n-1]
		set.free = set.free[:n-1]
		set.slots[i] = sl
		return i
	}
	set.slots = append(set.slots, sl)
	return int32(len(set.slots) - 1)
}

// release frees slot i if check of reservation seq still holds it (its
// lease may have expired and the slot gone to another request).
func (set *slotSet) release(i int32, seq uint64, check int) {
	if int(i) < len(set.slots) && set.slots[i].seq == seq && set.slots[i].check == check {
		set.drop(i)
	}
}

func (set *slotSet) drop(i int32) {
	set.slots[i] = slot{}
	set.free = append(set.free, i)
	set.live--
}

// expire frees the slots whose lease has expired by us.
func (set *slotSet) expire(us int64) {
	if us < set.earliest {
		return
	}
	earliest := int64(maxDebt) + us
	for i := range set.slots {
		if sl := &set.slots[i]; sl.seq != 0 {
			if sl.exp <= us {
				set.drop(int32(i))
			} else {
				earliest = min(earliest, sl.exp)
			}
		}
	}
	set.earliest = earliest
}

// shardOf returns the shard holding key's counters.
func (m *Memory) shardOf(key string) uint8 {
	return uint8(maphash.String(m.seed, key) % shardCount)
}

// lock locks the distinct shards in shards in ascending order, the one
// order every caller uses, and returns them appended to locks.
func (m *Memory) lock(shards, locks []uint8) []uint8 {
	for _, s := range shards {
		i := len(locks)
		for i > 0 && locks[i-1] > s {
			i--
		}
		if i > 0 && locks[i-1] == s {
			continue
		}
		locks = append(locks, 0)
		copy(locks[i+1:], locks[i:])
		locks[i] = s
	}
	for _, s := range locks {
		m.shards[s].mu.Lock()
	}
	return locks
}

// unlock unlocks the shards lock locked.
func (m *Memory) unlock(locks []uint8) {
	for _, s := range locks {
		m.shards[s].mu.Unlock()
	}
}
