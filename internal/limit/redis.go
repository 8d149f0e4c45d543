package limit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// skewMargin is how far this node's clock may run ahead of Redis's when a
// quota period changes: Admit offers the script the period containing
// (node clock - skewMargin) and the one after it, and the script picks by
// Redis time.
const skewMargin = 5 * time.Minute

// holdTTL is how long Redis remembers an unsettled reservation. A Settle
// arriving later is ignored, leaving the reserved costs charged as reserved.
const holdTTL = 24 * time.Hour

// Redis is a Limiter that keeps its counters in Redis, so that every keygate
// node using the same Redis and key prefix counts against the same limits.
//
// Admit and Settle are one round trip each: a single EVALSHA of a Lua script
// that checks every limit and then applies them all, atomically (go-redis
// falls back to EVAL once if Redis has not cached the script). Time is Redis
// TIME, read inside the script, so nodes' clocks do not matter, except that
// a node names the candidate quota periods from its own clock: it may run up
// to five minutes ahead of Redis (or behind it by almost a whole period)
// without misfiling a request around midnight, and beyond that Admit
// returns an error asking for the clocks to be synchronised. Every key
// expires once it is idle (a bucket when full again, a quota counter an
// hour after its period, a concurrency set one lease after its last
// admission), except Total quota counters, which are lifetime budgets.
//
// Settle must come within 24 hours of Admit: Redis forgets a reservation
// after that, and a later Settle is ignored, leaving the reserved costs
// charged as reserved.
//
// Redis Cluster works only if the key prefix has a hash tag (see
// WithPrefix), because a script's keys must share a slot.
type Redis struct {
	settings
	client Scripts
	prefix string
	node   string           // random, to make reservation ids unique across nodes
	wall   func() time.Time // this node's clock, for quota periods when now is nil
	seq    atomic.Uint64
}

// Scripts runs this package's Lua scripts in Redis; internal/limit/
// redisscripts adapts a go-redis client. Declaring it here keeps the Redis
// driver out of this package and of the data plane that imports it.
type Scripts interface {
	// EvalInts runs the script src and returns its array-of-integers result.
	EvalInts(ctx context.Context, src string, keys []string, args ...any) ([]int64, error)
	// Exec runs the script src and returns only its error.
	Exec(ctx context.Context, src string, keys []string, args ...any) error
	// EvalStrings runs the script src and returns its array-of-strings
	// result.
	EvalStrings(ctx context.Context, src string, keys []string, args ...any) ([]string, error)
}

// NewRedis returns a Limiter that keeps its state in Redis through client
// (redisscripts.New of a go-redis client).
func NewRedis(client Scripts, opts ...RedisOption) *Redis {
	var b [8]byte
	rand.Read(b[:])
	r := &Redis{
		settings: settings{lease: defaultLease},
		client:   client,
		prefix:   "keygate:limit:",
		node:     hex.EncodeToString(b[:]),
		wall:     time.Now,
	}
	for _, o := range opts {
		o.applyRedis(r)
	}
	return r
}

// unavailableError is a Redis failure; it wraps ErrUnavailable and the
// cause.
type unavailableError struct{ cause error }

// Error says that Redis could not be reached and what to check, followed by
// the cause; it names no key.
func (e *unavailableError) Error() string {
	return "limit: Redis could not be reached; check that it is running and that keygate's Redis address, credentials and TLS settings are right: " + e.cause.Error()
}

// Unwrap returns ErrUnavailable and the cause.
func (e *unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.cause} }

// failed turns an error from a script into the error Admit or Settle
// returns.
func failed(err error) error {
	if strings.Contains(err.Error(), "KEYGATE_CLOCK_SKEW") {
		return errors.New("limit: this keygate node's clock and Redis's clock disagree about the current quota period (a node may run at most five minutes ahead of Redis); synchronise both with NTP")
	}
	return &unavailableError{err}
}

// nowArg returns the script's now argument: the test clock in µs, or "" to
// use Redis TIME.
func (x *Redis) nowArg() (any, time.Time) {
	if x.now != nil {
		t := x.now()
		return t.UnixMicro(), t
	}
	return "", x.wall()
}

// id returns the string naming reservation seq of node in Redis.
func id(node string, seq uint64) string {
	return node + "." + strconv.FormatUint(seq, 36)
}

// quotaKey returns the Redis key of c's counter in period p.
func (x *Redis) quotaKey(c *Check, p *period) string {
	switch c.Calendar {
	case Day:
		return x.prefix + "q:" + c.Key + ":d" + strconv.FormatInt(p.label, 10)
	case Month:
		return x.prefix + "q:" + c.Key + ":m" + strconv.FormatInt(p.label, 10)
	}
	return x.prefix + "q:" + c.Key + ":t"
}

// counterKey returns the Redis key of c's Rate or Concurrency counter.
func (x *Redis) counterKey(c *Check) string {
	if c.Kind == Rate {
		return x.prefix + "r:" + c.Key
	}
	return x.prefix + "c:" + c.Key
}

