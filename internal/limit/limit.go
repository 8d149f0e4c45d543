// Package limit is keygate's admission control: rate limits, concurrency
// limits, and request, token and spending quotas, checked exactly and
// atomically before a request goes upstream.
//
// A request reserves its worst-case cost against every limit that applies to
// it in one Admit call, all or nothing: a request refused by one limit
// consumes none of the others. When the upstream call has finished, Settle
// replaces each reservation with the actual cost. Because the cost is
// reserved before the call, fifty concurrent requests cannot all pass a
// budget meant for two.
//
// Two implementations share one contract, checked by the conformance suite
// in package limittest: Memory keeps counters in this process, for a single
// keygate node; Redis keeps them in Redis, so every node of a cluster counts
// against the same limits and N nodes never allow N times a limit.
//
// All counters are int64 integers (tokens, requests, micro-dollars). Redis
// evaluates limits in Lua, whose numbers are doubles, so Limit and Cost must
// stay at or below MaxValue (2^53-1), and a Rate's Limit multiplied by its
// Period in microseconds must stay below 2^53 too; Admit rejects checks that
// do not.
package limit

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// MaxValue is the largest Limit or Cost a check may carry: every integer up
// to it is exact in the doubles Redis's Lua scripts compute with.
const MaxValue = 1<<53 - 1

// Error is the type of the package's sentinel errors, which callers test
// with errors.Is.
type Error string

// Error returns the sentinel's message.
func (e Error) Error() string { return string(e) }

const (
	// ErrUnavailable marks a failure to reach the shared limiter state
	// (Redis). Nothing is known to be admitted or settled; the caller
	// decides whether to fail closed, as keygate does for quotas and
	// budgets, or to fall back to local counters, as it may for rate limits.
	ErrUnavailable Error = "limiter state unavailable"

	// ErrInvalid marks a check or settlement that keygate's configuration
	// should never have produced, such as a limit of zero. Nothing is
	// consumed.
	ErrInvalid Error = "invalid limit"
)

// Kind is what a Check limits.
type Kind uint8

const (
	// Rate is a token bucket (GCRA): Limit units per Period, in bursts of up
	// to Limit; each request takes Cost units (1 for a request rate, a token
	// estimate for a token rate).
	Rate Kind = iota + 1
	// Concurrency allows at most Limit reservations in flight; each
	// admission holds one slot until Settle, or until its lease expires
	// (15 minutes by default; see WithLease) if it is never settled.
	Concurrency
	// Quota allows at most Limit units of Cost summed over the calendar
	// period containing now: Day or Month in Location, or Total (never
	// resets). It serves request quotas, token quotas and USD budgets (in
	// micro-dollars).
	Quota
)

