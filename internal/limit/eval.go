package limit

import "time"

// This file holds the arithmetic both limiters share. Memory runs it under
// its shard locks; Redis runs a line-for-line Lua copy (redis_lua.go) inside
// its script for the verdict, then runs this Go version on the states the
// script read to fill in the Decision, so both report the same figures.
//
// Times are microseconds since the Unix epoch: Redis TIME's resolution, and
// small enough that a Rate's Limit × Period stays exact in Lua's doubles.

// maxDebt is how far beyond now a Rate bucket's debt may reach (100 years),
// so that an absurd actual cost cannot overflow the arithmetic.
const maxDebt = 100 * 365 * 24 * 3600 * 1_000_000

// quotaMargin is how long a quota counter outlives its period, so that a
// request admitted just before the period ended still settles into it.
const quotaMargin = time.Hour

// state is a counter's value.
//
// For Rate it is the GCRA theoretical arrival time (TAT): the instant the
// bucket is full again, v + frac/Limit microseconds. Keeping the fraction of
// a microsecond as a remainder makes a Limit that does not divide the Period
// exact: 7 per minute is 8571428.571…µs per unit, and seven units are one
// minute, not a microsecond less. A bucket whose TAT is not after now is
// full. For Concurrency v is the number of slots held; for Quota, the units
// used in the period.
type state struct {
	v, frac int64
}

// period is the calendar period a Quota check's cost goes to.
type period struct {
	label int64 // Day: yyyymmdd, Month: yyyymm, Total: 0
	end   int64 // µs when it ends; 0 for Total
}

// location returns where c's calendar days and months start.
func (c *Check) location() *time.Location {
	if c.Location == nil {
		return time.UTC
	}
	return c.Location
}

// periodAt returns the calendar period of c containing t, and when that
// period starts, in µs.
func periodAt(c *Check, t time.Time) (p period, start int64) {
	loc := c.location()
	var from, to time.Time
	switch c.Calendar {
	case Day:
		y, m, d := t.In(loc).Date()
		from = time.Date(y, m, d, 0, 0, 0, 0, loc)
		to = time.Date(y, m, d+1, 0, 0, 0, 0, loc)
		p.label = int64(y)*10000 + int64(m)*100 + int64(d)
	case Month:
		y, m, _ := t.In(loc).Date()
		from = time.Date(y, m, 1, 0, 0, 0, 0, loc)
		to = time.Date(y, m+1, 1, 0, 0, 0, 0, loc)
		p.label = int64(y)*100 + int64(m)
	default:
		return period{}, 0
	}
	p.end = to.UnixMicro()
	return p, from.UnixMicro()
}

// periodEnd returns when c's period p ends, in c's Location, or the zero
// time for Total.
func periodEnd(c *Check, p *period) time.Time {
	if p.end == 0 {
		return time.Time{}
	}
	return time.UnixMicro(p.end).In(c.location())
}

// sameCounter reports whether checks a and b, with their quota periods, use
// one counter.
func sameCounter(a, b *Check, pa, pb *period) bool {
	if a.Kind != b.Kind || a.Key != b.Key {
		return false
	}
	return a.Kind != Quota || (a.Calendar == b.Calendar && pa.label == pb.label)
}

// aliases sets alias[i] to the index of the first check sharing check i's
// counter (i itself if none does).
func aliases(checks []Check, periods []period, alias []int) {
	for i := range checks {
		alias[i] = i
		for j := range i {
			if alias[j] == j && sameCounter(&checks[i], &checks[j], &periods[i], &periods[j]) {
				alias[i] = j
				break
			}
		}
	}
}

// floorDivMod returns q and r with a = q*b + r and 0 <= r < b, for b > 0.
func floorDivMod(a, b int64) (q, r int64) {
	q, r = a/b, a%b
	if r < 0 {
		q, r = q-1, r+b
	}
	return q, r
}

// rateBase is the bucket as of now: a TAT in the past means a full bucket.
// A fraction left by a check with a larger Limit is clamped (an error below
// a microsecond).
func rateBase(s state, now, limit int64) state {
	if s.frac >= limit {
		s.frac = limit - 1
	}
	if s.v < now {
		return state{now, 0}
	}
	return s
}

