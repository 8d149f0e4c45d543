package gateway

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate/internal/jsonpeek"
	"github.com/keygate/keygate/internal/limit"
	"github.com/keygate/keygate/internal/pricing"
	"github.com/keygate/keygate/internal/principal"
	"github.com/keygate/keygate/internal/usage"
	"github.com/keygate/keygate/internal/web"
)

// Limiter admits requests against limits and settles them afterwards;
// internal/limit's memory and Redis limiters implement it.
type Limiter interface {
	Admit(ctx context.Context, checks []limit.Check) (limit.Decision, error)
	Settle(ctx context.Context, r limit.Reservation, actual []int64) error
}

// UsageRecorder is told what each request consumed (it must not block).
type UsageRecorder interface {
	Record(e usage.Entry)
}

// LimitOptions configures admission control. The zero value enforces no
// limits, meters nothing and throttles no failed authentication. A key's
// limits, and its group's, come compiled with its principal.
type LimitOptions struct {
	// Shared decides admissions: this node's memory limiter, or Redis
	// shared by every node.
	Shared Limiter
	// Local is this node's memory limiter: it throttles failed
	// authentication, and stands in for Shared's rate and concurrency
	// limits when Shared is unreachable. Quotas and budgets never fall back:
	// without Shared they are refused (they fail closed).
	Local Limiter
	// Prices turns tokens into spend; a budget on a model without a price
	// refuses the request.
	Prices *pricing.Table
	// Location is where quota and budget days and months start.
	Location *time.Location
	// DefaultMaxTokens is the output reserved for a request that names no
	// max_tokens.
	DefaultMaxTokens int64
	// Usage records what each request consumed.
	Usage UsageRecorder
	// AuthFailures failed authentications per AuthFailureWindow are allowed
	// from one client address, and against one key prefix; beyond them
	// requests are refused until the window refills. 0 disables it.
	AuthFailures      int64
	AuthFailureWindow time.Duration
}

// estimate is a request's worst case, reserved before it goes upstream.
type estimate struct {
	in, out int64
	price   pricing.Price
	priced  bool
}

// cost is the estimate's worst-case spend, at most limit.MaxValue: a
// saturated cost is refused by any budget rather than wrapping to a small
// one.
func (e estimate) cost() int64 { return min(e.price.Cost(e.in, e.out), limit.MaxValue) }

// cost is what a check is charged for the given consumption, at most
// limit.MaxValue so an absurd figure (a reservation, or an upstream's
// usage report) is charged in full, never wrapped to a small one.
func cost(kind principal.CostKind, in, out, money int64) int64 {
	switch kind {
	case principal.CostRequest:
		return 1
	case principal.CostTokens:
		return tokenSum(in, out)
	case principal.CostMoney:
		return min(max(money, 0), limit.MaxValue)
	}
	return 0
}

// tokenSum adds token counts without overflowing: negative counts count
// as 0 and the sum stops at limit.MaxValue.
func tokenSum(counts ...int64) int64 {
	var sum int64
	for _, n := range counts {
		if n <= 0 {
			continue
		}
		if n >= limit.MaxValue-sum {
			return limit.MaxValue
		}
		sum += n
	}
	return sum
}

// admission is an admitted request's hold on its limits, settled once the
// response has been read.
type admission struct {
	lim   Limiter
	res   limit.Reservation
	plan  *principal.Plan
	est   estimate
	once  sync.Once
	start time.Time
	early *early // concurrency slots taken before the body was read, if any

	// checks and actual back the reserved checks and their settled costs
	// for plans of up to len(checks) checks, nearly every key's, so that
	// admitting and settling a call allocate nothing of their own.
	checks [8]limit.Check
	actual [8]int64
}

// hold starts c's admission of plan p for the worst case est; c owns its
// storage.
func (c *call) hold(p *principal.Plan, est estimate) *admission {
	c.admission.plan, c.admission.est = p, est
	c.adm = &c.admission
	return c.adm
}

