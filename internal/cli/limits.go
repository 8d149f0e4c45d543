package cli

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/adminapi"
)

// groupNameRE is the form the admin API takes for group names, the same as for key names.
var groupNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// checkGroupName validates a group's name before any request, for the command what.
func checkGroupName(what, name string) error {
	if !groupNameRE.MatchString(name) {
		return fmt.Errorf("%s: group name %q is not valid: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit, as in team-a", what, name)
	}
	return nil
}

// rateLimits are the limits set by a single count, in the order the
// command line prints them.
var rateLimits = []struct {
	flag   string // flag name, as in --rpm
	suffix string // printed after the count, as in 60rpm
	usage  string // with the flag's value named `N`
	field  func(*adminapi.Limits) *int64
}{
	{"rps", "rps", "at most `N` requests per second", func(l *adminapi.Limits) *int64 { return &l.RPS }},
	{"rpm", "rpm", "at most `N` requests per minute", func(l *adminapi.Limits) *int64 { return &l.RPM }},
	{"rph", "rph", "at most `N` requests per hour", func(l *adminapi.Limits) *int64 { return &l.RPH }},
	{"tpm", "tpm", "at most `N` input+output tokens per minute", func(l *adminapi.Limits) *int64 { return &l.TPM }},
	{"concurrency", "conc", "at most `N` requests in flight at once", func(l *adminapi.Limits) *int64 { return &l.Concurrency }},
}

// limitFlagNames lists the limit flags for messages.
const limitFlagNames = "--rps, --rpm, --rph, --tpm, --concurrency, --quota, --budget"

// limitsHelp explains the limit flags of a command that changes existing
// limits (key update, group update).
const limitsHelp = `Only the limits named change; the others stay as they are:

  --rpm 120               sets requests per minute to 120 (--rps, --rph, --tpm
                          and --concurrency work the same way)
  --rpm 0                 removes the requests-per-minute limit
  --quota 5000/day        sets the daily request quota, replacing the one of the
                          same unit (requests or tokens) and period there was
  --quota 0tokens/month   removes the monthly token quota
  --quota none            removes every quota; the other --quota values given
                          are then added
  --budget 50usd/month    sets the monthly budget, replacing the one there was;
                          --budget 0/month removes it, --budget none removes all
  --clear-limits          starts from no limits at all instead of the current ones`

// limitFlags are the flags that set limits, shared by key create, key
// update, group create and group update.
type limitFlags struct {
	cmd     *cobra.Command
	rates   adminapi.Limits // the counts given; only the flags changed count
	quotas  []string
	budgets []string
	clear   bool // --clear-limits, on update commands only
}

// addLimitFlags adds the limit flags to cmd; update adds --clear-limits too.
func addLimitFlags(cmd *cobra.Command, update bool) *limitFlags {
	lf := &limitFlags{cmd: cmd}
	f := cmd.Flags()
	for _, r := range rateLimits {
		f.Int64Var(r.field(&lf.rates), r.flag, 0, r.usage+"; 0 means no limit")
	}
	quotaUsage := "request or token quota `SPEC`: 5000/day, 2000000tokens/month or 100000 (in total); repeat for more"
	budgetUsage := "spend budget `SPEC` in USD: 20usd/month, 2.50usd/day or 100usd (in total); repeat for more"
	if update {
		quotaUsage += "; 0/day removes one, none removes all"
		budgetUsage += "; 0/month removes one, none removes all"
		f.BoolVar(&lf.clear, "clear-limits", false, "start from no limits instead of the current ones")
	}
	f.StringArrayVar(&lf.quotas, "quota", nil, quotaUsage)
	f.StringArrayVar(&lf.budgets, "budget", nil, budgetUsage)
	return lf
}

// limitEdit is a checked change to a set of limits, built from the limit
// flags before any request is made.
type limitEdit struct {
	clear     bool // start from no limits
	rates     adminapi.Limits
	setRates  []func(*adminapi.Limits) *int64 // the rate fields given
	noQuotas  bool                            // --quota none
	noBudgets bool                            // --budget none
	quotas    []quotaEdit
	budgets   []budgetEdit
}