// rateAdd moves the TAT of base s later by units × period/limit, at most to
// now+maxDebt.
func rateAdd(s state, units, period, limit, now int64) state {
	q, rem := units/limit, units%limit
	if q > 0 && q > (now+maxDebt-s.v)/period {
		return state{now + maxDebt, 0}
	}
	s.v += q * period
	q2, f := floorDivMod(s.frac+rem*period, limit)
	s.v += q2
	s.frac = f
	if s.v > now+maxDebt {
		return state{now + maxDebt, 0}
	}
	return s
}

// rateSub moves the TAT of base s earlier by units × period/limit, but never
// before now: a refund does not fill a bucket past full.
func rateSub(s state, units, period, limit, now int64) state {
	q, rem := units/limit, units%limit
	if q > 0 && q > (s.v-now)/period {
		return state{now, 0}
	}
	s.v -= q * period
	q2, f := floorDivMod(s.frac-rem*period, limit)
	s.v += q2
	s.frac = f
	if s.v < now {
		return state{now, 0}
	}
	return s
}

// rateOver returns how many microseconds (rounded up) the TAT s lies beyond
// now+period; a request that brings the TAT there must wait that long. A
// result <= 0 means the request conforms.
func rateOver(s state, now, period int64) int64 {
	over := s.v - now - period
	if s.frac > 0 {
		over++
	}
	return over
}

// rateRemaining returns the whole units a base bucket s can admit now.
func rateRemaining(s state, now, period, limit int64) int64 {
	room := now + period - s.v
	if room <= 0 {
		return 0
	}
	return (room*limit - s.frac) / period
}

// rateFull returns when a base bucket s is full again.
func rateFull(s state) time.Time {
	us := s.v
	if s.frac > 0 {
		us++
	}
	return time.UnixMicro(us).UTC()
}

// evaluate runs checks in order, as one request, against base, the
// committed state of each check's counter (read before the request; checks
// sharing a counter, per alias, see the same base). It fills d's Allowed,
// Denied, RetryAfter, Remaining and Reset (both of len(checks)) and, when
// allowed, next[alias[i]] with each counter's new state. now is in µs.
func evaluate(checks []Check, periods []period, alias []int, base, next []state, now int64, d *Decision) {
	for i := range checks {
		if alias[i] == i {
			next[i] = base[i]
		}
	}
	d.Allowed, d.Denied, d.RetryAfter = true, -1, 0
	for i := range checks {
		c := &checks[i]
		s := &next[alias[i]]
		retry, ok := time.Duration(0), true
		switch c.Kind {
		case Rate:
			p := c.Period.Microseconds()
			if c.Cost > c.Limit {
				retry, ok = -1, false
				break
			}
			n := rateAdd(rateBase(*s, now, c.Limit), c.Cost, p, c.Limit, now)
			if over := rateOver(n, now, p); over > 0 {
				retry, ok = time.Duration(over)*time.Microsecond, false
				break
			}
			*s = n
		case Concurrency:
			if s.v >= c.Limit {
				ok = false
				break
			}
			s.v++
		case Quota:
			if c.Cost > c.Limit || s.v+c.Cost > c.Limit {
				ok = false
				retry = -1
				if c.Calendar != Total && c.Cost <= c.Limit {
					retry = time.Duration(periods[i].end-now) * time.Microsecond
				}
				break
			}
			s.v += c.Cost
		}
		if !ok {
			d.Allowed, d.Denied, d.RetryAfter = false, i, retry
			break
		}
	}
	states := next
	if !d.Allowed {
		states = base
	}
	for i := range checks {
		c := &checks[i]
		s := states[alias[i]]
		switch c.Kind {
		case Rate:
			p := c.Period.Microseconds()
			b := rateBase(s, now, c.Limit)
			d.Remaining[i] = rateRemaining(b, now, p, c.Limit)
			d.Reset[i] = rateFull(b)
		case Concurrency:
			d.Remaining[i] = max(0, c.Limit-s.v)
			d.Reset[i] = time.Time{}
		case Quota:
			d.Remaining[i] = max(0, c.Limit-s.v)
			d.Reset[i] = periodEnd(c, &periods[i])
		}
	}
}
