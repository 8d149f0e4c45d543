package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/rbac"
)

// Approvals configures two-person approval of sensitive admin actions.
type Approvals struct {
	// RequiredFor lists the permissions whose requests wait for a second
	// person's approval, such as secrets.read_value, backup.export,
	// vault.rotate_kek and providers.write.
	RequiredFor []string `yaml:"required_for"`
	// TTL is how long a request waits for a decision, and an approved one
	// for its use (default 1h).
	TTL time.Duration `yaml:"ttl"`
}

// RoleTable builds the role table: the built-in roles and the custom ones
// of roles:, each a role name and the permissions it grants ("keys.read",
// or "keys.update:own" for the holder's own keys only).
func (c Config) RoleTable() (*rbac.Table, error) {
	t, err := rbac.NewTable(c.Roles)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return t, nil
}

// ApprovalPermissions returns approvals.required_for as permissions.
func (c Config) ApprovalPermissions() []rbac.Permission {
	out := make([]rbac.Permission, 0, len(c.Approvals.RequiredFor))
	for _, p := range c.Approvals.RequiredFor {
		out = append(out, rbac.Permission(strings.TrimSpace(p)))
	}
	return out
}

// validatePeople checks roles: and approvals:, naming what is at fault.
func (c Config) validatePeople() []error {
	var errs []error
	if _, err := c.RoleTable(); err != nil {
		errs = append(errs, err)
	}
	for _, p := range c.ApprovalPermissions() {
		if !rbac.Known(p) {
			if _, err := rbac.ParseGrant(string(p)); err != nil {
				errs = append(errs, fmt.Errorf("config: approvals.required_for: %w", err))
			} else {
				errs = append(errs, fmt.Errorf("config: approvals.required_for: %q: name a permission, without :own", p))
			}
		}
	}
	if c.Approvals.TTL < 0 {
		errs = append(errs, fmt.Errorf("config: approvals.ttl: must not be negative"))
	}
	return errs
}
