package detect

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// gate limits how many alerts leave the engine: at most PerMinute a minute, with one summary of
// the rest. A recovery notice follows only an alert that was sent, and is not counted.
// Its fields are guarded by mu.
type gate struct {
	mu        sync.Mutex
	perMinute int
	quiet     time.Duration

	winStart   time.Time
	sent       int
	suppressed map[string]int      // rule -> alerts held back this minute
	held       map[string]struct{} // subjects whose alert was held back: their recovery is too
	risk       map[string]*riskState
}

// riskState is one active pass-through finding.
type riskState struct {
	a    Alert
	last time.Time
	seen int
}

func (g *gate) init(cfg Config) {
	g.perMinute = cfg.Limits.PerMinute
	g.quiet = cfg.Limits.RiskQuiet
	g.suppressed = make(map[string]int)
	g.held = make(map[string]struct{})
	g.risk = make(map[string]*riskState)
}

// admit reports whether a may be sent now. g.mu is held.
func (g *gate) admit(a *Alert, subject string, now time.Time) bool {
	if a.Recovered {
		if _, ok := g.held[subject]; ok {
			delete(g.held, subject)
			return false
		}
		return true
	}
	if g.winStart.IsZero() || now.Sub(g.winStart) >= time.Minute {
		g.winStart, g.sent = now, 0
	}
	if g.sent < g.perMinute {
		g.sent++
		return true
	}
	g.suppressed[a.Rule]++
	g.held[subject] = struct{}{}
	return false
}

// summary returns the alert that reports a finished minute's held-back alerts. g.mu is held.
func (g *gate) summary(now time.Time) (Alert, bool) {
	if len(g.suppressed) == 0 || now.Sub(g.winStart) < time.Minute {
		return Alert{}, false
	}
	rules := make([]string, 0, len(g.suppressed))
	total := 0
	nums := map[string]float64{}
	for r, n := range g.suppressed {
		rules = append(rules, fmt.Sprintf("%s %d", r, n))
		total += n
		nums["suppressed_"+r] = float64(n)
	}
	sort.Strings(rules)
	nums["suppressed"] = float64(total)
	nums["limit_per_minute"] = float64(g.perMinute)
	clear(g.suppressed)
	g.winStart, g.sent = now, 0
	return Alert{
		At: now, Rule: RuleAlertsSuppressed, Severity: SeverityHigh,
		Summary: fmt.Sprintf("%d alerts held back over the limit of %d a minute: %s", total, g.perMinute, strings.Join(rules, ", ")),
		Numbers: nums,
	}, true
}

// observeRisk raises a pass-through alert for a risk finding or refresh-token reuse, unless
// the same finding for the same key (or client) is already active.
func (e *Engine) observeRisk(o *Observation) {
	now := e.now()
	var out []pendingAlert
	if o.RefreshReuse {
		out = e.riskAlert(o, RuleRefreshReuse, SeverityHigh, now, out)
	}
	if o.Risk != "" {
		sev := SeverityMedium
		if o.Risk == "impossible-travel" {
			sev = SeverityHigh
		}
		out = e.riskAlert(o, o.Risk, sev, now, out)
	}
	if len(out) > 0 {
		e.deliver(now, out)
	}
}

func (e *Engine) riskAlert(o *Observation, rule, sev string, now time.Time, out []pendingAlert) []pendingAlert {
	who := o.KeyID
	if who == "" {
		who = o.Client
	}
	subject := rule + "\x00" + who
	g := &e.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	if st, ok := g.risk[subject]; ok {
		st.last = now
		st.seen++
		return out
	}
	a := Alert{Rule: rule, KeyID: o.KeyID, Client: o.Client, Severity: sev, At: now,
		Numbers: map[string]float64{"occurrences": 1}}
	if o.KeyPrefix != "" && o.KeyID == "" {
		a.KeyPrefix = safePrefix(o.KeyPrefix)
	}
	if o.EventSeq != 0 {
		a.Events = []uint64{o.EventSeq}
	}
	target := "key " + o.KeyID
	if o.KeyID == "" {
		target = "an unauthenticated caller"
	}
	if rule == RuleRefreshReuse {
		a.Summary = fmt.Sprintf("refresh token reused by %s from %s (event %d); its token family is revoked", target, o.Client, o.EventSeq)
	} else {
		a.Summary = fmt.Sprintf("risk finding %q for %s from %s (event %d)", rule, target, o.Client, o.EventSeq)
	}
	g.risk[subject] = &riskState{a: a, last: now, seen: 1}
	return append(out, pendingAlert{a: a, subject: subject})
}

// expireRisk ends pass-through findings that have been quiet for the quiet period.
func (g *gate) expireRisk(now time.Time, out []pendingAlert) []pendingAlert {
	g.mu.Lock()
	defer g.mu.Unlock()
	for subject, st := range g.risk {
		if now.Sub(st.last) < g.quiet {
			continue
		}
		delete(g.risk, subject)
		out = append(out, pendingAlert{subject: subject, a: Alert{
			Rule: st.a.Rule, KeyID: st.a.KeyID, Client: st.a.Client, KeyPrefix: st.a.KeyPrefix,
			Severity: SeverityInfo, Recovered: true,
			Summary: fmt.Sprintf("%s: no further occurrence for %v (%d in all)", st.a.Rule, g.quiet, st.seen),
			Numbers: map[string]float64{"occurrences": float64(st.seen)},
		}})
	}
	return out
}
