package detect

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// The rate-spike rule judges two windows of a key's requests together: the
// long one (Rate.Window, 10 s) sees enough requests to be steady, the short
// one (Rate.ShortWindow, 2 s) sees a jump within a second of its start. Each
// is compared with a reference rate:
//
//   - a key with enough recent activity (Rate.History of seconds in which it
//     made requests, decayed like the baseline) is judged by its own baseline;
//   - a key with less, whose baseline is mostly the silence of not being
//     used, is judged by a prior: the largest of Rate.Floor, the fleet's
//     typical per-key rate (the median baseline of the keys with history)
//     and Rate.LimitShare of its configured request-rate limit. So an idle
//     key that starts working is never judged against a baseline of zero.
//
// The short window sees few requests, so it also has to beat the key's usual
// bursts: twice the largest short-window count the key showed lately
// (decayed like the baseline). A key that fires 30 requests at the top of
// every minute is not a spike when it does so again.

// burstMargin is how far a short window's count must exceed the key's usual burst.
const burstMargin = 2

// rateJudgement is a tripped rate-spike condition: the rate that tripped it,
// over which window, and the reference it was judged against.
type rateJudgement struct {
	rate   float64
	window int64 // seconds
	ref    float64
	own    bool // ref is the key's own baseline
	fleet  float64
}

// back returns the slot k places before the next one to be overwritten:
// back(1) is the newest, back(len(r.v)) the oldest.
func (r *ring) back(k int) int64 {
	i := r.pos - k
	if i < 0 {
		i += len(r.v)
	}
	return r.v[i]
}

// fleetRate is the fleet's typical per-key rate, as of the last baseline bucket.
func (e *Engine) fleetRate() float64 { return math.Float64frombits(e.fleet.Load()) }

// rateRef returns the rate st's traffic is judged against: its own baseline
// once that rests on enough activity, else the prior.
func (st *keyState) rateRef(e *Engine) (ref float64, own bool, fleet float64) {
	fleet = e.fleetRate()
	if st.rateHist >= e.rateHistNeed {
		return st.rateBase, true, fleet
	}
	c := e.cfg.Rate
	return max(c.Floor, fleet, c.LimitShare*st.rateLimit, st.rateBase), false, fleet
}

// overFloor reports whether the long window's rate or the short window's
// count is over its floor; under both, no reference can trip the rule, so
// most keys in most seconds are not judged further.
func (e *Engine) overFloor(long float64, shortCount int64) bool {
	return long > e.cfg.Rate.Floor || float64(shortCount) > e.shortFloor
}

// rateJudge judges the long window's rate and the short window's count.
func (st *keyState) rateJudge(e *Engine, long float64, shortCount int64) (rateJudgement, bool) {
	c := e.cfg.Rate
	ref, own, fleet := st.rateRef(e)
	j := rateJudgement{ref: ref, own: own, fleet: fleet}
	if long > c.Floor && long > c.Factor*ref {
		j.rate, j.window = long, e.rateWin
		return j, true
	}
	if e.shortN == 0 {
		return j, false
	}
	short := float64(shortCount) / float64(e.shortWin)
	if short > c.Factor*max(ref, c.Floor) && float64(shortCount) > burstMargin*st.ratePeak {
		j.rate, j.window = short, e.shortWin
		return j, true
	}
	return j, false
}

