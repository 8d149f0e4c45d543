// Package principal is who a data-plane request is made by: a keygate key
// (or the key behind an access token) compiled once per version into what
// every step of the gateway needs (its allowances for authorization, its
// path, network and hour rules parsed, the checks its limits and its
// group's take, its lifecycle state), so no step parses a stored row per
// request and the data plane never touches the store's or the admin API's
// types. internal/keysource compiles principals from the store and caches
// them; this package has no dependency on either.
package principal

import (
	"errors"
	"net/netip"
	"time"

	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/limit"
	"github.com/keygate/keygate/internal/policy"
)

// Principal is a keygate key, compiled. It is immutable once built and
// shared by every request of the key: callers must not modify it.
type Principal struct {
	ID     string // the key's id, key_...
	Name   string // the key's name
	Env    string // the environment tag of its kg_<env>_ prefix
	Prefix string // the part of the key safe to display, kg_live_4fTq
	Group  string // the group whose limits the key also obeys; "" none
	// User is the user the key belongs to: its owner within its team,
	// or, for a key of no team, the user who created it; "" for a team's
	// shared key or a key of no user. MCP servers that act for a person
	// are reached with this user's own authorization.
	User string

	// Grant is what the key may reach (internal/authz decides).
	Grant authz.Grant

	// Lifecycle: a revoked, expired or suspended key is refused; one
	// under step-up needs an access token minted with a second factor.
	Revoked     bool
	ExpiresAt   time.Time // zero: never
	SuspendedAt time.Time // zero: not suspended
	StepUpUntil time.Time // zero: no second factor owed
	// ClientCert is the client certificate the key must be used with:
	// "uri:SPIFFE-ID" or "cn:NAME"; "" for none.
	ClientCert string
	// LeakAction is what the outbound credential check does with the
	// key's requests and answers ("block", "redact", "alert"), overriding
	// the global policy; "" follows it.
	LeakAction string

	// Scope is where, how and when the key may be used.
	Scope Scope
	// Plan is the checks the key's limits and its group's take.
	Plan Plan
}

// Scope is a key's API paths and methods, client networks and hours.
type Scope struct {
	Paths []policy.PathRule
	IPs   []netip.Prefix
	Hours policy.Windows
	// Restricted reports whether any of them is set.
	Restricted bool
	// Err is set when the stored rules cannot be read: the key is refused
	// until its administrator sets them again.
	Err error
}

// ErrSuspended means the key is suspended.
var ErrSuspended = errors.New("the key is suspended")

// Expired reports whether the key is past its expiry at now.
func (p *Principal) Expired(now time.Time) bool {
	return !p.ExpiresAt.IsZero() && !now.Before(p.ExpiresAt)
}

// Suspended reports whether the key is suspended.
func (p *Principal) Suspended() bool { return !p.SuspendedAt.IsZero() }

// StepUpOwed reports whether, at now, the key's requests need an access
// token minted with a second factor.
func (p *Principal) StepUpOwed(now time.Time) bool {
	return !p.StepUpUntil.IsZero() && now.Before(p.StepUpUntil)
}

// CostKind says what a limit check is charged in.
type CostKind uint8

// The kinds of cost a check is charged in.
const (
	CostRequest CostKind = iota + 1 // one per request
	CostTokens                      // input + output tokens
	CostMoney                       // micro-dollars
	CostNone                        // concurrency: a slot, not an amount
)

// Plan is the checks one key (and its group, and an access token's own
// limits) needs; the gateway fills in each check's cost per request.
type Plan struct {
	Checks []limit.Check
	Kinds  []CostKind // per check
	// HasBudget reports a spend budget: a request on a model without a
	// price is refused rather than run unmetered.
	HasBudget bool
	// NeedsShared reports quotas or budgets, which never fall back to this
	// node's counters when the shared limiter is unreachable.
	NeedsShared bool
	// Err is set when stored limits cannot be read: the key is refused
	// until its administrator sets them again.
	Err error
}

// Empty reports whether the plan checks nothing.
func (p *Plan) Empty() bool { return len(p.Checks) == 0 }