type quotaEdit struct {
	q      adminapi.Quota
	remove bool // 0/day: remove the quota of q's unit and period
}

type budgetEdit struct {
	b      adminapi.Budget
	remove bool // 0/month: remove the budget of b's period
}

// empty reports whether the edit changes nothing.
func (e limitEdit) empty() bool {
	return !e.clear && len(e.setRates) == 0 && !e.noQuotas && !e.noBudgets && len(e.quotas) == 0 && len(e.budgets) == 0
}

// edit checks the limit flags given and returns the change they ask for.
// what names the command in errors, as in "key create".
func (lf *limitFlags) edit(what string) (limitEdit, error) {
	e := limitEdit{clear: lf.clear}
	f := lf.cmd.Flags()
	for _, r := range rateLimits {
		if !f.Changed(r.flag) {
			continue
		}
		v := *r.field(&lf.rates)
		var one adminapi.Limits
		*r.field(&one) = v
		if err := one.Validate(); err != nil {
			return limitEdit{}, fmt.Errorf("%s: --%s: %s", what, r.flag, noPrefix(err))
		}
		*r.field(&e.rates) = v
		e.setRates = append(e.setRates, r.field)
	}
	seen := map[string]string{} // unit/period -> the spec that set it
	for _, s := range lf.quotas {
		if isNone(s) {
			e.noQuotas = true
			continue
		}
		q, remove, err := parseQuotaFlag(s)
		if err != nil {
			return limitEdit{}, fmt.Errorf("%s: --quota: %s", what, noPrefix(err))
		}
		k := q.Unit + " quota per " + q.Period
		if q.Period == adminapi.PeriodTotal {
			k = q.Unit + " quota in total"
		}
		if prev, ok := seen[k]; ok {
			return limitEdit{}, fmt.Errorf("%s: --quota %s and --quota %s both set the %s: give one", what, prev, s, k)
		}
		seen[k] = s
		e.quotas = append(e.quotas, quotaEdit{q: q, remove: remove})
	}
	for _, s := range lf.budgets {
		if isNone(s) {
			e.noBudgets = true
			continue
		}
		b, remove, err := parseBudgetFlag(s)
		if err != nil {
			return limitEdit{}, fmt.Errorf("%s: --budget: %s", what, noPrefix(err))
		}
		k := "budget per " + b.Period
		if b.Period == adminapi.PeriodTotal {
			k = "budget in total"
		}
		if prev, ok := seen[k]; ok {
			return limitEdit{}, fmt.Errorf("%s: --budget %s and --budget %s both set the %s: give one", what, prev, s, k)
		}
		seen[k] = s
		e.budgets = append(e.budgets, budgetEdit{b: b, remove: remove})
	}
	return e, nil
}

// noPrefix drops the "limits: " that adminapi puts before its errors: a
// flag's name says it better on the command line.
func noPrefix(err error) string { return strings.TrimPrefix(err.Error(), "limits: ") }

// apply returns base changed by e. base is not modified.
func (e limitEdit) apply(base adminapi.Limits) adminapi.Limits {
	var l adminapi.Limits
	if !e.clear {
		l = base
		l.Quotas = append([]adminapi.Quota(nil), base.Quotas...)
		l.Budgets = append([]adminapi.Budget(nil), base.Budgets...)
	}
	for _, field := range e.setRates {
		*field(&l) = *field(&e.rates)
	}
	if e.noQuotas {
		l.Quotas = nil
	}
	if e.noBudgets {
		l.Budgets = nil
	}
	for _, qe := range e.quotas {
		i := indexOf(l.Quotas, func(q adminapi.Quota) bool { return q.Unit == qe.q.Unit && q.Period == qe.q.Period })
		switch {
		case qe.remove && i >= 0:
			l.Quotas = append(l.Quotas[:i], l.Quotas[i+1:]...)
		case qe.remove:
		case i >= 0:
			l.Quotas[i] = qe.q
		default:
			l.Quotas = append(l.Quotas, qe.q)
		}
	}
	for _, be := range e.budgets {
		i := indexOf(l.Budgets, func(b adminapi.Budget) bool { return b.Period == be.b.Period })
		switch {
		case be.remove && i >= 0:
			l.Budgets = append(l.Budgets[:i], l.Budgets[i+1:]...)
		case be.remove:
		case i >= 0:
			l.Budgets[i] = be.b
		default:
			l.Budgets = append(l.Budgets, be.b)
		}
	}
	if len(l.Quotas) == 0 {
		l.Quotas = nil
	}
	if len(l.Budgets) == 0 {
		l.Budgets = nil
	}
	return l
}

