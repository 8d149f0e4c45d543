package policy

import (
	"fmt"
	"strings"
)

// Action is what keygate does about a risk finding. Actions are ordered by
// strength: Allow < StepUp < Deny.
type Action uint8

const (
	// Allow lets the request through and only records the finding.
	Allow Action = iota
	// StepUp refuses the request unless the caller proves a second factor
	// (a token whose amr claim includes "otp").
	StepUp
	// Deny refuses the request; no second factor overrides it.
	Deny
)

// String returns "allow", "step-up" or "deny", as ParseAction accepts them.
func (a Action) String() string {
	switch a {
	case Allow:
		return "allow"
	case StepUp:
		return "step-up"
	case Deny:
		return "deny"
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// ParseAction parses "allow", "step-up" or "deny", in any case.
func ParseAction(s string) (Action, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "allow":
		return Allow, nil
	case "step-up":
		return StepUp, nil
	case "deny":
		return Deny, nil
	}
	return 0, fmt.Errorf(`policy: unknown action %q; use "allow", "step-up" or "deny"`, s)
}

// MarshalText encodes the action as its String form, for configuration files.
func (a Action) MarshalText() ([]byte, error) {
	if a > Deny {
		return nil, fmt.Errorf("policy: cannot encode unknown %s; use Allow, StepUp or Deny", a)
	}
	return []byte(a.String()), nil
}

// UnmarshalText parses an action written as ParseAction accepts it.
func (a *Action) UnmarshalText(b []byte) error {
	v, err := ParseAction(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// effective returns the action keygate applies: an unknown value counts as
// Deny, so a damaged rule fails closed.
func (a Action) effective() Action { return min(a, Deny) }
