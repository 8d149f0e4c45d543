package limit

import (
	"context"
	"errors"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Resilient is the Limiter of a keygate node whose counters live in Redis
// and that must keep serving when Redis cannot be reached, without ever
// spending more than a quota or budget allows.
//
// While Redis answers, every request is decided by Redis exactly as the
// Redis limiter decides it. On the side, each node holds a lease on a slice
// of each quota and budget its requests recently used: the slice is reserved
// in Redis like any request's cost, so the counter always includes it and
// no other node can spend it. When Redis stops answering, the node decides
// alone:
//
//   - a quota or budget is spent from this node's lease of it, and the
//     request is refused (ErrUnavailable) only when the lease cannot cover
//     its cost; since every lease was reserved in Redis beforehand, all the
//     nodes together never spend more than the limit;
//   - rate and concurrency limits are kept by this node's own counters,
//     each limit divided by the number of nodes Redis last saw alive, so the
//     cluster together stays near the limit.
//
// Every node leases every quota in use anywhere in the cluster, not only
// the ones its own requests used: the nodes tell each other, through
// Redis, which quotas are in use, so a node just started, or one the load
// balancer has not yet sent a key's requests to, still holds a slice when
// Redis goes away.
//
// When Redis answers again, each lease is settled with what the node spent
// from it during the outage (once the requests admitted from it have
// settled), and settlements that failed during the outage are applied.
//
// A lease costs capacity while Redis is up: a node refused by Redis on a
// quota it holds a lease of gives its lease back and asks again, so its
// own requests lose nothing, but another node's lease is only given back
// when its node stops using the quota (Idle), when the quota runs low, or
// at renewal. A node killed while holding leases leaves them charged: the
// quota counts them as spent, which can refuse requests early but never
// lets them overspend.
//
// Run must be running for leases to be taken, outages to end and the node
// count to be known.
type Resilient struct {
	shared *Redis
	local  *Memory
	opts   ResilientOptions

	down  atomic.Bool  // Redis did not answer; decide locally until Sync reaches it
	nodes atomic.Int64 // nodes alive at the last heartbeat; 0 before the first

	leases sync.Map // leaseKey → *lease; read on every request, so lock-free

	mu    sync.Mutex      // guards the leases' slices and retry
	retry []pendingSettle // Redis settlements to apply once it answers
	wake  chan struct{}   // a quota seen for the first time: lease it now

	// Only Sync's goroutine uses these.
	since int64                     // ms: the active quotas read up to here
	locs  map[string]*time.Location // quota locations by name, as read back
}

// ResilientOptions configures NewResilient. Zero fields take their
// defaults.
type ResilientOptions struct {
	// Lease is the least share of each quota's limit a node leases, in
	// (0, 0.5] (default 0.05). A negative Lease takes no leases: quotas and
	// budgets are then refused while Redis is down.
	Lease float64
	// LeaseFor sizes a lease by demand: at least what this node's requests
	// spent of the quota in that long, at their recent rate (default one
	// minute), so a busy node rides out an outage that long. Either way a
	// lease is at most half an even share of what is left of the quota.
	LeaseFor time.Duration
	// Idle is how long a lease stays held after the node last served a
	// request under its quota (default 2 minutes).
	Idle time.Duration
	// Renew is how often a lease in use is given back and taken afresh
	// while Redis is up (default 1 hour), well inside the day Redis
	// remembers a reservation.
	Renew time.Duration
	// Heartbeat is how often Run reaches Redis to count the nodes, end an
	// outage and keep the leases (default 1 second).
	Heartbeat time.Duration
	// NodeTTL is how long a node that stopped sending heartbeats still
	// counts among the nodes sharing rate limits (default 15 seconds).
	NodeTTL time.Duration
	// MaxRetries bounds the settlements kept for retry during an outage
	// (default 100,000); beyond it the oldest are dropped, leaving their
	// reservations charged as reserved.
	MaxRetries int
	// Now is the clock (default time.Now); it must agree with the shared
	// limiter's clock.
	Now func() time.Time
}

func (o *ResilientOptions) defaults() {
	switch {
	case o.Lease == 0:
		o.Lease = 0.05
	case o.Lease > 0.5:
		o.Lease = 0.5
	}
	if o.Idle <= 0 {
		o.Idle = 2 * time.Minute
	}
	if o.LeaseFor <= 0 {
		o.LeaseFor = time.Minute
	}
	if o.Renew <= 0 {
		o.Renew = time.Hour
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = time.Second
	}
	if o.NodeTTL <= 0 {
		o.NodeTTL = 15 * time.Second
	}
	if o.MaxRetries <= 0 {
		o.MaxRetries = 100_000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// NewResilient returns a Limiter deciding through shared while it answers
// and from leases and local shares while it does not; local keeps the
// rate and concurrency shares and must not be used for anything else.
func NewResilient(shared *Redis, local *Memory, opts ResilientOptions) *Resilient {
	opts.defaults()
	return &Resilient{shared: shared, local: local, opts: opts, wake: make(chan struct{}, 1)}
}

// leaseKey names a quota counter, whatever its period.
type leaseKey struct {
	key string
	cal Calendar
	loc *time.Location
}

// lease is a node's hold on a slice of one quota counter.
type lease struct {
	check    Check        // the quota, Cost unused
	lastUsed atomic.Int64 // µs of the last request under the quota
	left     atomic.Int64 // the quota's capacity left in Redis, as last seen
	leftEnd  atomic.Int64 // µs the period left was seen in ends; 0 for Total
	demand   atomic.Int64 // cost of this node's requests under it since the last Sync
	// published is lastUsed (µs) as this node last told the other nodes,
	// or as it learnt it from them; Sync tells them again once its own
	// requests have moved lastUsed well past it.
	published atomic.Int64

	// Guarded by Resilient.mu.
	res     Reservation // the slice's reservation in Redis; zero: none held
	period  period      // the period the slice was reserved in
	size    int64       // units reserved
	spent   int64       // units spent from it while Redis was down
	pending int         // requests admitted from it not yet settled
	taken   time.Time   // when the slice was reserved
	busy    bool        // being settled or taken by Sync
	rate    float64     // this node's recent spend of it, units per second (Sync)
	rateAt  time.Time   // when rate was last updated
}

// held reports whether the lease holds a slice.
func (l *lease) held() bool { return l.res.h != nil }

// pendingSettle is a Redis settlement that failed and waits for Redis.
type pendingSettle struct {
	r      Reservation
	actual []int64
}

// outageHold is the issuer of a reservation made while Redis was down.
type outageHold struct {
	local  Reservation // the rate and concurrency shares
	idx    []int       // for each of local's checks, its index in the request
	leases []*lease    // per check: the lease its quota cost came from, or nil
}

// Wake receives when a quota is seen for the first time, so that whoever
// runs Sync runs it at once and the quota is leased before an outage can
// find it unleased.
func (x *Resilient) Wake() <-chan struct{} { return x.wake }

// Down reports whether the node decides alone because Redis did not answer.
func (x *Resilient) Down() bool { return x.down.Load() }

// Nodes returns the number of nodes Redis last saw alive (at least 1).
func (x *Resilient) Nodes() int64 { return max(x.nodes.Load(), 1) }

// Admit implements Limiter.
func (x *Resilient) Admit(ctx context.Context, checks []Check) (Decision, error) {
	if !x.down.Load() {
		d, err := x.shared.Admit(ctx, checks)
		if err == nil {
			if d, err = x.seen(ctx, checks, d); err == nil {
				return d, nil
			}
		}
		if !errors.Is(err, ErrUnavailable) {
			return d, err
		}
		x.down.Store(true)
	}
	return x.admitLocal(ctx, checks)
}

// seen notes the quotas a request Redis decided used, so that Sync keeps
// leases on them. A request refused by a quota this node holds a lease of
// gets the lease given back and is asked again, once.
func (x *Resilient) seen(ctx context.Context, checks []Check, d Decision) (Decision, error) {
	us := x.opts.Now().UnixMicro()
	for i := range checks {
		c := &checks[i]
		if c.Kind != Quota {
			continue
		}
		l := x.lease(c)
		l.lastUsed.Store(us)
		if d.Allowed {
			l.demand.Add(c.Cost)
		}
		if i < len(d.Remaining) {
			l.left.Store(d.Remaining[i])
			if !d.Reset[i].IsZero() {
				l.leftEnd.Store(d.Reset[i].UnixMicro())
			}
		}
	}
	if d.Allowed || d.Denied < 0 || checks[d.Denied].Kind != Quota {
		return d, nil
	}
	if !x.giveBack(ctx, x.lease(&checks[d.Denied])) {
		return d, nil
	}
	d2, err := x.shared.Admit(ctx, checks)
	if err != nil {
		return d2, err
	}
	for i := range checks {
		if checks[i].Kind == Quota && i < len(d2.Remaining) {
			x.lease(&checks[i]).left.Store(d2.Remaining[i])
		}
	}
	return d2, nil
}

// lease returns the lease record of c's counter, creating it.
func (x *Resilient) lease(c *Check) *lease {
	k := leaseKey{c.Key, c.Calendar, c.Location}
	if l, ok := x.leases.Load(k); ok {
		return l.(*lease)
	}
	l := &lease{check: *c}
	l.check.Cost = 0
	l.left.Store(math.MaxInt64)
	got, loaded := x.leases.LoadOrStore(k, l)
	if !loaded && x.opts.Lease > 0 {
		select { // lease it at once, not at the next heartbeat
		case x.wake <- struct{}{}:
		default:
		}
	}
	return got.(*lease)
}

// giveBack settles l's slice in Redis with what was spent from it, if it
// holds one no request is still using, and reports whether it did.
func (x *Resilient) giveBack(ctx context.Context, l *lease) bool {
	x.mu.Lock()
	if !l.held() || l.busy || l.pending > 0 {
		x.mu.Unlock()
		return false
	}
	res, spent := l.res, l.spent
	l.res, l.spent, l.size, l.busy = Reservation{}, 0, 0, true
	x.mu.Unlock()
	err := x.shared.Settle(ctx, res, []int64{spent})
	x.mu.Lock()
	l.busy = false
	if err != nil {
		// Still reserved in Redis: keep spending from it.
		l.res, l.spent, l.size = res, spent, res.h.checks[0].Cost
	}
	x.mu.Unlock()
	if err != nil && errors.Is(err, ErrUnavailable) {
		x.down.Store(true)
	}
	return err == nil
}

// admitLocal decides a request while Redis does not answer: quotas from
// this node's leases, rate and concurrency limits from its shares.
func (x *Resilient) admitLocal(ctx context.Context, checks []Check) (Decision, error) {
	if err := validate(checks); err != nil {
		return Decision{Denied: -1}, err
	}
	n := len(checks)
	if n == 0 {
		return Decision{Allowed: true, Denied: -1}, nil
	}
	now := x.opts.Now()
	nodes := x.Nodes()
	h := &hold{checks: append([]Check(nil), checks...)}
	oh := &outageHold{leases: make([]*lease, n)}
	var shares []Check
	for i := range h.checks {
		c := h.checks[i]
		if c.Kind == Quota {
			continue
		}
		c.Limit = (c.Limit + nodes - 1) / nodes
		if c.Kind == Rate {
			c.Cost = min(c.Cost, c.Limit) // a share never refuses what the whole limit would admit
		}
		shares = append(shares, c)
		oh.idx = append(oh.idx, i)
	}

	x.mu.Lock()
	defer x.mu.Unlock()
	var want [smallRequest]int64
	need := want[:0]
	for i := range h.checks {
		c := &h.checks[i]
		if c.Kind != Quota {
			need = append(need, 0)
			continue
		}
		var l *lease
		if v, ok := x.leases.Load(leaseKey{c.Key, c.Calendar, c.Location}); ok {
			l = v.(*lease)
		}
		p, _ := periodAt(c, now)
		if l == nil || !l.held() || l.busy || l.period.label != p.label {
			if l != nil && l.left.Load() < c.Cost && l.leftEnd.Load() == p.end {
				// Redis last said this period's quota cannot cover the
				// request: refuse it as Redis would, not as unavailable.
				return spentDecision(h.checks, i, l.left.Load(), p, now), nil
			}
			return Decision{Denied: -1}, &unavailableError{errors.New("this node holds no lease of a quota or budget the request needs")}
		}
		if l.lastUsed.Load() < now.UnixMicro() {
			l.lastUsed.Store(now.UnixMicro())
		}
		oh.leases[i] = l
		// Checks of one request sharing a counter draw on one lease.
		var drawn int64
		for j := range i {
			if oh.leases[j] == l {
				drawn += h.checks[j].Cost
			}
		}
		if l.size-l.spent-drawn < c.Cost {
			return Decision{Denied: -1}, &unavailableError{errors.New("this node's lease of a quota or budget the request needs is spent")}
		}
		need = append(need, c.Cost)
	}
	ld, err := x.local.Admit(ctx, shares)
	if err != nil {
		return Decision{Denied: -1}, err
	}
	d := Decision{Allowed: ld.Allowed, Denied: -1, Remaining: make([]int64, n), Reset: make([]time.Time, n)}
	for j, i := range oh.idx {
		d.Remaining[i], d.Reset[i] = ld.Remaining[j], ld.Reset[j]
	}
	if !ld.Allowed {
		d.Denied, d.RetryAfter = oh.idx[ld.Denied], ld.RetryAfter
		return d, nil
	}
	for i, l := range oh.leases {
		if l == nil {
			continue
		}
		l.spent += need[i]
		l.pending++
		d.Remaining[i] = l.size - l.spent
		if l.period.end != 0 {
			d.Reset[i] = time.UnixMicro(l.period.end)
		}
	}
	oh.local = ld.Reservation
	d.Reservation = Reservation{issuer: oh, h: h, expires: ld.Reservation.expires}
	return d, nil
}

// spentDecision refuses a request by its check i, a quota Redis last saw
// with left units in period p: what Redis would answer.
func spentDecision(checks []Check, i int, left int64, p period, now time.Time) Decision {
	d := Decision{Denied: i, RetryAfter: -1, Remaining: make([]int64, len(checks)), Reset: make([]time.Time, len(checks))}
	d.Remaining[i] = max(left, 0)
	if p.end != 0 {
		d.Reset[i] = time.UnixMicro(p.end)
		if checks[i].Cost <= checks[i].Limit {
			d.RetryAfter = time.UnixMicro(p.end).Sub(now)
		}
	}
	return d
}

// Settle implements Limiter. A reservation Redis admitted whose settlement
// cannot reach Redis is kept and settled when Redis answers again.
func (x *Resilient) Settle(ctx context.Context, r Reservation, actual []int64) error {
	oh, ok := r.issuer.(*outageHold)
	if !ok {
		err := x.shared.Settle(ctx, r, actual)
		if err != nil && errors.Is(err, ErrUnavailable) && r.h != nil {
			x.down.Store(true)
			x.mu.Lock()
			if len(x.retry) >= x.opts.MaxRetries {
				x.retry = x.retry[1:]
			}
			x.retry = append(x.retry, pendingSettle{r, append([]int64(nil), actual...)})
			x.mu.Unlock()
			return nil
		}
		return err
	}
	if err := checkSettle(&r, actual); err != nil {
		return err
	}
	if !r.h.settled.CompareAndSwap(false, true) {
		return nil
	}
	la := make([]int64, len(oh.idx))
	for j, i := range oh.idx {
		la[j] = actual[i]
	}
	err := x.local.Settle(ctx, oh.local, la)
	x.mu.Lock()
	for i, l := range oh.leases {
		if l != nil {
			l.spent += actual[i] - r.h.checks[i].Cost
			l.pending--
		}
	}
	x.mu.Unlock()
	return err
}

// Run keeps the node's heartbeat and leases until ctx ends: Sync every
// Heartbeat.
func (x *Resilient) Run(ctx context.Context) {
	t := time.NewTicker(x.opts.Heartbeat)
	defer t.Stop()
	for {
		_ = x.Sync(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-x.wake:
		}
	}
}

// Sync reaches Redis once: it counts the nodes alive, ends an outage,
// applies the settlements that waited for Redis, gives back the leases
// that are idle, outdated, spent from or too large for what is left, and
// takes a lease on every quota in use that has none. It returns an error,
// and the node keeps deciding alone, while Redis does not answer.
func (x *Resilient) Sync(ctx context.Context) error {
	n, err := x.heartbeat(ctx)
	if err != nil {
		x.down.Store(true)
		return err
	}
	x.nodes.Store(n)
	x.down.Store(false)

	x.mu.Lock()
	retry := x.retry
	x.retry = nil
	x.mu.Unlock()
	for i, p := range retry {
		if err := x.shared.Settle(ctx, p.r, p.actual); err != nil {
			if errors.Is(err, ErrUnavailable) {
				x.mu.Lock()
				x.retry = append(retry[i:], x.retry...)
				x.mu.Unlock()
				x.down.Store(true)
				return err
			}
		}
	}
	now := x.opts.Now()
	us := now.UnixMicro()
	if x.opts.Lease > 0 {
		if err := x.shareActive(ctx, now); err != nil {
			x.down.Store(true)
			return err
		}
	}
	var all []*lease
	x.mu.Lock()
	x.leases.Range(func(k, v any) bool {
		l := v.(*lease)
		idle := us-l.lastUsed.Load() > x.opts.Idle.Microseconds()
		if idle && !l.held() && !l.busy && l.pending == 0 {
			x.leases.Delete(k)
		} else {
			all = append(all, l)
		}
		return true
	})
	x.mu.Unlock()
	if x.opts.Lease <= 0 {
		return nil // the records only remember what Redis last said
	}
	for _, l := range all {
		if err := x.keep(ctx, l, now, n); err != nil {
			return err
		}
	}
	return nil
}

// shareActive tells the other nodes which quotas this node's requests
// used lately, and learns which ones theirs did: each becomes a lease
// record here, last used when it was last used anywhere, so Sync leases
// it even if no request of this node has needed it yet.
//
// The quotas in use live in one Redis sorted set, scored by when they were
// last used (ms), trimmed to Idle. A node sends a quota again only when
// its own use has moved on by a tenth of Idle, and reads only what changed
// since its last read, so the traffic follows the number of active quotas
// and not the request rate.
func (x *Resilient) shareActive(ctx context.Context, now time.Time) error {
	idleMs := x.opts.Idle.Milliseconds()
	every := x.opts.Idle.Microseconds() / 10
	args := []any{now.UnixMilli(), idleMs, x.since}
	type sent struct {
		l  *lease
		us int64
	}
	var out []sent
	x.leases.Range(func(_, v any) bool {
		l := v.(*lease)
		if used := l.lastUsed.Load(); used > l.published.Load()+every {
			args = append(args, used/1000, encodeQuota(&l.check))
			out = append(out, sent{l, used})
		}
		return true
	})
	res, err := x.shared.client.EvalStrings(ctx, activeLua, []string{x.shared.prefix + "active"}, args...)
	if err != nil {
		return failed(err)
	}
	for _, o := range out {
		o.l.published.Store(o.us)
	}
	// Read again a few heartbeats back next time: another node's use is
	// stamped with its clock, and arrives a Sync late.
	x.since = now.UnixMilli() - 4*x.opts.Heartbeat.Milliseconds()
	for i := 0; i+1 < len(res); i += 2 {
		c, ok := x.decodeQuota(res[i])
		if !ok {
			continue
		}
		ms, err := strconv.ParseFloat(res[i+1], 64)
		if err != nil {
			continue
		}
		l := x.lease(&c)
		us := int64(ms) * 1000
		for {
			cur := l.lastUsed.Load()
			if cur >= us || l.lastUsed.CompareAndSwap(cur, us) {
				break
			}
		}
		for {
			cur := l.published.Load()
			if cur >= us || l.published.CompareAndSwap(cur, us) {
				break
			}
		}
	}
	return nil
}

// encodeQuota names a quota counter for the other nodes: everything a
// Check needs to lease it.
func encodeQuota(c *Check) string {
	loc := ""
	if c.Location != nil {
		loc = c.Location.String()
	}
	return strconv.FormatInt(c.Limit, 10) + "\x1f" + strconv.Itoa(int(c.Calendar)) + "\x1f" + loc + "\x1f" + c.Key
}

// decodeQuota reads a quota encodeQuota named; false for one it cannot
// read (a location this machine does not know, or another version's
// format), which is then left to the nodes that use it.
func (x *Resilient) decodeQuota(s string) (Check, bool) {
	parts := strings.SplitN(s, "\x1f", 4)
	if len(parts) != 4 {
		return Check{}, false
	}
	lim, err1 := strconv.ParseInt(parts[0], 10, 64)
	cal, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil || lim < 1 || cal < int(Day) || cal > int(Total) || parts[3] == "" {
		return Check{}, false
	}
	c := Check{Key: parts[3], Kind: Quota, Limit: lim, Calendar: Calendar(cal)}
	if name := parts[2]; name != "" {
		loc, ok := x.locs[name]
		if !ok {
			l, err := time.LoadLocation(name)
			if err != nil {
				return Check{}, false
			}
			if x.locs == nil {
				x.locs = map[string]*time.Location{}
			}
			x.locs[name], loc = l, l
		}
		c.Location = loc
	}
	return c, true
}

// activeLua records the quotas in use this node sends (ARGV[4..]: pairs of
// last use in ms and the quota's name; a later use is kept), forgets those
// unused for ARGV[2] ms before ARGV[1], and returns the quotas whose last
// use is ARGV[3] or later, as pairs of name and last use.
const activeLua = `
local now = tonumber(ARGV[1])
local idle = tonumber(ARGV[2])
for i = 4, #ARGV, 2 do
  local at = tonumber(ARGV[i])
  local cur = redis.call('ZSCORE', KEYS[1], ARGV[i + 1])
  if not cur or tonumber(cur) < at then
    redis.call('ZADD', KEYS[1], at, ARGV[i + 1])
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - idle)
redis.call('PEXPIRE', KEYS[1], idle * 2)
return redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[3], '+inf', 'WITHSCORES')
`

// leaseSize is the slice of c a node leases with n nodes, left units of it
// known to remain and this node spending rate units a second of it: Lease
// of the limit or LeaseFor of its demand, whichever is more, and no more
// than half an even share of what is left, so that leases never take the
// last of a quota from the nodes that need it.
func (x *Resilient) leaseSize(c *Check, n, left int64, rate float64) int64 {
	size := int64(math.Ceil(max(float64(c.Limit)*x.opts.Lease, rate*x.opts.LeaseFor.Seconds())))
	size = min(size, c.Limit)
	if left < math.MaxInt64 {
		size = min(size, left/(2*max(n, 1)))
	}
	return max(size, 0)
}

// keep gives back l's slice when it should no longer be held, and takes a
// new one when the quota is in use and none is held.
func (x *Resilient) keep(ctx context.Context, l *lease, now time.Time, n int64) error {
	us := now.UnixMicro()
	idle := us-l.lastUsed.Load() > x.opts.Idle.Microseconds()
	p, _ := periodAt(&l.check, now)
	x.mu.Lock()
	// The node's recent rate of spending the quota, smoothed over about
	// ten Syncs.
	if spent := l.demand.Swap(0); l.rateAt.IsZero() {
		l.rateAt = now
	} else if dt := now.Sub(l.rateAt).Seconds(); dt > 0 {
		l.rate += (float64(spent)/dt - l.rate) * min(dt/10, 1)
		l.rateAt = now
	}
	rate := l.rate
	held, pending, busy := l.held(), l.pending, l.busy
	target := x.leaseSize(&l.check, n, l.left.Load()+l.size, rate)
	stale := held && (l.spent != 0 || idle || now.Sub(l.taken) > x.opts.Renew || l.period.label != p.label ||
		l.size > 2*target || 2*l.size < target)
	x.mu.Unlock()
	if busy || pending > 0 {
		return nil
	}
	if stale {
		if !x.giveBack(ctx, l) {
			if x.down.Load() {
				return errors.New("limit: Redis stopped answering while a lease was given back")
			}
			return nil
		}
		held = false
	}
	if held || idle {
		return nil
	}
	size := x.leaseSize(&l.check, n, l.left.Load(), rate)
	if size < 1 {
		return nil
	}
	x.mu.Lock()
	if l.held() || l.busy {
		x.mu.Unlock()
		return nil
	}
	l.busy = true
	x.mu.Unlock()
	c := l.check
	c.Cost = size
	d, err := x.shared.Admit(ctx, []Check{c})
	x.mu.Lock()
	defer x.mu.Unlock()
	l.busy = false
	if err != nil {
		if errors.Is(err, ErrUnavailable) {
			x.down.Store(true)
		}
		return err
	}
	if len(d.Remaining) == 1 {
		l.left.Store(d.Remaining[0])
	}
	if !d.Allowed {
		return nil
	}
	l.res, l.size, l.spent, l.taken = d.Reservation, size, 0, now
	l.period = d.Reservation.h.periods[0]
	return nil
}

// Release gives back every lease no request still uses, so a node that
// stops strands no capacity. Call it after the node's last request.
func (x *Resilient) Release(ctx context.Context) {
	x.leases.Range(func(_, v any) bool {
		x.giveBack(ctx, v.(*lease))
		return ctx.Err() == nil
	})
}

// Held returns how many quotas this node holds a lease of.
func (x *Resilient) Held() int {
	n := 0
	x.mu.Lock()
	defer x.mu.Unlock()
	x.leases.Range(func(_, v any) bool {
		if v.(*lease).held() {
			n++
		}
		return true
	})
	return n
}

// Leased returns the units this node holds in leases of the quota c names
// (Key, Calendar and Location) and has not spent.
func (x *Resilient) Leased(c Check) int64 {
	v, ok := x.leases.Load(leaseKey{c.Key, c.Calendar, c.Location})
	if !ok {
		return 0
	}
	l := v.(*lease)
	x.mu.Lock()
	defer x.mu.Unlock()
	if !l.held() {
		return 0
	}
	return l.size - l.spent
}

// heartbeat records this node as alive in Redis and returns how many nodes
// sent a heartbeat within NodeTTL.
func (x *Resilient) heartbeat(ctx context.Context) (int64, error) {
	nowArg, _ := x.shared.nowArg()
	if us, ok := nowArg.(int64); ok {
		nowArg = us / 1000
	}
	res, err := x.shared.client.EvalInts(ctx, heartbeatLua, []string{x.shared.prefix + "nodes"},
		nowArg, x.opts.NodeTTL.Milliseconds(), x.shared.node)
	if err != nil {
		return 0, failed(err)
	}
	if len(res) != 1 {
		return 0, errors.New("limit: Redis heartbeat script returned no count")
	}
	return max(res[0], 1), nil
}

// heartbeatLua records ARGV[3] as alive at ARGV[1] (ms; "" for Redis TIME),
// forgets nodes silent for ARGV[2] ms and returns how many remain.
const heartbeatLua = `
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
redis.call('PEXPIRE', KEYS[1], ttl * 2)
return {redis.call('ZCARD', KEYS[1])}
`
