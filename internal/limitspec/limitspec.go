// Package limitspec defines what a keygate key, or a group of keys, may
// consume: rates, concurrency, quotas and budgets, in the form they are
// stored and sent over the admin API. It has no dependencies, so the admin
// API and the data plane share one definition without the data plane
// depending on the admin API.
package limitspec

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Limits are what a keygate key, or a group of keys, may consume. Zero
// fields are unlimited. A request must pass the limits of its key and of
// its key's group.
type Limits struct {
	RPS         int64    `json:"rps,omitempty"`         // requests per second
	RPM         int64    `json:"rpm,omitempty"`         // requests per minute
	RPH         int64    `json:"rph,omitempty"`         // requests per hour
	TPM         int64    `json:"tpm,omitempty"`         // input+output tokens per minute
	Concurrency int64    `json:"concurrency,omitempty"` // requests in flight
	Quotas      []Quota  `json:"quotas,omitempty"`      // requests or tokens per day, month or in total
	Budgets     []Budget `json:"budgets,omitempty"`     // spend in USD per day, month or in total
}

// IsZero reports whether l limits nothing.
func (l Limits) IsZero() bool {
	return l.RPS == 0 && l.RPM == 0 && l.RPH == 0 && l.TPM == 0 && l.Concurrency == 0 && len(l.Quotas) == 0 && len(l.Budgets) == 0
}

// Periods a quota or budget resets on. Day and month follow the calendar of
// keygate's configured time zone (limits.timezone).
const (
	PeriodDay   = "day"
	PeriodMonth = "month"
	PeriodTotal = "total"
)

// Quota units.
const (
	UnitRequests = "requests"
	UnitTokens   = "tokens"
)

// Quota caps requests or tokens per period.
type Quota struct {
	Limit  int64  `json:"limit"`
	Unit   string `json:"unit"`   // requests or tokens
	Period string `json:"period"` // day, month or total
}

// Budget caps spend per period, in millionths of a US dollar so that sums
// are exact.
type Budget struct {
	MicroUSD int64  `json:"micro_usd"`
	Period   string `json:"period"` // day, month or total
}

// String renders a budget as the CLI takes it: "20usd/month".
func (b Budget) String() string {
	s := strconv.FormatFloat(float64(b.MicroUSD)/1e6, 'f', -1, 64) + "usd"
	if b.Period != PeriodTotal {
		s += "/" + b.Period
	}
	return s
}

// String renders a quota as the CLI takes it: "5000/day" or "2000000tokens/month".
func (q Quota) String() string {
	s := strconv.FormatInt(q.Limit, 10)
	if q.Unit == UnitTokens {
		s += "tokens"
	}
	if q.Period != PeriodTotal {
		s += "/" + q.Period
	}
	return s
}

// maxLimit bounds every count so sums stay exact everywhere keygate keeps
// them (Redis scripts compute in doubles).
const maxLimit = 1 << 50

// Validate checks every field and names the one at fault.
func (l Limits) Validate() error {
	for _, f := range []struct {
		name string
		v    int64
		per  time.Duration
	}{{"rps", l.RPS, time.Second}, {"rpm", l.RPM, time.Minute}, {"rph", l.RPH, time.Hour}, {"tpm", l.TPM, time.Minute}, {"concurrency", l.Concurrency, 0}} {
		// A token bucket keeps time in microseconds in a double, so a rate's
		// limit times its period in microseconds stays below 2^53.
		most := int64(maxLimit)
		if f.per > 0 {
			most = (1<<53 - 1) / f.per.Microseconds()
		}
		if f.v < 0 || f.v > most {
			return fmt.Errorf("limits: %s must be 0 (unlimited) to %d, got %d", f.name, most, f.v)
		}
	}
	seen := map[string]bool{}
	for _, q := range l.Quotas {
		if q.Limit <= 0 || q.Limit > maxLimit {
			return fmt.Errorf("limits: quota %s: the limit must be 1 to %d", q, int64(maxLimit))
		}
		if q.Unit != UnitRequests && q.Unit != UnitTokens {
			return fmt.Errorf("limits: quota unit %q must be requests or tokens", q.Unit)
		}
		if err := validPeriod(q.Period); err != nil {
			return fmt.Errorf("limits: quota %s: %w", q, err)
		}
		if k := q.Unit + "/" + q.Period; seen[k] {
			return fmt.Errorf("limits: two %s quotas per %s; keep one", q.Unit, q.Period)
		} else {
			seen[k] = true
		}
	}
	for _, b := range l.Budgets {
		if b.MicroUSD <= 0 || b.MicroUSD > maxLimit {
			return fmt.Errorf("limits: budget %s must be more than 0 and at most %d USD", b, int64(maxLimit)/1_000_000)
		}
		if err := validPeriod(b.Period); err != nil {
			return fmt.Errorf("limits: budget %s: %w", b, err)
		}
		if k := "usd/" + b.Period; seen[k] {
			return fmt.Errorf("limits: two budgets per %s; keep one", b.Period)
		} else {
			seen[k] = true
		}
	}
	return nil
}

