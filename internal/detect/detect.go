// Package detect watches keygate's stream of request observations for anomalies (rate spikes,
// shifts in what a key is used for, failed-auth bursts, fast spending, risk findings), raises
// alerts with the numbers that tripped them, and delivers those alerts to webhooks, Slack and
// syslog. Detectors run in process; Observe is cheap enough to sit on the request path.
package detect

import (
	"time"
)

// Observation is one settled request, or one failed authentication, as seen by the detectors.
// It is built from an audit event and carries no secret.
type Observation struct {
	// At is when the request happened.
	At time.Time
	// KeyID identifies the keygate key that made the request; empty for failed authentication.
	KeyID string
	// KeyPrefix is the public, non-secret prefix of the credential presented in a failed
	// authentication, so a burst against one key can be seen across client addresses.
	KeyPrefix string
	// Client is the client's address.
	Client string
	// AuthFailed marks a failed authentication.
	AuthFailed bool
	// Model, Provider and Path name the resource the request used.
	Model, Provider, Path string
	// MicroUSD is the request's cost in millionths of a US dollar.
	MicroUSD int64
	// BudgetMicroUSD is the key's budget for the current period, 0 if the key has none.
	BudgetMicroUSD int64
	// SpentMicroUSD is the key's spend so far in the budget period, including this request,
	// 0 if unknown. When unknown, the spend-velocity rule counts the spend it has observed.
	SpentMicroUSD int64
	// Risk is "" or the name of a risk-rule finding such as "impossible-travel" or "unusual-hour".
	Risk string
	// LimitRPS is the key's tightest configured request-rate limit in requests a second (an
	// rpm limit of 600 is 10), 0 if it has none. A key with little history is judged against
	// a share of it rather than against its own thin baseline.
	LimitRPS float64
	// Turn identifies the end of the request's conversation (a keyed hash of its last turns),
	// 0 for none: a key whose requests keep ending alike is in a loop.
	Turn uint64
	// ContextTokens is how much context the model read for the request (input tokens, cached
	// ones included), 0 if unknown.
	ContextTokens int64
	// Tool names the MCP tool ("server/tool") of a tool call, "" for any other request; a
	// tool call also carries the server as Provider and the tool as Model.
	Tool string
	// ToolDenied marks a tool call keygate refused.
	ToolDenied bool
	// ToolOpenWorld marks a tool whose results come from outside (its
	// server declares openWorldHint: a web fetch, a search, a mailbox):
	// what it returns may carry instructions no one trusted.
	ToolOpenWorld bool
	// ToolDestructive marks a tool that changes or deletes (its server
	// declares destructiveHint, or keygate's operator made its calls wait
	// for approval).
	ToolDestructive bool
	// RefreshReuse marks a refresh token presented a second time (its family is revoked).
	RefreshReuse bool
	// EventSeq is the sequence number of the audit event the observation came from.
	EventSeq uint64
}

// Alert is one finding, or the notice that an earlier finding is over (Recovered).
type Alert struct {
	// ID is unique per alert.
	ID string `json:"id"`
	// At is when the alert was raised.
	At time.Time `json:"at"`
	// Rule names the detector or risk finding, e.g. RuleRateSpike or "impossible-travel".
	Rule string `json:"rule"`
	// KeyID is the keygate key concerned, if any.
	KeyID string `json:"key_id,omitempty"`
	// KeyPrefix is the public credential prefix concerned, for failed-auth bursts by prefix.
	KeyPrefix string `json:"key_prefix,omitempty"`
	// Client is the client address concerned, if any.
	Client string `json:"client,omitempty"`
	// Severity is one of SeverityInfo, SeverityLow, SeverityMedium, SeverityHigh.
	Severity string `json:"severity"`
	// Summary is one line with the numbers that tripped the rule.
	Summary string `json:"summary"`
	// Numbers holds the same numbers by name, for machines.
	Numbers map[string]float64 `json:"numbers,omitempty"`
	// Events lists the sequence numbers of (the most recent) audit events that led to the alert.
	Events []uint64 `json:"events,omitempty"`
	// Recovered marks a notice that the condition of an earlier alert is over.
	Recovered bool `json:"recovered,omitempty"`
}

// Rule names of the built-in detectors. Pass-through risk findings use the finding's own name,
// refresh-token reuse uses RuleRefreshReuse, and a one-time-password lockout RuleOTPBruteForce.
const (
	RuleRateSpike      = "rate-spike"
	RuleResourceShift  = "resource-shift"
	RuleAuthFailClient = "auth-failures-client"
	RuleAuthFailPrefix = "auth-failures-prefix"
	RuleSpendVelocity  = "spend-velocity"
	RuleRefreshReuse   = "refresh-reuse"
	RuleLoop           = "agent-loop"
	RuleContextGrowth  = "context-growth"
	RuleNewTool        = "new-tool"
	// RuleDestructiveAfterUntrusted: a destructive tool called soon after
	// the key read an open-world tool's result, the shape of a prompt
	// injection carried out (tools.go).
	RuleDestructiveAfterUntrusted = "destructive-after-untrusted"
	RuleOTPBruteForce             = "otp-brute-force"
	RuleAlertsSuppressed          = "alerts-suppressed"
)

// Severities an Alert can carry.
const (
	SeverityInfo   = "info"
	SeverityLow    = "low"
	SeverityMedium = "medium"
	SeverityHigh   = "high"
)

// Actions a rule can be mapped to in Config.Actions.
const (
	ActionNotify  = "notify"
	ActionSuspend = "suspend"
	ActionStepUp  = "step-up"
)
