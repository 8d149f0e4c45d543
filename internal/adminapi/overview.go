package adminapi

import "time"

// Overview answers GET /api/v1/overview: what the keys a caller may see
// did lately. Sums cover only those keys; a caller who sees every key
// also sees failed authentications, which belong to no key.
type Overview struct {
	GeneratedAt time.Time `json:"generated_at"`
	// Windows are the last hour (from the audit trail), today and this
	// month (from usage, in keygate's limits time zone).
	Windows []OverviewWindow `json:"windows"`
	// Minutes are the last hour in 5-minute steps, Hours the last day in
	// hours (both from the audit trail), Days the last 30 days (usage).
	Minutes []OverviewPoint `json:"minutes"`
	Hours   []OverviewPoint `json:"hours"`
	Days    []OverviewPoint `json:"days"`
	// Partial says the last day held more events than the overview reads
	// (10,000, newest first): Hours and RefusalReasons cover only those.
	Partial bool `json:"partial,omitempty"`
	// RefusalReasons counts the last day's refusals by reason, most first.
	RefusalReasons []Count `json:"refusal_reasons"`
	// ByModel and ByTeam are the last 30 days' usage, most spend first.
	ByModel []Breakdown `json:"by_model"`
	ByTeam  []Breakdown `json:"by_team"`
	// TopKeys are the ten keys that spent most in the last 30 days.
	TopKeys []KeySpend `json:"top_keys"`
	// NearLimit are keys at 80% or more of a daily or monthly budget or
	// quota; Unused are live keys unused for 30 days (UnusedCount in all,
	// the first 20 listed).
	NearLimit   []LimitUse `json:"near_limit"`
	Unused      []KeyRef   `json:"unused"`
	UnusedCount int        `json:"unused_count"`
	// OpenAlerts are the last 30 days' alerts not resolved, when the
	// caller may read alerts.
	OpenAlerts []Alert `json:"open_alerts"`
}

// OverviewWindow sums one window.
type OverviewWindow struct {
	Name     string `json:"name"` // hour, day or month
	Requests int64  `json:"requests"`
	Refusals int64  `json:"refusals"`
	MicroUSD int64  `json:"micro_usd"`
	Alerts   int64  `json:"alerts"`
}

// OverviewPoint is one step of a chart.
type OverviewPoint struct {
	At       time.Time `json:"at"`
	Requests int64     `json:"requests"`
	Refusals int64     `json:"refusals"`
	MicroUSD int64     `json:"micro_usd"`
}

// Count is how often something happened.
type Count struct {
	Name  string `json:"name"`
	Count int64  `json:"count"`
}

// Breakdown is usage summed under one name (a model, a team).
type Breakdown struct {
	Name     string `json:"name"`
	Requests int64  `json:"requests"`
	Refusals int64  `json:"refusals"`
	MicroUSD int64  `json:"micro_usd"`
}

// KeyRef names a key.
type KeyRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Team string `json:"team,omitempty"`
}

// KeySpend is a key's usage over a window.
type KeySpend struct {
	KeyRef
	Requests int64 `json:"requests"`
	Refusals int64 `json:"refusals"`
	MicroUSD int64 `json:"micro_usd"`
}

// LimitUse is how much of one limit a key has used.
type LimitUse struct {
	KeyRef
	Limit   string  `json:"limit"` // such as "budget $5.00/day" or "quota 1000 requests/month"
	Used    int64   `json:"used"`
	Of      int64   `json:"of"`
	Percent float64 `json:"percent"`
}

// Alert is one alert raised by keygate's detectors, with its state.
type Alert struct {
	ID       string    `json:"id"`
	At       time.Time `json:"at"`
	Rule     string    `json:"rule"`
	Severity string    `json:"severity"`
	Summary  string    `json:"summary"`
	KeyID    string    `json:"key_id,omitempty"`
	KeyName  string    `json:"key_name,omitempty"`
	Client   string    `json:"client,omitempty"`
	// State is open, acknowledged or resolved; By and StateAt say who
	// changed it last and when.
	State   string     `json:"state"`
	By      string     `json:"by,omitempty"`
	StateAt *time.Time `json:"state_at,omitempty"`
}

// AlertList answers GET /api/v1/alerts?state=open|all: the last 30 days'
// alerts, newest first.
type AlertList struct {
	Alerts []Alert `json:"alerts"`
}

// KeyEvents answers GET /api/v1/keys/{ref}/events: a key's newest audit
// events (requests and refusals), newest first, as stored.
type KeyEvents struct {
	Events []AuditEvent `json:"events"`
}

// AuditEvent is one audit event as the trail holds it.
type AuditEvent struct {
	Seq      uint64            `json:"seq"`
	Time     time.Time         `json:"time"`
	Type     string            `json:"type"`
	Actor    string            `json:"actor,omitempty"`
	KeyID    string            `json:"key_id,omitempty"`
	Client   string            `json:"client,omitempty"`
	Resource string            `json:"resource,omitempty"`
	Decision string            `json:"decision,omitempty"`
	Reasons  []string          `json:"reasons,omitempty"`
	Fields   map[string]string `json:"fields,omitempty"`
	Hash     string            `json:"hash,omitempty"`
}

// StepUpRequest asks POST /api/v1/keys/{ref}/step-up to require a second
// factor on the key's requests for a while (default 24h).
type StepUpRequest struct {
	For string `json:"for,omitempty"`
}