func indexOf[T any](s []T, match func(T) bool) int {
	for i, v := range s {
		if match(v) {
			return i
		}
	}
	return -1
}

// isNone reports whether a --quota or --budget value asks to remove them all.
func isNone(s string) bool { return strings.EqualFold(strings.TrimSpace(s), "none") }

// parseQuotaFlag reads a --quota value: a quota as adminapi.ParseQuota takes
// it, or one with a count of 0 ("0/day", "0tokens/month"), which asks to
// remove the quota of that unit and period.
func parseQuotaFlag(s string) (q adminapi.Quota, remove bool, err error) {
	q, err = adminapi.ParseQuota(s)
	if err == nil {
		return q, false, nil
	}
	if rest, ok := zeroAmount(strings.TrimSpace(s), "0_"); ok {
		if q, err2 := adminapi.ParseQuota("1" + rest); err2 == nil {
			return q, true, nil
		}
	}
	return adminapi.Quota{}, false, err
}

// parseBudgetFlag reads a --budget value: a budget as adminapi.ParseBudget
// takes it, or one with an amount of 0 ("0usd/month", "0/day"), which asks
// to remove the budget of that period.
func parseBudgetFlag(s string) (b adminapi.Budget, remove bool, err error) {
	b, err = adminapi.ParseBudget(s)
	if err == nil {
		return b, false, nil
	}
	if rest, ok := zeroAmount(strings.TrimPrefix(strings.TrimSpace(s), "$"), "0."); ok {
		if b, err2 := adminapi.ParseBudget("1" + rest); err2 == nil {
			return b, true, nil
		}
	}
	return adminapi.Budget{}, false, err
}

// zeroAmount reports whether s starts with an amount of zero written with
// the characters in zeros, and returns what follows it ("0/day" -> "/day").
func zeroAmount(s, zeros string) (rest string, ok bool) {
	i := 0
	for i < len(s) && strings.IndexByte(zeros, s[i]) >= 0 {
		i++
	}
	v, err := strconv.ParseFloat(strings.ReplaceAll(s[:i], "_", ""), 64)
	if i == 0 || err != nil || v != 0 {
		return "", false
	}
	rest = s[i:]
	if rest != "" && ('0' <= rest[0] && rest[0] <= '9' || rest[0] == '.') {
		return "", false
	}
	return rest, true
}

// fmtLimits renders limits compactly, as in "60rpm 200000tpm 4conc 5000/day
// 20usd/month", or returns none when l limits nothing.
func fmtLimits(l adminapi.Limits, none string) string {
	var parts []string
	for _, r := range rateLimits {
		if v := *r.field(&l); v != 0 {
			parts = append(parts, strconv.FormatInt(v, 10)+r.suffix)
		}
	}
	for _, q := range l.Quotas {
		parts = append(parts, fmtPeriod(q.String(), q.Period))
	}
	for _, b := range l.Budgets {
		parts = append(parts, fmtPeriod(b.String(), b.Period))
	}
	if len(parts) == 0 {
		return none
	}
	return strings.Join(parts, " ")
}

// fmtPeriod spells out a total, which a quota or budget spec leaves
// implicit: "100000" reads as "100000/total", a form the flags also take.
func fmtPeriod(spec, period string) string {
	if period == adminapi.PeriodTotal {
		return spec + "/" + adminapi.PeriodTotal
	}
	return spec
}

// fmtUSD renders millionths of a US dollar as dollars with six decimals, as in $0.000123.
func fmtUSD(micro int64) string {
	sign := ""
	u := uint64(micro)
	if micro < 0 {
		sign, u = "-", uint64(-micro)
	}
	return fmt.Sprintf("%s$%d.%06d", sign, u/1_000_000, u%1_000_000)
}
