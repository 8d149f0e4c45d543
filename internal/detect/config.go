package detect

import (
	"errors"
	"fmt"
	"time"
)

// Config tunes the detectors. The zero value of any field means its default; see DefaultConfig.
type Config struct {
	// Rate tunes the rate-spike rule.
	Rate RateConfig
	// Shift tunes the resource-shift rule.
	Shift ShiftConfig
	// Auth tunes the failed-authentication burst rules.
	Auth AuthConfig
	// Spend tunes the spend-velocity rule.
	Spend SpendConfig
	// Loop tunes the runaway-agent rules: a key repeating itself, or its context growing
	// without end.
	Loop LoopConfig
	// Limits bounds how many alerts are sent.
	Limits LimitConfig

	// Actions maps a rule name to ActionNotify (the default), ActionSuspend or ActionStepUp.
	Actions map[string]string
	// Act is called for each raised alert whose rule maps to an action other than notify, even
	// when the notification itself is rate limited. keygate's caller suspends the key or demands
	// step-up authentication there. It must not block.
	Act func(a Alert, action string)
	// IdleEvict drops the state of a key, client or prefix that has been quiet this long
	// (default 1 h). Its baselines form again when it comes back.
	IdleEvict time.Duration
	// EventsPerAlert bounds Alert.Events (default 16 most recent events).
	EventsPerAlert int
}

// RateConfig tunes the per-key rate-spike rule. It judges two windows of a key's requests
// together, the long Window and the ShortWindow, each against the key's baseline, or against
// a prior when the key has too little recent history for a baseline of its own.
type RateConfig struct {
	// Window is the long window whose rate is compared with the baseline (default 10 s).
	Window time.Duration
	// ShortWindow is the short window, judged alongside Window so that a jump alerts within a
	// second of its start (default 2 s). Its rate must also exceed Factor times Floor, and its
	// count twice the key's usual burst (its largest short-window count lately). A ShortWindow
	// no shorter than Window turns it off.
	ShortWindow time.Duration
	// History is how much recent activity, in seconds of baseline buckets in which the key made
	// a request (decayed like the baseline), its own baseline needs before the key is judged by
	// it (default 5 min). A key with less is judged against the largest of Floor, the fleet's
	// typical per-key rate (the median baseline of the keys with history) and LimitShare of its
	// configured request-rate limit, never against the near-zero baseline of an idle key.
	History time.Duration
	// LimitShare is the share of a key's configured request-rate limit taken as its usual rate
	// while it has little history (default 0.1: with Factor 6, alert above 60% of the limit).
	LimitShare float64
	// Bucket is the baseline's bucket (default 10 s).
	Bucket time.Duration
	// BaselineWindow is the EWMA's span over buckets (default 10 min): alpha = Bucket/BaselineWindow.
	BaselineWindow time.Duration
	// Forming is how much of a key's history the baseline needs before the rule alerts (default 5 min).
	Forming time.Duration
	// Factor: alert when the short rate exceeds Factor times the baseline (default 6).
	Factor float64
	// Floor: and the short rate exceeds Floor requests per second (default 1).
	Floor float64
	// RecoverAfter is how long the condition must stay clear before a recovery notice (default 30 s).
	RecoverAfter time.Duration
}

// ShiftConfig tunes the per-key resource-distribution rule. It compares the mix of
// (provider, model, path) in the last Window with the key's decayed history using the
// Jensen–Shannon divergence with base-2 logarithms, which lies in [0, 1]: 0 for the same mix,
// 1 for mixes with nothing in common.
type ShiftConfig struct {
	// Window is the recent window (default 1 min), evaluated every Window/6.
	Window time.Duration
	// BaselineWindow is the decay span of the baseline counts (default 10 min).
	BaselineWindow time.Duration
	// Forming is how much history the baseline needs before the rule alerts (default 5 min).
	Forming time.Duration
	// Threshold is the divergence above which the rule alerts (default 0.5).
	Threshold float64
	// MinRequests is the least number of requests in the window for the rule to judge (default 30).
	MinRequests int
	// MaxResources bounds the distinct resources tracked per key; the rest share one bucket (default 32).
	MaxResources int
	// RecoverAfter is how long the condition must stay clear before a recovery notice (default 1 min).
	RecoverAfter time.Duration
}

// AuthConfig tunes the failed-authentication burst rules (per client address and per key prefix).
type AuthConfig struct {
	// Window is the counting window (default 1 min).
	Window time.Duration
	// Max: alert when more than Max failures fall in the window (default 20).
	Max int
	// RecoverAfter is how long the condition must stay clear before a recovery notice (default 1 min).
	RecoverAfter time.Duration
}