func validPeriod(p string) error {
	switch p {
	case PeriodDay, PeriodMonth, PeriodTotal:
		return nil
	}
	return fmt.Errorf("period %q must be day, month or total", p)
}

// ParseQuota reads a quota as the CLI writes it: "5000/day" (requests),
// "2000000tokens/month", or a bare count ("10000") for a total.
func ParseQuota(s string) (Quota, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	amount, period, slash := strings.Cut(s, "/")
	amount = strings.TrimSpace(amount)
	q := Quota{Unit: UnitRequests, Period: PeriodTotal}
	if slash {
		// "5000/" is a typo, not a total: the period is then checked and refused.
		q.Period = strings.TrimSpace(period)
	}
	if n, ok := strings.CutSuffix(amount, "tokens"); ok {
		q.Unit, amount = UnitTokens, n
	} else if n, ok := strings.CutSuffix(amount, "requests"); ok {
		amount = n
	}
	n, err := strconv.ParseInt(strings.ReplaceAll(amount, "_", ""), 10, 64)
	if err != nil || n <= 0 {
		return Quota{}, fmt.Errorf("quota %q: write COUNT[/PERIOD], as in 5000/day, 2000000tokens/month or 100000 (in total)", s)
	}
	q.Limit = n
	if err := (Limits{Quotas: []Quota{q}}).Validate(); err != nil {
		return Quota{}, err
	}
	return q, nil
}

// ParseBudget reads a budget as the CLI writes it: "20usd/month",
// "2.50usd/day" or "100usd" (in total).
func ParseBudget(s string) (Budget, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	amount, period, slash := strings.Cut(s, "/")
	b := Budget{Period: PeriodTotal}
	if slash {
		// "20usd/" is a typo, not a total: the period is then checked and refused.
		b.Period = strings.TrimSpace(period)
	}
	amount = strings.TrimPrefix(strings.TrimSuffix(strings.TrimSpace(amount), "usd"), "$")
	// Plain decimals only: strconv.ParseFloat would also take "nan", "inf",
	// exponents and hex floats, and NaN would turn into a nonsense amount.
	v, err := strconv.ParseFloat(amount, 64)
	if err != nil || !plainDecimal(amount) || v <= 0 {
		return Budget{}, fmt.Errorf("budget %q: write AMOUNTusd[/PERIOD] with a positive amount, as in 20usd/month, 2.50usd/day or 100usd (in total)", s)
	}
	if v > maxLimit/1e6 {
		return Budget{}, fmt.Errorf("budget %q: the amount must be at most %d USD", s, int64(maxLimit)/1_000_000)
	}
	b.MicroUSD = int64(math.Round(v * 1e6))
	if b.MicroUSD == 0 {
		return Budget{}, fmt.Errorf("budget %q rounds to nothing: the smallest budget is 0.000001usd", s)
	}
	if err := (Limits{Budgets: []Budget{b}}).Validate(); err != nil {
		return Budget{}, err
	}
	return b, nil
}

// plainDecimal reports whether s is digits with at most one decimal point, as in "20" or "2.50".
func plainDecimal(s string) bool {
	digits, point := 0, false
	for _, r := range s {
		switch {
		case '0' <= r && r <= '9':
			digits++
		case r == '.' && !point:
			point = true
		default:
			return false
		}
	}
	return digits > 0
}
