package detect

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// shiftSlots is how many slots the resource-shift window is cut into; it is judged as each closes.
const shiftSlots = 6

// resource is one (provider, model, path) a key used, with its recent and usual counts.
type resource struct {
	provider, model, path string
	cur                   int64
	slot                  [shiftSlots]int64
	sum                   int64
	base                  float64 // decayed count of requests before the window
}

// keyState is everything the detectors keep about one keygate key.
type keyState struct {
	firstSec, lastActive int64
	active               bool // saw a request since the last tick
	ev                   seqs

	// rate spike
	rateCur   int64
	rate      ring
	rateAcc   int64 // requests evicted into the open baseline bucket
	rateAccN  int64 // slots in the open baseline bucket
	rateBase  float64
	rateNB    int64 // closed baseline buckets
	rateLatch latch
	// rateHist is the key's recent activity: the seconds of baseline buckets
	// in which it made a request, decayed like the baseline. Below
	// Rate.History the baseline is not the key's own to judge by.
	rateHist float64
	// ratePeak is the key's usual burst: the largest short-window count,
	// decayed like the baseline; rateBucketPeak is the open bucket's.
	ratePeak       float64
	rateBucketPeak int64
	rateShort      int64   // the sum of the short window's slots
	rateLimit      float64 // the key's configured request-rate limit, req/s; 0 if none

	// runaway agent: repeats and context growth (loop.go); nil until seen
	loop *loopState
	// tools the key called (tools.go), for the new-tool rule; nil until one
	tools *toolState
	// the last open-world tool the key read from, and when (Unix seconds),
	// for the destructive-after-untrusted rule (tools.go)
	untrustedTool string
	untrustedAt   int64

	// resource shift
	res        []resource
	shiftPos   int
	shiftFill  int64
	shiftFold  int64 // slots folded into the baseline
	shiftLatch latch

	// spend velocity, allocated once the key shows a budget
	spend *spendState
}

type spendState struct {
	cur        int64
	win        ring
	base       float64 // usual spend in micro-USD per second
	nb         int64
	budget     int64
	spentSeen  int64 // spend observed by the engine
	spentTold  int64 // latest SpentMicroUSD reported, 0 if never
	spendLatch latch
}

func (e *Engine) newKeyState() *keyState {
	return &keyState{
		ev:   seqs{v: make([]uint64, e.cfg.EventsPerAlert)},
		rate: newRing(int(e.rateWin / e.rateSlot)),
	}
}

// observe records one request; it runs under the key's shard lock. Like
// failed authentication, a rate spike is judged at once when the windows
// the next tick will judge are already known (one-second slots), and the
// alert to deliver is returned.
func (st *keyState) observe(e *Engine, id string, o *Observation) (pendingAlert, bool) {
	st.active = true
	st.rateCur++
	st.rateLimit = o.LimitRPS
	var early pendingAlert
	tripped := false
	if e.rateSlot == 1 && !st.rateLatch.on && st.rateNB >= e.rateFormBuckets {
		long := float64(st.rate.sum-st.rate.v[st.rate.pos]+st.rateCur) / float64(e.rateWin)
		var n int64
		if e.shortN > 0 {
			n = st.rateShort - st.rate.back(int(e.shortN)) + st.rateCur
		}
		if e.overFloor(long, n) {
			if j, ok := st.rateJudge(e, long, n); ok {
				st.rateLatch.on, st.rateLatch.clearAt = true, 0
				st.rateBucketPeak = 0 // the spike's start is no part of the key's usual bursts
				st.ev.add(o.EventSeq)
				early, tripped = st.rateRaise(e, id, j), true
			}
		}
	}
	if !tripped {
		st.ev.add(o.EventSeq)
	}
	if !tripped {
		early, tripped = st.observeLoop(e, id, o)
	}
	if a, ok := st.observeUntrusted(id, o); ok && !tripped {
		early, tripped = a, true
	}
	if !tripped {
		early, tripped = st.observeTool(e, id, o)
	} else if o.Tool != "" {
		st.observeTool(e, id, o) // the tool is seen even when another rule alerted
	}
	path := o.Path
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i] // a query string may carry credentials; the mix is by path only
	}
	st.resourceAdd(o.Provider, o.Model, path, e.cfg.Shift.MaxResources)
	if o.BudgetMicroUSD > 0 || st.spend != nil {
		if st.spend == nil {
			st.spend = &spendState{win: newRing(int(e.spendWin / e.spendSlot))}
		}
		sp := st.spend
		sp.cur += o.MicroUSD
		sp.spentSeen += o.MicroUSD
		sp.budget = o.BudgetMicroUSD
		if o.SpentMicroUSD > 0 {
			sp.spentTold = o.SpentMicroUSD
		}
	}
	return early, tripped
}