func (st *keyState) tickRate(e *Engine, id string, from, to int64, out []pendingAlert) []pendingAlert {
	n, b := boundaries(from, to, e.rateSlot)
	n = min(n, e.maxSteps)
	for i := int64(0); i < n; i, b = i+1, b+e.rateSlot {
		x := st.rateCur
		st.rateCur = 0
		old := st.rate.push(x)
		if e.shortN > 0 {
			st.rateShort += x - st.rate.back(int(e.shortN)+1)
		}
		if st.rateLatch.on {
			// The baseline, the activity and the usual burst stand still while an
			// alert is on, so a sustained spike does not become the new normal.
			continue
		}
		st.rateBucketPeak = max(st.rateBucketPeak, st.rateShort)
		if st.rate.evictedReal() {
			// The baseline follows the traffic that left the long window.
			st.rateAcc += old
			st.rateAccN++
		}
		if b%e.rateBucket == 0 && st.rateAccN > 0 {
			r := float64(st.rateAcc) / float64(st.rateAccN*e.rateSlot)
			if st.rateNB < e.rateFormBuckets {
				st.rateBase = (st.rateBase*float64(st.rateNB) + r) / float64(st.rateNB+1)
			} else {
				st.rateBase += e.rateAlpha * (r - st.rateBase)
			}
			st.rateHist *= 1 - e.rateAlpha
			if st.rateAcc > 0 {
				st.rateHist += float64(st.rateAccN * e.rateSlot)
			}
			st.ratePeak = max(st.ratePeak*(1-e.rateAlpha), float64(st.rateBucketPeak))
			st.rateBucketPeak = 0
			st.rateNB++
			st.rateAcc, st.rateAccN = 0, 0
		}
	}
	c := e.cfg.Rate
	long := float64(st.rate.sum) / float64(e.rateWin)
	var j rateJudgement
	cond := false
	if st.rateNB >= e.rateFormBuckets && e.overFloor(long, st.rateShort) {
		j, cond = st.rateJudge(e, long, st.rateShort)
	}
	switch st.rateLatch.step(cond, to, int64(c.RecoverAfter/time.Second)) {
	case raise:
		st.rateBucketPeak = 0
		out = append(out, st.rateRaise(e, id, j))
	case recovery:
		ref, _, _ := st.rateRef(e)
		out = append(out, pendingAlert{subject: RuleRateSpike + "\x00" + id, a: Alert{
			Rule: RuleRateSpike, KeyID: id, Severity: SeverityInfo, Recovered: true,
			Summary: fmt.Sprintf("rate %.1f req/s is back under %gx the baseline %.1f req/s", long, c.Factor, ref),
			Numbers: map[string]float64{"rate": long, "baseline": ref, "factor": c.Factor},
		}})
	}
	return out
}

// rateRaise is the alert for a key's rate spiking as j says.
func (st *keyState) rateRaise(e *Engine, id string, j rateJudgement) pendingAlert {
	c := e.cfg.Rate
	nums := map[string]float64{"rate": j.rate, "baseline": j.ref, "own_baseline": st.rateBase,
		"history_seconds": math.Round(st.rateHist), "fleet_rate": j.fleet,
		"factor": c.Factor, "floor": c.Floor, "window_seconds": float64(j.window)}
	basis := fmt.Sprintf("the baseline %.1f req/s", j.ref)
	if !j.own {
		why := "the floor"
		switch j.ref {
		case j.fleet:
			why = "the fleet's typical per-key rate"
		case c.LimitShare * st.rateLimit:
			why = fmt.Sprintf("%g of its limit of %g req/s", c.LimitShare, st.rateLimit)
		case st.rateBase:
			why = "its own baseline"
		}
		basis = fmt.Sprintf("the %.1f req/s expected of a key with little recent history (%s; %.0fs of activity, %.0fs needed)",
			j.ref, why, st.rateHist, e.rateHistNeed)
	}
	if st.rateLimit > 0 {
		nums["limit_rps"] = st.rateLimit
	}
	return pendingAlert{subject: RuleRateSpike + "\x00" + id, a: Alert{
		Rule: RuleRateSpike, KeyID: id, Severity: SeverityMedium,
		Summary: fmt.Sprintf("rate %.1f req/s is %s %s, over the last %ds (threshold %gx, floor %g req/s)",
			j.rate, ratioText(j.rate, j.ref, nums), basis, j.window, c.Factor, c.Floor),
		Numbers: nums,
		Events:  st.ev.list(),
	}}
}

// fleetAdd notes a key's baseline for the fleet's typical rate, if it has
// the history to count. e.tickMu is held.
func (e *Engine) fleetAdd(st *keyState) {
	if st.rateNB >= e.rateFormBuckets && st.rateHist >= e.rateHistNeed {
		e.fleetBuf = append(e.fleetBuf, st.rateBase)
	}
}

// fleetUpdate sets the fleet's typical per-key rate to the median of the
// baselines noted since the last update. e.tickMu is held.
func (e *Engine) fleetUpdate() {
	var m float64
	if n := len(e.fleetBuf); n > 0 {
		slices.Sort(e.fleetBuf)
		m = e.fleetBuf[n/2]
		if n%2 == 0 {
			m = (m + e.fleetBuf[n/2-1]) / 2
		}
	}
	e.fleet.Store(math.Float64bits(m))
	e.fleetBuf = e.fleetBuf[:0]
}