// String returns the kind's name for logs and error messages.
func (k Kind) String() string {
	switch k {
	case Rate:
		return "rate"
	case Concurrency:
		return "concurrency"
	case Quota:
		return "quota"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Calendar is a quota's period.
type Calendar uint8

const (
	// Day is a calendar day, from midnight to midnight in the check's
	// Location.
	Day Calendar = iota + 1
	// Month is a calendar month, from midnight on the 1st in the check's
	// Location.
	Month
	// Total never resets: a lifetime budget.
	Total
)

// String returns the calendar's name for logs and error messages.
func (c Calendar) String() string {
	switch c {
	case Day:
		return "day"
	case Month:
		return "month"
	case Total:
		return "total"
	}
	return fmt.Sprintf("Calendar(%d)", uint8(c))
}

// Check is one limit a request must pass.
type Check struct {
	// Key is the counter's identity, chosen by the caller, such as
	// "key:key_abc:rpm". Checks with equal Key and Kind share a counter
	// (quotas: in the same calendar period). Checks sharing a Rate counter
	// should agree on Limit and Period.
	Key  string
	Kind Kind
	// Limit is the capacity: units per Period (Rate), slots (Concurrency)
	// or units per calendar period (Quota). It must be in 1..MaxValue.
	Limit int64
	// Period is the time a Rate refills Limit units in, at least one
	// microsecond: time.Second, time.Minute, time.Hour...
	Period time.Duration
	// Calendar is a Quota's period.
	Calendar Calendar
	// Location is where a Quota's days and months start; nil means UTC.
	Location *time.Location
	// Cost is the units this request reserves, 0..MaxValue. Concurrency
	// ignores it: a request always holds one slot.
	Cost int64
}

// Decision is the answer to Admit.
type Decision struct {
	// Allowed reports whether every check admitted the request.
	Allowed bool
	// Denied is the index of the first check, in order, that refused the
	// request, or -1.
	Denied int
	// RetryAfter is, when denied, how long until the refusing check could
	// admit this cost: for Rate the exact wait, rounded up to a
	// microsecond; for Concurrency 0, meaning "when a request finishes";
	// for Quota the time until the period ends. It is -1, meaning never,
	// for a Total quota and for a Cost above the Limit.
	RetryAfter time.Duration
	// Remaining is, per check, the capacity left after this admission (or
	// now, if denied). For Rate it is the whole units available now.
	Remaining []int64
	// Reset is, per check: for Rate, when the bucket is full again; for
	// Quota, the end of the period (zero for Total); for Concurrency, zero.
	Reset []time.Time
	// Reservation is, when Allowed, what Settle needs.
	Reservation Reservation
}

// Reservation is an admitted request's hold on its limits. Copies refer to
// the same hold, so settling any copy settles them all.
type Reservation struct {
	seq     uint64    // unique per limiter
	node    string    // Redis: identifies the limiter among the nodes sharing the state
	issuer  any       // the limiter that admitted it
	expires time.Time // when the concurrency slots free themselves; zero without Concurrency checks
	h       *hold
}

// hold is a reservation's shared part.
type hold struct {
	settled atomic.Bool
	checks  []Check  // as admitted, Cost being what was reserved
	periods []period // per Quota check: the calendar period the cost went to
	slots   []int32  // Memory, per Concurrency check: the index of its slot
}

// Expires returns when the reservation's concurrency slots free themselves
// if it is not settled first, or the zero time if it holds none. A request
// still running then no longer counts against its concurrency limits.
func (r Reservation) Expires() time.Time { return r.expires }

// Limiter admits requests against limits. Implementations are safe for
// concurrent use.
type Limiter interface {
	// Admit reserves every check's Cost at once, or none of them: if any
	// check would exceed its limit, nothing is consumed and the decision
	// names the first refusing check. A request with no checks is allowed.
	Admit(ctx context.Context, checks []Check) (Decision, error)

	// Settle replaces each check's reserved cost with actual[i]
	// (len(actual) == len(checks); ignored for Concurrency), in the same
	// quota period the reservation was made in even if that period has
	// since ended, and releases Concurrency slots. Call it exactly once per
	// allowed admission; a second call is a no-op returning nil. An actual
	// above the reservation is charged in full (a Rate bucket goes into
	// debt, a Quota may end above its limit); below it is refunded (a Rate
	// bucket is never refunded past "full").
	Settle(ctx context.Context, r Reservation, actual []int64) error
}

// validate returns an error wrapping ErrInvalid for the first check that
// cannot be evaluated.
func validate(checks []Check) error {
	for i := range checks {
		if msg := checks[i].problem(); msg != "" {
			return fmt.Errorf("limit: check %d: %s: %w", i, msg, ErrInvalid)
		}
	}
	return nil
}

// problem describes what is wrong with c, or returns "".
func (c *Check) problem() string {
	switch {
	case c.Key == "":
		return "empty Key"
	case c.Limit <= 0:
		return "Limit must be above 0"
	case c.Limit > MaxValue:
		return "Limit is above MaxValue (2^53-1)"
	case c.Cost < 0:
		return "negative Cost"
	case c.Cost > MaxValue:
		return "Cost is above MaxValue (2^53-1)"
	}
	switch c.Kind {
	case Rate:
		p := c.Period.Microseconds()
		if p <= 0 {
			return "a rate limit needs a Period of at least a microsecond"
		}
		if c.Limit > MaxValue/(p+1) {
			return "a rate limit's Limit × Period (in microseconds) must stay below 2^53; use a longer unit or a shorter Period"
		}
	case Concurrency:
	case Quota:
		if c.Calendar < Day || c.Calendar > Total {
			return "a quota needs a Calendar: Day, Month or Total"
		}
	default:
		return fmt.Sprintf("unknown Kind %d", uint8(c.Kind))
	}
	return ""
}

// checkSettle validates Settle's arguments against the reservation.
func checkSettle(r *Reservation, actual []int64) error {
	n := 0
	if r.h != nil {
		n = len(r.h.checks)
	}
	if len(actual) != n {
		return fmt.Errorf("limit: settle got %d actual costs for %d checks: %w", len(actual), n, ErrInvalid)
	}
	for i, a := range actual {
		if a < 0 || a > MaxValue {
			return fmt.Errorf("limit: settle: actual cost %d of check %d is outside 0..MaxValue: %w", a, i, ErrInvalid)
		}
	}
	return nil
}