// admit reserves the request's worst-case cost against every limit of its
// key, its group and its access token, all at once, before anything goes
// upstream. An admitted call's limit figures are set on h.
func (g *Gateway) admit(h http.Header, r *http.Request, c *call, key *principal.Principal, model string, f jsonpeek.Fields, bodyLen int) *Denial {
	lo := &g.opts.Limits
	est := estimate{in: int64(bodyLen+3) / 4, out: f.MaxTokens}
	if est.out == 0 && r.URL.Path != "/v1/embeddings" {
		est.out = lo.DefaultMaxTokens
	}
	switch {
	case c.service != nil, c.countOnly:
		est = estimate{priced: true} // a passthrough call, or a token count, costs requests, not tokens or money
	case c.alias != nil:
		p := aliasPrice(c.order)
		est.price, est.priced = p.price, p.priced
	case lo.Prices != nil:
		est.price, est.priced = lo.Prices.Lookup(model)
	}
	c.est = est
	if lo.Shared == nil {
		return nil
	}
	p, den := g.callPlan(c, key)
	if den != nil {
		g.releaseEarly(c)
		return den
	}
	if c.early != nil {
		// The concurrency slots are already held (admitEarly).
		p = p.Without(limit.Concurrency)
	}
	if len(p.Checks) == 0 {
		if c.early != nil {
			a := c.hold(p, est)
			a.start, a.early = g.opts.Now(), c.early
			c.early = nil
		}
		return nil
	}
	if p.HasBudget && !est.priced {
		g.releaseEarly(c)
		return denyf(http.StatusForbidden, "budget_unpriced",
			"this API key has a spend budget, and keygate has no price for model %q, so it cannot hold the key to it; ask keygate's operator to add the model under prices:", model)
	}
	a := c.hold(p, est)
	var checks []limit.Check
	if n := len(p.Checks); n <= len(a.checks) {
		checks = a.checks[:n:n]
	} else {
		checks = make([]limit.Check, n)
	}
	copy(checks, p.Checks)
	for i, k := range p.Kinds {
		if k == principal.CostMoney && (c.budgetMicro == 0 || checks[i].Limit < c.budgetMicro) {
			c.budgetMicro = checks[i].Limit // the tightest budget, for spend-velocity detection
		}
		if k == principal.CostRequest && checks[i].Kind == limit.Rate {
			if rps := float64(checks[i].Limit) / checks[i].Period.Seconds(); c.limitRPS == 0 || rps < c.limitRPS {
				c.limitRPS = rps // the tightest request rate, for rate-spike detection
			}
		}
	}
	money := est.cost()
	for i := range checks {
		checks[i].Cost = cost(p.Kinds[i], est.in, est.out, money)
	}
	lim, d, den := g.admitChecks(r, key, p, checks)
	if den != nil {
		c.adm = nil
		g.releaseEarly(c)
		return den
	}
	a.lim, a.res, a.start, a.early = lim, d.Reservation, g.opts.Now(), c.early
	c.early = nil
	setLimitHeaders(h, checks, p.Kinds, d)
	if g.opts.Metrics != nil {
		for i, ch := range checks {
			if ch.Limit > 0 && i < len(d.Remaining) {
				g.opts.Metrics.LimitUsage(limitName(ch, p.Kinds[i]), float64(ch.Limit-d.Remaining[i])/float64(ch.Limit))
			}
		}
	}
	return nil
}

// admitChecks asks the shared limiter to admit checks (this node's, for
// rate and concurrency limits, when the shared one is unreachable). It
// refuses when the checks cannot be decided or a limit refuses.
func (g *Gateway) admitChecks(r *http.Request, key *principal.Principal, p *principal.Plan, checks []limit.Check) (Limiter, limit.Decision, *Denial) {
	lo := &g.opts.Limits
	lim := lo.Shared
	d, err := lim.Admit(r.Context(), checks)
	if errors.Is(err, limit.ErrInvalid) {
		g.opts.Log.Error("a key's limits are out of range; refusing its requests until they are fixed", "key_id", key.ID, "err", err)
		return nil, d, deny(http.StatusInternalServerError, "limits_unreadable", "keygate cannot apply this API key's limits; ask its administrator to set them again (keygate key update)")
	}
	if err != nil && !p.NeedsShared && lo.Local != nil {
		g.opts.Log.Warn("shared limiter unavailable; enforcing rate limits with this node's counters", "err", err)
		lim = lo.Local
		d, err = lim.Admit(r.Context(), checks)
	}
	if err != nil {
		g.opts.Log.Error("limiter unavailable; refusing requests that need a spend or quota decision", "request_id", web.RequestID(r.Context()), "err", err)
		return nil, d, deny(http.StatusServiceUnavailable, "limits_unavailable", "keygate cannot check this API key's quotas and budgets right now, so it refuses the request rather than overspend; try again shortly")
	}
	if !d.Allowed {
		return nil, d, limitDenial(checks[d.Denied], p.Kinds[d.Denied], d, d.Denied)
	}
	return lim, d, nil
}

