package adminapi

import (
	"fmt"
	"time"

	"github.com/keygate/keygate/internal/limitspec"
)

// Limits, Quota and Budget are limitspec's: the admin API and the data
// plane share the one definition of what a key may consume.
type (
	// Limits are what a keygate key, or a group of keys, may consume.
	Limits = limitspec.Limits
	// Quota caps requests or tokens per period.
	Quota = limitspec.Quota
	// Budget caps spend per period, in micro-dollars.
	Budget = limitspec.Budget
)

// Periods and units of quotas and budgets.
const (
	PeriodDay    = limitspec.PeriodDay
	PeriodMonth  = limitspec.PeriodMonth
	PeriodTotal  = limitspec.PeriodTotal
	UnitRequests = limitspec.UnitRequests
	UnitTokens   = limitspec.UnitTokens
)

// ParseQuota reads a quota as the CLI takes it; see limitspec.ParseQuota.
func ParseQuota(s string) (Quota, error) { return limitspec.ParseQuota(s) }

// ParseBudget reads a budget as the CLI takes it; see limitspec.ParseBudget.
func ParseBudget(s string) (Budget, error) { return limitspec.ParseBudget(s) }

// UpdateKeyRequest changes a live key: PATCH /api/v1/keys/{ref}. Absent
// fields are left as they are.
type UpdateKeyRequest struct {
	Limits     *Limits   `json:"limits,omitempty"`      // replaces the key's limits; {} removes them all
	Group      *string   `json:"group,omitempty"`       // "" takes the key out of its group
	AllowPaths *[]string `json:"allow_paths,omitempty"` // replaces the path rules; [] allows any path
	// AllowServices replaces the passthrough services the key may reach;
	// [] reaches none.
	AllowServices *[]string `json:"allow_services,omitempty"`
	// AllowTools replaces the MCP tools the key may call; [] calls none.
	AllowTools *[]string `json:"allow_tools,omitempty"`
	AllowIPs   *[]string `json:"allow_ips,omitempty"`   // replaces the networks; [] allows any address
	Hours      *string   `json:"hours,omitempty"`       // replaces the time windows; "" allows any time
	Rotation   *Rotation `json:"rotation,omitempty"`    // replaces the rotation policy; {"every":""} turns it off
	ClientCert *string   `json:"client_cert,omitempty"` // replaces the client certificate rule; "" requires none
	// LeakAction sets what the outbound credential check does with the
	// key's requests and answers: block, redact or alert; "" follows the
	// global leaks: policy.
	LeakAction *string `json:"leak_action,omitempty"`
}

// ValidLeakAction checks a key's or a team's leak action.
func ValidLeakAction(a string) error {
	switch a {
	case "", "block", "redact", "alert":
		return nil
	}
	return fmt.Errorf("leak_action %q must be block, redact or alert (or empty, for the global leaks: policy)", a)
}

// RotateKeyRequest issues a successor to a key: POST /api/v1/keys/{ref}/rotate.
type RotateKeyRequest struct {
	// Grace is how long the old key keeps working, such as 24h; default 24h.
	// It never extends the old key past its own expiry.
	Grace string `json:"grace,omitempty"`
}

// RotatedKey answers a rotation: the successor, shown once, and the old key
// with its new expiry.
type RotatedKey struct {
	Key      Key    `json:"key"`
	Secret   string `json:"secret"`
	Previous Key    `json:"previous"`
}

// AWSCredentials is the AWS access key pair bound to a keygate key: a
// Bedrock client that signs with SigV4 (an AWS SDK, Claude Code's Bedrock
// mode) uses it in place of AWS's own, and keygate treats its requests as
// the key's. It works only while the key does.
type AWSCredentials struct {
	KeyID           string `json:"key_id"`
	KeyName         string `json:"key_name"`
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
}

// Group is a named set of limits that every key in it shares, such as a
// team's or a project's.
type Group struct {
	Name      string    `json:"name"`
	Limits    Limits    `json:"limits"`
	Keys      int       `json:"keys"` // how many keys are in it
	CreatedAt time.Time `json:"created_at"`
}

// GroupRequest creates (POST /api/v1/groups) or updates
// (PATCH /api/v1/groups/{name}) a group.
type GroupRequest struct {
	Name   string `json:"name,omitempty"` // create only
	Limits Limits `json:"limits"`
}

// GroupList answers GET /api/v1/groups.
type GroupList struct {
	Groups []Group `json:"groups"`
}

// UsageRow is one key's consumption of one model on one day.
type UsageRow struct {
	Date         string `json:"date"` // YYYY-MM-DD in keygate's limits time zone
	Model        string `json:"model"`
	Requests     int64  `json:"requests"`
	InputTokens  int64  `json:"input_tokens"`
	OutputTokens int64  `json:"output_tokens"`
	MicroUSD     int64  `json:"micro_usd"`
	Denials      int64  `json:"denials"`
}

// KeyUsage answers GET /api/v1/keys/{ref}/usage?days=N.
type KeyUsage struct {
	Key  Key        `json:"key"`
	Rows []UsageRow `json:"rows"` // newest day first, then by model
}