const otherResource = "(other)"

func (st *keyState) resourceAdd(provider, model, path string, max int) {
	for i := range st.res {
		r := &st.res[i]
		if r.model == model && r.provider == provider && r.path == path {
			r.cur++
			return
		}
	}
	if len(st.res) >= max-1 {
		for i := range st.res {
			if st.res[i].model == otherResource && st.res[i].provider == "" {
				st.res[i].cur++
				return
			}
		}
		provider, model, path = "", otherResource, ""
	}
	st.res = append(st.res, resource{provider: provider, model: model, path: path, cur: 1})
}

// pendingAlert is an alert decided under a shard lock and delivered after it is released.
type pendingAlert struct {
	a       Alert
	subject string
}

// tick advances the key from second from to second to and appends any alerts.
func (st *keyState) tick(e *Engine, id string, from, to int64, out []pendingAlert) []pendingAlert {
	if st.firstSec == 0 {
		st.firstSec = to
	}
	if st.active {
		st.lastActive = to
		st.active = false
	}
	out = st.tickRate(e, id, from, to, out)
	out = st.tickShift(e, id, from, to, out)
	if st.spend != nil {
		out = st.tickSpend(e, id, from, to, out)
	}
	return out
}

func (st *keyState) idle(e *Engine, sec int64) bool {
	return sec-st.lastActive >= int64(e.cfg.IdleEvict/time.Second) && !st.rateLatch.on &&
		!st.shiftLatch.on && (st.spend == nil || !st.spend.spendLatch.on)
}

func (st *keyState) tickShift(e *Engine, id string, from, to int64, out []pendingAlert) []pendingAlert {
	n, _ := boundaries(from, to, e.shiftSlot)
	if n == 0 {
		return out
	}
	n = min(n, e.maxSteps)
	for i := int64(0); i < n; i++ {
		fold := st.shiftFill >= shiftSlots && !st.shiftLatch.on
		for j := range st.res {
			r := &st.res[j]
			old := r.slot[st.shiftPos]
			r.slot[st.shiftPos] = r.cur
			r.sum += r.cur - old
			r.cur = 0
			if fold {
				r.base = r.base*e.shiftDecay + float64(old)
			}
		}
		if fold {
			st.shiftFold++
		}
		st.shiftPos = (st.shiftPos + 1) % shiftSlots
		st.shiftFill++
	}
	// Forget resources that have left both the window and the baseline.
	kept := st.res[:0]
	for _, r := range st.res {
		if r.sum != 0 || r.cur != 0 || r.base >= 0.01 {
			kept = append(kept, r)
		}
	}
	clear(st.res[len(kept):])
	st.res = kept

	c := e.cfg.Shift
	var win int64
	var base float64
	for _, r := range st.res {
		win += r.sum
		base += r.base
	}
	formed := st.shiftFold >= e.shiftFormSlots && base > 0
	var jsd float64
	if formed && win >= int64(c.MinRequests) {
		jsd = jensenShannon(st.res, win, base)
	}
	cond := formed && win >= int64(c.MinRequests) && jsd > c.Threshold
	switch st.shiftLatch.step(cond, to, int64(c.RecoverAfter/time.Second)) {
	case raise:
		top := st.res[0]
		for _, r := range st.res[1:] {
			if r.sum > top.sum {
				top = r
			}
		}
		now, usual := float64(top.sum)/float64(win), top.base/base
		out = append(out, pendingAlert{subject: RuleResourceShift + "\x00" + id, a: Alert{
			Rule: RuleResourceShift, KeyID: id, Severity: SeverityMedium,
			Summary: fmt.Sprintf("resource mix diverged: Jensen-Shannon %.2f > %.2f over %d requests in %v; top %s %s %s now %.0f%% (usual %.0f%%)",
				jsd, c.Threshold, win, c.Window, top.provider, top.model, top.path, 100*now, 100*usual),
			Numbers: map[string]float64{"divergence": jsd, "threshold": c.Threshold, "window_requests": float64(win),
				"top_share": now, "top_usual_share": usual},
			Events: st.ev.list(),
		}})
	case recovery:
		out = append(out, pendingAlert{subject: RuleResourceShift + "\x00" + id, a: Alert{
			Rule: RuleResourceShift, KeyID: id, Severity: SeverityInfo, Recovered: true,
			Summary: fmt.Sprintf("resource mix is back: Jensen-Shannon %.2f over %d requests (threshold %.2f, judged from %d)",
				jsd, win, c.Threshold, c.MinRequests),
			Numbers: map[string]float64{"divergence": jsd, "threshold": c.Threshold, "window_requests": float64(win)},
		}})
	}
	return out
}

