package principal

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/keygate/keygate/internal/limit"
	"github.com/keygate/keygate/internal/limitspec"
)

// AddLimits appends to p the checks of one set of limits, counted under
// prefix (a key's "k:ID", a group's "g:NAME", a token family's "f:ID"),
// with quota and budget days and months starting in loc.
func (p *Plan) AddLimits(loc *time.Location, prefix string, l limitspec.Limits) {
	rate := func(name string, n int64, per time.Duration, kind CostKind) {
		if n > 0 {
			p.Checks = append(p.Checks, limit.Check{Key: prefix + ":" + name, Kind: limit.Rate, Limit: n, Period: per})
			p.Kinds = append(p.Kinds, kind)
		}
	}
	rate("rps", l.RPS, time.Second, CostRequest)
	rate("rpm", l.RPM, time.Minute, CostRequest)
	rate("rph", l.RPH, time.Hour, CostRequest)
	rate("tpm", l.TPM, time.Minute, CostTokens)
	if l.Concurrency > 0 {
		p.Checks = append(p.Checks, limit.Check{Key: prefix + ":conc", Kind: limit.Concurrency, Limit: l.Concurrency})
		p.Kinds = append(p.Kinds, CostNone)
	}
	quota := func(name string, n int64, period string, kind CostKind) {
		p.Checks = append(p.Checks, limit.Check{Key: prefix + ":" + name + ":" + period, Kind: limit.Quota, Limit: n, Calendar: Calendar(period), Location: loc})
		p.Kinds = append(p.Kinds, kind)
		p.NeedsShared = true
	}
	for _, q := range l.Quotas {
		kind := CostRequest
		if q.Unit == limitspec.UnitTokens {
			kind = CostTokens
		}
		quota(q.Unit, q.Limit, q.Period, kind)
	}
	for _, b := range l.Budgets {
		quota("usd", b.MicroUSD, b.Period, CostMoney)
		p.HasBudget = true
	}
}

// AddStored appends the checks of limits stored as JSON (empty: none).
func (p *Plan) AddStored(loc *time.Location, prefix string, raw []byte) error {
	if len(raw) == 0 {
		return nil
	}
	var l limitspec.Limits
	if err := json.Unmarshal(raw, &l); err != nil {
		return fmt.Errorf("stored limits are not readable: %w", err)
	}
	p.AddLimits(loc, prefix, l)
	return nil
}

// Merge returns a plan holding p's checks and then q's; neither is
// changed.
func (p *Plan) Merge(q *Plan) *Plan {
	return &Plan{
		Checks:    append(append([]limit.Check(nil), p.Checks...), q.Checks...),
		Kinds:     append(append([]CostKind(nil), p.Kinds...), q.Kinds...),
		HasBudget: p.HasBudget || q.HasBudget, NeedsShared: p.NeedsShared || q.NeedsShared,
	}
}

// Without returns a plan less its checks of one kind.
func (p *Plan) Without(kind limit.Kind) *Plan {
	out := &Plan{HasBudget: p.HasBudget, NeedsShared: p.NeedsShared}
	for i, ch := range p.Checks {
		if ch.Kind != kind {
			out.Checks = append(out.Checks, ch)
			out.Kinds = append(out.Kinds, p.Kinds[i])
		}
	}
	return out
}

// Only returns a plan holding only its checks of one kind.
func (p *Plan) Only(kind limit.Kind) *Plan {
	out := &Plan{}
	for i, ch := range p.Checks {
		if ch.Kind == kind {
			out.Checks = append(out.Checks, ch)
			out.Kinds = append(out.Kinds, p.Kinds[i])
		}
	}
	return out
}

// Calendar is the limiter's calendar for a quota or budget period.
func Calendar(period string) limit.Calendar {
	switch period {
	case limitspec.PeriodDay:
		return limit.Day
	case limitspec.PeriodMonth:
		return limit.Month
	}
	return limit.Total
}

// PeriodName is the period a calendar stands for, as limits name it.
func PeriodName(c limit.Calendar) string {
	switch c {
	case limit.Day:
		return limitspec.PeriodDay
	case limit.Month:
		return limitspec.PeriodMonth
	}
	return limitspec.PeriodTotal
}