// callPlan is the checks the call needs: its key's and group's (cached
// per key version), and its access token's own, lower limits, counted per
// token family, on top.
func (g *Gateway) callPlan(c *call, key *principal.Principal) (*principal.Plan, *Denial) {
	p := &key.Plan
	if p.Err != nil {
		g.opts.Log.Error("a key's limits cannot be read; refusing its requests until they are fixed", "key_id", key.ID, "err", p.Err)
		return nil, deny(http.StatusInternalServerError, "limits_unreadable", "keygate cannot read this API key's limits; ask its administrator to set them again (keygate key update)")
	}
	if ts := c.tokenScope; ts != nil && len(ts.Limits) > 0 && c.tokenFamily != "" {
		tp := &principal.Plan{}
		if err := tp.AddStored(g.opts.Limits.Location, "f:"+c.tokenFamily, ts.Limits); err != nil {
			return nil, deny(http.StatusUnauthorized, "invalid_api_key", "the access token's limits cannot be read")
		}
		p = p.Merge(tp)
	}
	return p, nil
}

// earlyAdmitBytes is the body size from which a call takes its
// concurrency slots before reading its body: a key limited to two
// requests in flight then has at most two large bodies in memory.
const earlyAdmitBytes = 1 << 20

// early is a call's hold on its concurrency slots, taken before its body
// was read.
type early struct {
	lim Limiter
	res limit.Reservation
	n   int // checks held
}

// admitEarly takes the call's concurrency slots before a large body (or
// one of unknown length) is read.
func (g *Gateway) admitEarly(r *http.Request, c *call, key *principal.Principal) *Denial {
	if g.opts.Limits.Shared == nil || (r.ContentLength >= 0 && r.ContentLength < earlyAdmitBytes) {
		return nil
	}
	p, den := g.callPlan(c, key)
	if den != nil {
		return den
	}
	conc := p.Only(limit.Concurrency)
	if len(conc.Checks) == 0 {
		return nil
	}
	lim, d, den := g.admitChecks(r, key, conc, conc.Checks)
	if den != nil {
		return den
	}
	c.early = &early{lim: lim, res: d.Reservation, n: len(conc.Checks)}
	return nil
}

// releaseEarly gives back concurrency slots taken early, if the call holds
// any its admission has not taken over.
func (g *Gateway) releaseEarly(c *call) {
	if e := c.early; e != nil {
		c.early = nil
		g.settleEarly(e)
	}
}

// settleEarly releases early-held slots.
func (g *Gateway) settleEarly(e *early) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.lim.Settle(ctx, e.res, make([]int64, e.n)); err != nil && !errors.Is(err, context.Canceled) {
		g.opts.Log.Error("could not release a request's concurrency slots; they free themselves when their lease ends", "err", err)
	}
}

// limitName names a kind of limit for the metrics, never a key.
func limitName(ch limit.Check, kind principal.CostKind) string {
	switch {
	case ch.Kind == limit.Concurrency:
		return "concurrency"
	case kind == principal.CostMoney:
		return "budget"
	case ch.Kind == limit.Rate && kind == principal.CostTokens:
		return "tokens_per_period"
	case ch.Kind == limit.Rate:
		return "requests_per_period"
	case kind == principal.CostTokens:
		return "tokens_quota"
	}
	return "requests_quota"
}

