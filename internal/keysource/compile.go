package keysource

import (
	"fmt"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/policy"
	"github.com/keygate/keygate/internal/principal"
	"github.com/keygate/keygate/internal/store"
)

// Compile builds the principal of a stored key: its allowances, its scope
// rules parsed, the limit checks of the key and of its group (whose
// limits, JSON, are groupLimits), with quota and budget days and months
// starting in loc. Rules or limits that cannot be read do not fail the
// compilation: they are kept as the principal's errors, so the gateway
// refuses the key's requests saying what to fix.
func Compile(k store.Key, groupLimits []byte, loc *time.Location) *principal.Principal {
	p := &principal.Principal{
		ID: k.ID, Name: k.Name, Env: k.Env, Prefix: k.Prefix, Group: k.Group,
		Grant:      authz.Grant{Env: k.Env, Providers: k.AllowProviders, Models: k.AllowModels, Services: k.AllowServices, Tools: k.AllowTools},
		Revoked:    k.RevokedAt != nil,
		ClientCert: k.ClientCert,
		LeakAction: k.LeakAction,
	}
	// A key acts for a person when it is one's own: its owner within its
	// team, or, outside teams, the user who created it. A team's shared
	// key acts for no one.
	p.User = k.Owner
	if p.User == "" && k.Team == "" && strings.HasPrefix(k.CreatedBy, "usr_") {
		p.User = k.CreatedBy
	}
	if k.ExpiresAt != nil {
		p.ExpiresAt = *k.ExpiresAt
	}
	if k.SuspendedAt != nil {
		p.SuspendedAt = *k.SuspendedAt
	}
	if k.StepUpUntil != nil {
		p.StepUpUntil = *k.StepUpUntil
	}
	sc := &p.Scope
	sc.Restricted = len(k.AllowPaths) > 0 || len(k.AllowIPs) > 0 || k.Hours != ""
	var err error
	if sc.Paths, err = policy.ParsePathRules(k.AllowPaths); err != nil {
		sc.Err = err
	} else if sc.IPs, err = policy.ParseCIDRs(k.AllowIPs); err != nil {
		sc.Err = err
	} else if k.Hours != "" {
		sc.Hours, sc.Err = policy.ParseWindows(k.Hours)
	}
	if err := p.Plan.AddStored(loc, "k:"+k.ID, k.Limits); err != nil {
		p.Plan.Err = fmt.Errorf("key %s: %w", k.ID, err)
	}
	if k.Group != "" {
		if err := p.Plan.AddStored(loc, "g:"+k.Group, groupLimits); err != nil && p.Plan.Err == nil {
			p.Plan.Err = fmt.Errorf("group %s: %w", k.Group, err)
		}
	}
	return p
}