// SpendConfig tunes the per-key spend-velocity rule, which applies to keys with a budget.
type SpendConfig struct {
	// Window is the recent window whose spend rate is extrapolated (default 10 min).
	Window time.Duration
	// BaselineWindow is the EWMA span of the usual spend rate (default 1 h).
	BaselineWindow time.Duration
	// Forming is how much history, before the window, the baseline needs (default 5 min).
	Forming time.Duration
	// Horizon: alert when the remaining budget would last less than this at the window's rate (default 1 h).
	Horizon time.Duration
	// Factor: and the window's rate exceeds Factor times the usual rate (default 4).
	Factor float64
	// RecoverAfter is how long the condition must stay clear before a recovery notice (default 1 min).
	RecoverAfter time.Duration
}

// LoopConfig tunes the runaway-agent rules. An agent stuck in a loop sends requests whose
// conversations end alike (the same step, the same tool result) over and over; one that never
// compacts its context sends ever larger ones.
type LoopConfig struct {
	// Repeats: alert (RuleLoop) when this many of a key's requests within Window end their
	// conversation alike (default 10). A negative value turns the rule off.
	Repeats int
	// Window is how far back repeats are counted (default 10 min).
	Window time.Duration
	// ContextTokens: alert (RuleContextGrowth) when a request of the key read at least this
	// much context (default 150,000 tokens) after its context grew with each of its last
	// Growing requests. A negative value turns the rule off.
	ContextTokens int64
	// Growing is how many requests in a row the context must have grown (default 20).
	Growing int
}

// LimitConfig bounds how many alerts keygate sends.
type LimitConfig struct {
	// PerMinute is the most alerts sent per minute overall (default 60); the rest are counted
	// and reported in one RuleAlertsSuppressed alert when the minute ends.
	PerMinute int
	// RiskQuiet is how long a pass-through risk finding stays active after its last occurrence;
	// repeats within it are not re-alerted, and a recovery notice follows it (default 10 min).
	RiskQuiet time.Duration
}

// DefaultConfig returns the configuration every zero field falls back to.
func DefaultConfig() Config {
	return Config{
		Rate: RateConfig{Window: 10 * time.Second, ShortWindow: 2 * time.Second, History: 5 * time.Minute, LimitShare: 0.1,
			Bucket: 10 * time.Second, BaselineWindow: 10 * time.Minute, Forming: 5 * time.Minute, Factor: 6, Floor: 1,
			RecoverAfter: 30 * time.Second},
		Shift: ShiftConfig{Window: time.Minute, BaselineWindow: 10 * time.Minute, Forming: 5 * time.Minute,
			Threshold: 0.5, MinRequests: 30, MaxResources: 32, RecoverAfter: time.Minute},
		Auth: AuthConfig{Window: time.Minute, Max: 20, RecoverAfter: time.Minute},
		Spend: SpendConfig{Window: 10 * time.Minute, BaselineWindow: time.Hour, Forming: 5 * time.Minute,
			Horizon: time.Hour, Factor: 4, RecoverAfter: time.Minute},
		Loop:           LoopConfig{Repeats: 10, Window: 10 * time.Minute, ContextTokens: 150_000, Growing: 20},
		Limits:         LimitConfig{PerMinute: 60, RiskQuiet: 10 * time.Minute},
		IdleEvict:      time.Hour,
		EventsPerAlert: 16,
	}
}

func orDur(v *time.Duration, d time.Duration) {
	if *v == 0 {
		*v = d
	}
}

func orF(v *float64, d float64) {
	if *v == 0 {
		*v = d
	}
}