// jensenShannon returns the base-2 Jensen–Shannon divergence between the window's mix
// (counts r.sum over win) and the baseline's mix (r.base over base), a value in [0, 1].
func jensenShannon(res []resource, win int64, base float64) float64 {
	var d float64
	for _, r := range res {
		p := float64(r.sum) / float64(win)
		q := r.base / base
		m := (p + q) / 2
		if p > 0 {
			d += p * math.Log2(p/m)
		}
		if q > 0 {
			d += q * math.Log2(q/m)
		}
	}
	return math.Max(0, math.Min(1, d/2))
}

func (st *keyState) tickSpend(e *Engine, id string, from, to int64, out []pendingAlert) []pendingAlert {
	sp := st.spend
	n, _ := boundaries(from, to, e.spendSlot)
	if n == 0 {
		return out
	}
	n = min(n, e.maxSteps)
	for i := int64(0); i < n; i++ {
		x := sp.cur
		sp.cur = 0
		old := sp.win.push(x)
		if sp.win.evictedReal() && !sp.spendLatch.on {
			r := float64(old) / float64(e.spendSlot)
			if sp.nb < e.spendFormSlots {
				sp.base = (sp.base*float64(sp.nb) + r) / float64(sp.nb+1)
			} else {
				sp.base += e.spendAlpha * (r - sp.base)
			}
			sp.nb++
		}
	}
	if sp.budget <= 0 {
		return out
	}
	c := e.cfg.Spend
	rate := float64(sp.win.sum) / float64(e.spendWin) // micro-USD per second
	spent := sp.spentSeen
	if sp.spentTold > 0 {
		spent = sp.spentTold
	}
	remaining := float64(max(sp.budget-spent, 0))
	toExhaust := math.Inf(1)
	if rate > 0 {
		toExhaust = remaining / rate
	}
	formed := sp.nb >= e.spendFormSlots
	cond := formed && rate > 0 && toExhaust < c.Horizon.Seconds() && rate > c.Factor*sp.base
	const perHour = 3600 / 1e6 // micro-USD per second to USD per hour
	switch sp.spendLatch.step(cond, to, int64(c.RecoverAfter/time.Second)) {
	case raise:
		nums := map[string]float64{"usd_per_hour": rate * perHour, "baseline_usd_per_hour": sp.base * perHour,
			"factor": c.Factor, "remaining_usd": remaining / 1e6, "budget_usd": float64(sp.budget) / 1e6,
			"hours_to_exhaust": toExhaust / 3600, "horizon_hours": c.Horizon.Hours()}
		out = append(out, pendingAlert{subject: RuleSpendVelocity + "\x00" + id, a: Alert{
			Rule: RuleSpendVelocity, KeyID: id, Severity: SeverityHigh,
			Summary: fmt.Sprintf("spend $%.2f/h over the last %v is %s the usual $%.2f/h (threshold %gx); remaining budget $%.2f lasts %.2fh (threshold %.2fh)",
				rate*perHour, c.Window, ratioText(rate, sp.base, nums), sp.base*perHour, c.Factor, remaining/1e6, toExhaust/3600, c.Horizon.Hours()),
			Numbers: nums,
			Events:  st.ev.list(),
		}})
	case recovery:
		out = append(out, pendingAlert{subject: RuleSpendVelocity + "\x00" + id, a: Alert{
			Rule: RuleSpendVelocity, KeyID: id, Severity: SeverityInfo, Recovered: true,
			Summary: fmt.Sprintf("spend $%.2f/h is back within %gx the usual $%.2f/h or the budget's %.2fh horizon",
				rate*perHour, c.Factor, sp.base*perHour, c.Horizon.Hours()),
			Numbers: map[string]float64{"usd_per_hour": rate * perHour, "baseline_usd_per_hour": sp.base * perHour,
				"remaining_usd": remaining / 1e6},
		}})
	}
	return out
}

// ratioText describes x against a baseline and records the ratio in nums when it is finite
// (JSON has no infinity).
func ratioText(x, base float64, nums map[string]float64) string {
	if base <= 0 {
		return "far above"
	}
	nums["ratio"] = x / base
	return fmt.Sprintf("%.1fx", x/base)
}