// limitDenial is the 429 for a request a limit denied: naming the limit,
// what is left of it and when it frees up, with Retry-After whenever
// waiting helps.
func limitDenial(ch limit.Check, kind principal.CostKind, d limit.Decision, i int) *Denial {
	h := http.Header{}
	left := d.Remaining[i]
	setLimitHeaders(h, []limit.Check{ch}, []principal.CostKind{kind}, limit.Decision{Remaining: []int64{left}, Reset: []time.Time{d.Reset[i]}})
	den := &Denial{Status: http.StatusTooManyRequests, Header: h}
	amount := func(n int64) string {
		if kind == principal.CostMoney {
			return usd(n)
		}
		return strconv.FormatInt(n, 10) + " " + unitName(kind)
	}
	switch {
	case ch.Kind == limit.Concurrency:
		den.Code, den.Message = "concurrency_limit", fmt.Sprintf("this API key already has %d requests in flight, its limit; retry when one finishes", ch.Limit)
		den.RetryAfter = time.Second
	case ch.Kind == limit.Rate:
		den.Code, den.Message = "rate_limit_exceeded", fmt.Sprintf("rate limit of %d %s per %s reached", ch.Limit, unitName(kind), ch.Period)
	default:
		what := fmt.Sprintf("quota of %s per %s", amount(ch.Limit), principal.PeriodName(ch.Calendar))
		den.Code = "insufficient_quota"
		if kind == principal.CostMoney {
			what = "spend budget of " + usd(ch.Limit)
			if ch.Calendar != limit.Total {
				what += " per " + principal.PeriodName(ch.Calendar)
			}
			den.Code = "budget_exceeded"
		}
		switch {
		case ch.Cost > ch.Limit:
			den.Message = fmt.Sprintf("this request may use up to %s, more than the whole %s; lower max_tokens", amount(ch.Cost), what)
		case left <= 0:
			den.Message = fmt.Sprintf("the %s is spent", what)
		default:
			den.Message = fmt.Sprintf("the %s has %s left and this request may use up to %s; lower max_tokens or wait", what, amount(left), amount(ch.Cost))
		}
		if ch.Calendar == limit.Total {
			den.Message += "; it does not reset: ask the key's administrator to raise it"
		} else if reset := d.Reset[i]; !reset.IsZero() {
			den.Message += "; it resets at " + reset.UTC().Format(time.RFC3339)
		}
	}
	switch {
	case d.RetryAfter < 0:
		h.Set("X-Should-Retry", "false")
		if ch.Kind == limit.Rate {
			den.Message += "; this request alone needs more than the limit allows"
		}
	case d.RetryAfter > 0:
		den.RetryAfter = d.RetryAfter
		if ch.Kind == limit.Quota {
			h.Set("X-Should-Retry", "false") // hours away: an SDK's retry loop cannot wait it out
		} else {
			den.Message += fmt.Sprintf("; retry in %ds", int64(math.Ceil(d.RetryAfter.Seconds())))
		}
	}
	return den
}

// usd renders micro-dollars as dollars for a message: $0.000125, $12.50.
func usd(micro int64) string {
	s := strconv.FormatFloat(float64(micro)/1e6, 'f', -1, 64)
	if i := strings.IndexByte(s, '.'); i >= 0 && len(s)-i == 2 {
		s += "0"
	}
	return "$" + s
}

func unitName(k principal.CostKind) string {
	if k == principal.CostTokens {
		return "tokens"
	}
	return "requests"
}

// rateLimitHeaders are the canonical names setLimitHeaders writes, for
// requests and for tokens.
var rateLimitHeaders = [2][3]string{
	{"X-Ratelimit-Limit", "X-Ratelimit-Remaining", "X-Ratelimit-Reset"},
	{"X-Ratelimit-Limit-Tokens", "X-Ratelimit-Remaining-Tokens", "X-Ratelimit-Reset-Tokens"},
}

// setLimitHeaders reports the tightest request limit as X-RateLimit-Limit,
// -Remaining and -Reset (seconds), and the tightest token limit as the
// same names with a -Tokens suffix.
func setLimitHeaders(h http.Header, checks []limit.Check, kinds []principal.CostKind, d limit.Decision) {
	best := [2]int{-1, -1}
	for i := range checks {
		var slot int
		switch {
		case kinds[i] == principal.CostRequest:
			slot = 0
		case kinds[i] == principal.CostTokens:
			slot = 1
		default:
			continue
		}
		if b := best[slot]; b < 0 || d.Remaining[i] < d.Remaining[b] {
			best[slot] = i
		}
	}
	// The figures are formatted into one string and the header values
	// share one backing array: two allocations rather than twelve.
	var buf [6 * 20]byte
	var ends [6]int
	var set [6]bool
	b := buf[:0]
	for slot := range rateLimitHeaders {
		i := best[slot]
		if i < 0 {
			continue
		}
		figures := [3]int64{checks[i].Limit, max(d.Remaining[i], 0), -1}
		if reset := d.Reset[i]; !reset.IsZero() {
			figures[2] = max(int64(math.Ceil(time.Until(reset).Seconds())), 0)
		}
		for j, v := range figures {
			if v >= 0 {
				b = strconv.AppendInt(b, v, 10)
				set[slot*3+j] = true
			}
			ends[slot*3+j] = len(b)
		}
	}
	if len(b) == 0 {
		return
	}
	s := string(b)
	vals := make([]string, len(ends))
	start := 0
	for k, end := range ends {
		if set[k] {
			vals[k] = s[start:end]
			h[rateLimitHeaders[k/3][k%3]] = vals[k : k+1 : k+1]
		}
		start = end
	}
}