func orI(v *int, d int) {
	if *v == 0 {
		*v = d
	}
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	orDur(&c.Rate.Window, d.Rate.Window)
	orDur(&c.Rate.ShortWindow, d.Rate.ShortWindow)
	orDur(&c.Rate.History, d.Rate.History)
	orF(&c.Rate.LimitShare, d.Rate.LimitShare)
	orDur(&c.Rate.Bucket, d.Rate.Bucket)
	orDur(&c.Rate.BaselineWindow, d.Rate.BaselineWindow)
	orDur(&c.Rate.Forming, d.Rate.Forming)
	orF(&c.Rate.Factor, d.Rate.Factor)
	orF(&c.Rate.Floor, d.Rate.Floor)
	orDur(&c.Rate.RecoverAfter, d.Rate.RecoverAfter)
	orDur(&c.Shift.Window, d.Shift.Window)
	orDur(&c.Shift.BaselineWindow, d.Shift.BaselineWindow)
	orDur(&c.Shift.Forming, d.Shift.Forming)
	orF(&c.Shift.Threshold, d.Shift.Threshold)
	orI(&c.Shift.MinRequests, d.Shift.MinRequests)
	orI(&c.Shift.MaxResources, d.Shift.MaxResources)
	orDur(&c.Shift.RecoverAfter, d.Shift.RecoverAfter)
	orDur(&c.Auth.Window, d.Auth.Window)
	orI(&c.Auth.Max, d.Auth.Max)
	orDur(&c.Auth.RecoverAfter, d.Auth.RecoverAfter)
	orDur(&c.Spend.Window, d.Spend.Window)
	orDur(&c.Spend.BaselineWindow, d.Spend.BaselineWindow)
	orDur(&c.Spend.Forming, d.Spend.Forming)
	orDur(&c.Spend.Horizon, d.Spend.Horizon)
	orF(&c.Spend.Factor, d.Spend.Factor)
	orDur(&c.Spend.RecoverAfter, d.Spend.RecoverAfter)
	orI(&c.Loop.Repeats, d.Loop.Repeats)
	orDur(&c.Loop.Window, d.Loop.Window)
	if c.Loop.ContextTokens == 0 {
		c.Loop.ContextTokens = d.Loop.ContextTokens
	}
	orI(&c.Loop.Growing, d.Loop.Growing)
	orI(&c.Limits.PerMinute, d.Limits.PerMinute)
	orDur(&c.Limits.RiskQuiet, d.Limits.RiskQuiet)
	orDur(&c.IdleEvict, d.IdleEvict)
	orI(&c.EventsPerAlert, d.EventsPerAlert)
	return c
}

// Validate reports the first setting that cannot work, after defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	durs := []struct {
		name string
		d    time.Duration
	}{
		{"rate window", c.Rate.Window}, {"rate short window", c.Rate.ShortWindow}, {"rate history", c.Rate.History},
		{"rate bucket", c.Rate.Bucket},
		{"rate baseline window", c.Rate.BaselineWindow}, {"rate forming", c.Rate.Forming},
		{"rate recover-after", c.Rate.RecoverAfter},
		{"shift window", c.Shift.Window}, {"shift baseline window", c.Shift.BaselineWindow},
		{"shift forming", c.Shift.Forming}, {"shift recover-after", c.Shift.RecoverAfter},
		{"auth window", c.Auth.Window}, {"auth recover-after", c.Auth.RecoverAfter},
		{"spend window", c.Spend.Window}, {"spend baseline window", c.Spend.BaselineWindow},
		{"spend forming", c.Spend.Forming}, {"spend horizon", c.Spend.Horizon},
		{"spend recover-after", c.Spend.RecoverAfter},
		{"risk quiet", c.Limits.RiskQuiet}, {"idle evict", c.IdleEvict}, {"loop window", c.Loop.Window},
	}
	for _, d := range durs {
		if d.d < time.Second {
			errs = append(errs, fmt.Errorf("detect config: %s is %v, want at least 1s", d.name, d.d))
		}
	}
	if c.Rate.Bucket > c.Rate.BaselineWindow {
		errs = append(errs, fmt.Errorf("detect config: rate bucket %v is longer than the baseline window %v", c.Rate.Bucket, c.Rate.BaselineWindow))
	}
	if c.Rate.LimitShare < 0 || c.Rate.LimitShare > 1 {
		errs = append(errs, fmt.Errorf("detect config: rate limit share %v is outside (0, 1]", c.Rate.LimitShare))
	}
	if c.Shift.Window < 6*time.Second {
		errs = append(errs, fmt.Errorf("detect config: shift window %v is shorter than 6s", c.Shift.Window))
	}
	if c.Rate.Factor < 1 || c.Spend.Factor < 1 {
		errs = append(errs, fmt.Errorf("detect config: rate factor %v and spend factor %v must be at least 1", c.Rate.Factor, c.Spend.Factor))
	}
	if c.Shift.Threshold <= 0 || c.Shift.Threshold >= 1 {
		errs = append(errs, fmt.Errorf("detect config: shift threshold %v is outside (0, 1)", c.Shift.Threshold))
	}
	if c.Loop.Repeats == 1 || c.Loop.Growing < 1 {
		errs = append(errs, fmt.Errorf("detect config: loop repeats %d must be at least 2 (or negative: off), and growing %d at least 1", c.Loop.Repeats, c.Loop.Growing))
	}
	if c.Rate.Floor < 0 || c.Auth.Max < 0 || c.Shift.MinRequests < 0 || c.Shift.MaxResources < 0 ||
		c.Limits.PerMinute < 0 || c.EventsPerAlert < 0 {
		errs = append(errs, errors.New("detect config: a count or floor is negative"))
	}
	for rule, act := range c.Actions {
		switch act {
		case ActionNotify, ActionSuspend, ActionStepUp:
		default:
			errs = append(errs, fmt.Errorf("detect config: rule %q has action %q, want notify, suspend or step-up", rule, act))
		}
	}
	return errors.Join(errs...)
}
