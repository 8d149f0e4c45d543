package cli

import (
	"fmt"

	"github.com/keygate/keygate/internal/limitspec"
	"github.com/keygate/keygate/internal/secret"
)

// runOptions are the settings of the short-lived keys a run makes.
type runOptions struct {
	ttl, gateway string
	maxRequests  int64             // 0: the template's own limits only
	maxSpend     *limitspec.Budget // nil: likewise
}

// parseRunLimits checks --max-requests and --max-spend.
func parseRunLimits(maxRequests int64, maxSpend string) (int64, *limitspec.Budget, error) {
	if maxRequests < 0 {
		return 0, nil, fmt.Errorf("run: --max-requests must be a positive number of requests, as in --max-requests 500")
	}
	if maxSpend == "" {
		return maxRequests, nil, nil
	}
	b, err := limitspec.ParseBudget(maxSpend)
	if err != nil {
		return 0, nil, fmt.Errorf("run: --max-spend: %w", err)
	}
	if b.Period != limitspec.PeriodTotal {
		return 0, nil, fmt.Errorf("run: --max-spend is for the whole run: write an amount without a period, as in 5usd")
	}
	return maxRequests, &b, nil
}

// limits returns l with the run's caps added as total quotas and budgets
// of the run's key, keeping the template's where they are lower.
func (o runOptions) limits(l limitspec.Limits) limitspec.Limits {
	if o.maxRequests > 0 {
		found := false
		qs := append([]limitspec.Quota(nil), l.Quotas...)
		for i, q := range qs {
			if q.Unit == limitspec.UnitRequests && q.Period == limitspec.PeriodTotal {
				found = true
				qs[i].Limit = min(q.Limit, o.maxRequests)
			}
		}
		if !found {
			qs = append(qs, limitspec.Quota{Limit: o.maxRequests, Unit: limitspec.UnitRequests, Period: limitspec.PeriodTotal})
		}
		l.Quotas = qs
	}
	if o.maxSpend != nil {
		found := false
		bs := append([]limitspec.Budget(nil), l.Budgets...)
		for i, b := range bs {
			if b.Period == limitspec.PeriodTotal {
				found = true
				bs[i].MicroUSD = min(b.MicroUSD, o.maxSpend.MicroUSD)
			}
		}
		if !found {
			bs = append(bs, *o.maxSpend)
		}
		l.Budgets = bs
	}
	return l
}

// runGateway is how a run's command reaches the gateway.
type runGateway struct {
	root  string        // base URL without /v1 or a trailing slash
	cred  secret.String // what the command presents there
	key   secret.String // the run's short-lived keygate key (masked in output)
	proxy *tokenProxy   // the loopback gateway; nil when the gateway issues no tokens and cred is key
}