// Admit implements Limiter in one round trip to Redis.
func (x *Redis) Admit(ctx context.Context, checks []Check) (Decision, error) {
	if err := validate(checks); err != nil {
		return Decision{Denied: -1}, err
	}
	n := len(checks)
	if n == 0 {
		return Decision{Allowed: true, Denied: -1}, nil
	}
	h := &hold{checks: append([]Check(nil), checks...), periods: make([]period, n)}
	checks = h.checks
	nowArg, clock := x.nowArg()
	seq := x.seq.Add(1)
	rid := id(x.node, seq)
	keys := make([]string, 0, 2*n+1)
	args := make([]any, 0, 6+7*n)
	args = append(args, nowArg, x.lease.Microseconds(), rid, n, quotaMargin.Microseconds(), holdTTL.Milliseconds())
	cands := make([][2]period, n)
	for i := range checks {
		c := &checks[i]
		switch {
		case c.Kind != Quota:
			keys = append(keys, x.counterKey(c))
			args = append(args, int64(c.Kind), c.Limit, c.Cost, c.Period.Microseconds(), 0, 0, 0)
		case c.Calendar == Total:
			keys = append(keys, x.quotaKey(c, &period{}))
			args = append(args, int64(c.Kind), c.Limit, c.Cost, 0, 0, 0, 0)
		default:
			p0, start := periodAt(c, clock.Add(-skewMargin))
			p1, _ := periodAt(c, time.UnixMicro(p0.end))
			cands[i] = [2]period{p0, p1}
			keys = append(keys, x.quotaKey(c, &p0), x.quotaKey(c, &p1))
			args = append(args, int64(c.Kind), c.Limit, c.Cost, 0, start, p0.end, p1.end)
		}
	}
	keys = append(keys, x.prefix+"p:"+rid)

	res, err := x.client.EvalInts(ctx, admitLua, keys, args...)
	if err != nil {
		return Decision{Denied: -1}, failed(err)
	}
	if len(res) != 2+3*n {
		return Decision{Denied: -1}, fmt.Errorf("limit: Redis admission script returned %d values, want %d", len(res), 2+3*n)
	}
	now, denied := res[0], int(res[1])
	base := make([]state, n)
	for i := range checks {
		base[i] = state{res[2+3*i], res[3+3*i]}
		if checks[i].Kind == Quota && checks[i].Calendar != Total {
			h.periods[i] = cands[i][res[4+3*i]&1]
		}
	}
	alias := make([]int, n)
	aliases(checks, h.periods, alias)
	d := Decision{Remaining: make([]int64, n), Reset: make([]time.Time, n)}
	evaluate(checks, h.periods, alias, base, make([]state, n), now, &d)
	if d.Denied != denied {
		return Decision{Denied: -1}, fmt.Errorf("limit: keygate's Redis script refused check %d but its Go evaluation refused check %d", denied, d.Denied)
	}
	if d.Allowed {
		d.Reservation = Reservation{seq: seq, node: x.node, issuer: x, h: h}
		for i := range checks {
			if checks[i].Kind == Concurrency {
				d.Reservation.expires = time.UnixMicro(now + x.lease.Microseconds())
				break
			}
		}
	}
	return d, nil
}

// Settle implements Limiter in one round trip to Redis. If Redis cannot be
// reached the reservation stays unsettled and Settle may be called again;
// Redis applies a reservation's settlement at most once.
func (x *Redis) Settle(ctx context.Context, r Reservation, actual []int64) error {
	if err := checkSettle(&r, actual); err != nil {
		return err
	}
	if r.h == nil {
		return nil
	}
	if other, ok := r.issuer.(*Redis); !ok || other.prefix != x.prefix {
		return errors.New("limit: settle: the reservation was made by a limiter with other state")
	}
	if !r.h.settled.CompareAndSwap(false, true) {
		return nil
	}
	checks := r.h.checks
	n := len(checks)
	nowArg, _ := x.nowArg()
	rid := id(r.node, r.seq)
	keys := make([]string, 0, n+1)
	args := make([]any, 0, 4+5*n)
	keys = append(keys, x.prefix+"p:"+rid)
	args = append(args, nowArg, n, rid, quotaMargin.Microseconds())
	for i := range checks {
		c := &checks[i]
		if c.Kind == Quota {
			p := &r.h.periods[i]
			keys = append(keys, x.quotaKey(c, p))
			args = append(args, int64(c.Kind), c.Limit, actual[i]-c.Cost, 0, p.end)
		} else {
			keys = append(keys, x.counterKey(c))
			args = append(args, int64(c.Kind), c.Limit, actual[i]-c.Cost, c.Period.Microseconds(), 0)
		}
	}
	if err := x.client.Exec(ctx, settleLua, keys, args...); err != nil {
		r.h.settled.Store(false)
		return failed(err)
	}
	return nil
}
