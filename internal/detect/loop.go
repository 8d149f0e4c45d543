package detect

import (
	"fmt"
	"time"
)

// loopSlots bounds the conversation ends remembered per key: a loop
// cycles through a few steps, so a handful of recent ends is enough to see
// one come round again.
const loopSlots = 8

// loopState is what the runaway-agent rules keep of one key.
type loopState struct {
	ends [loopSlots]loopEnd
	next int // the slot the next new end takes
	// quietUntil: no loop alert for the key before this (Unix seconds), so
	// one loop raises one alert per window.
	quietUntil int64

	lastContext int64 // the context the previous request read
	growing     int   // requests in a row whose context grew
	grownAlert  bool  // the context-growth alert was raised for this growth
}

// loopEnd is one conversation end and its recent occurrences.
type loopEnd struct {
	turn  uint64
	first int64 // Unix seconds of the first occurrence counted
	count int
}

// observeLoop updates the key's runaway-agent rules with o and returns an
// alert to raise at once, if one trips.
func (st *keyState) observeLoop(e *Engine, id string, o *Observation) (pendingAlert, bool) {
	c := e.cfg.Loop
	if (o.Turn == 0 || c.Repeats < 0) && (o.ContextTokens == 0 || c.ContextTokens < 0) {
		return pendingAlert{}, false
	}
	if st.loop == nil {
		st.loop = &loopState{}
	}
	ls := st.loop
	now := o.At.Unix()
	if o.Turn != 0 && c.Repeats > 0 {
		win := int64(c.Window / time.Second)
		var end *loopEnd
		for i := range ls.ends {
			if ls.ends[i].turn == o.Turn {
				end = &ls.ends[i]
				break
			}
		}
		if end == nil || now-end.first > win {
			if end == nil {
				end = &ls.ends[ls.next]
				ls.next = (ls.next + 1) % loopSlots
			}
			*end = loopEnd{turn: o.Turn, first: now}
		}
		end.count++
		if end.count >= c.Repeats && now >= ls.quietUntil {
			ls.quietUntil = now + win
			n, since := end.count, now-end.first
			*end = loopEnd{}
			return pendingAlert{subject: RuleLoop + "\x00" + id, a: Alert{
				Rule: RuleLoop, KeyID: id, Severity: SeverityMedium,
				Summary: fmt.Sprintf("%d requests in %ds ended their conversation alike (threshold %d in %v): the agent repeats the same step",
					n, since, c.Repeats, c.Window),
				Events:  st.ev.list(),
				Numbers: map[string]float64{"repeats": float64(n), "seconds": float64(since), "threshold": float64(c.Repeats), "window_seconds": float64(win)},
			}}, true
		}
	}
	if o.ContextTokens > 0 && c.ContextTokens > 0 {
		if o.ContextTokens > ls.lastContext {
			ls.growing++
		} else {
			ls.growing, ls.grownAlert = 0, false
		}
		ls.lastContext = o.ContextTokens
		if ls.growing >= c.Growing && o.ContextTokens >= c.ContextTokens && !ls.grownAlert {
			ls.grownAlert = true
			return pendingAlert{subject: RuleContextGrowth + "\x00" + id, a: Alert{
				Rule: RuleContextGrowth, KeyID: id, Severity: SeverityLow,
				Summary: fmt.Sprintf("the context grew with each of the last %d requests, to %d tokens (threshold %d tokens after %d growing requests)",
					ls.growing, o.ContextTokens, c.ContextTokens, c.Growing),
				Events:  st.ev.list(),
				Numbers: map[string]float64{"context_tokens": float64(o.ContextTokens), "growing_requests": float64(ls.growing), "threshold_tokens": float64(c.ContextTokens)},
			}}, true
		}
	}
	return pendingAlert{}, false
}
