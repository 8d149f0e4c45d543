package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/store"
)

// A team's policy bounds what its keys may be given by anyone without a
// global grant: a team-admin or a developer creates and changes keys only
// within it, and anything the request leaves out is filled in from it (a
// new key without a model list gets the team's, without an expiry the
// longest the team allows, without a limit the team's ceiling). Passthrough
// services are the exception: none but those the policy lists, so a team
// cannot hand its keys an organisation's GitHub or Stripe credential.

// decodePolicy reads a stored policy; the store holds only what
// encodePolicy wrote.
func decodePolicy(b []byte) adminapi.TeamPolicy {
	var p adminapi.TeamPolicy
	if len(b) > 0 {
		_ = json.Unmarshal(b, &p)
	}
	return p
}

// encodePolicy validates a policy, naming the field at fault, and encodes
// it for the store; an empty policy encodes as nil.
func (a *API) encodePolicy(ctx context.Context, p adminapi.TeamPolicy) ([]byte, error) {
	for _, m := range p.AllowModels {
		if !authz.ValidPattern(m) {
			return nil, fmt.Errorf("policy.allow_models: %q is not a valid pattern (use * and ? wildcards, as in gpt-4o*)", m)
		}
	}
	for _, name := range p.AllowProviders {
		if _, err := a.opts.Store.GetProvider(ctx, name); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil, fmt.Errorf("policy.allow_providers: no provider named %q; see keygate provider list", name)
			}
			return nil, fmt.Errorf("policy.allow_providers: could not check %q: %w", name, err)
		}
	}
	if err := validateServices(p.AllowServices); err != nil {
		return nil, fmt.Errorf("policy.%w", err)
	}
	if err := adminapi.ValidLeakAction(p.LeakAction); err != nil {
		return nil, fmt.Errorf("policy.%w", err)
	}
	if p.MaxKeyTTL != "" {
		if _, err := adminapi.ParseDuration(p.MaxKeyTTL); err != nil {
			return nil, fmt.Errorf("policy.max_key_ttl: %w", err)
		}
	}
	if err := p.MaxLimits.Validate(); err != nil {
		return nil, fmt.Errorf("policy.max_limits: %w", err)
	}
	if len(p.AllowModels) == 0 && len(p.AllowProviders) == 0 && len(p.AllowServices) == 0 && p.MaxKeyTTL == "" && p.MaxLimits.IsZero() && p.LeakAction == "" {
		return nil, nil
	}
	return json.Marshal(p)
}

// fillFromPolicy gives a new key of the team what its request left out:
// the team's models and providers, its longest life and its ceilings.
func fillFromPolicy(p adminapi.TeamPolicy, k *store.Key, now time.Time) {
	if k.LeakAction == "" {
		k.LeakAction = p.LeakAction
	}
	if len(k.AllowModels) == 0 {
		k.AllowModels = p.AllowModels
	}
	if len(k.AllowProviders) == 0 {
		k.AllowProviders = p.AllowProviders
	}
	if d, err := adminapi.ParseDuration(p.MaxKeyTTL); p.MaxKeyTTL != "" && err == nil && k.ExpiresAt == nil {
		exp := now.Add(d)
		k.ExpiresAt = &exp
	}
	if !p.MaxLimits.IsZero() {
		l := fillLimits(decodeLimits(k.Limits), p.MaxLimits)
		k.Limits, _ = encodeLimits(l)
	}
}

// fillLimits sets every limit l leaves unlimited to the ceiling's.
func fillLimits(l, ceiling adminapi.Limits) adminapi.Limits {
	for _, f := range []struct{ v, max *int64 }{{&l.RPS, &ceiling.RPS}, {&l.RPM, &ceiling.RPM}, {&l.RPH, &ceiling.RPH}, {&l.TPM, &ceiling.TPM}, {&l.Concurrency, &ceiling.Concurrency}} {
		if *f.v == 0 {
			*f.v = *f.max
		}
	}
	for _, q := range ceiling.Quotas {
		if !hasQuota(l.Quotas, q.Unit, q.Period) {
			l.Quotas = append(l.Quotas, q)
		}
	}
	for _, b := range ceiling.Budgets {
		if !hasBudget(l.Budgets, b.Period) {
			l.Budgets = append(l.Budgets, b)
		}
	}
	return l
}

func hasQuota(qs []adminapi.Quota, unit, period string) bool {
	for _, q := range qs {
		if q.Unit == unit && q.Period == period {
			return true
		}
	}
	return false
}

func hasBudget(bs []adminapi.Budget, period string) bool {
	for _, b := range bs {
		if b.Period == period {
			return true
		}
	}
	return false
}

// policyViolations lists how a key breaks a team's policy, each naming
// the field and what the team allows; none when it keeps to it.
func policyViolations(p adminapi.TeamPolicy, k store.Key) []string {
	var out []string
	if len(p.AllowModels) > 0 || len(p.AllowProviders) > 0 {
		if len(p.AllowModels) > 0 && len(k.AllowModels) == 0 {
			out = append(out, fmt.Sprintf("allow_models: the key may use any model, and the team allows only %s", strings.Join(p.AllowModels, ", ")))
		}
		if len(p.AllowProviders) > 0 && len(k.AllowProviders) == 0 {
			out = append(out, fmt.Sprintf("allow_providers: the key may use any provider, and the team allows only %s", strings.Join(p.AllowProviders, ", ")))
		}
		g := authz.Grant{Providers: p.AllowProviders, Models: p.AllowModels}
		for _, m := range k.AllowModels {
			if authz.Within(g, authz.Scope{Models: []string{m}}) != nil {
				out = append(out, fmt.Sprintf("allow_models: %q is not within the team's models (%s)", m, strings.Join(p.AllowModels, ", ")))
			}
		}
		for _, pr := range k.AllowProviders {
			if authz.Within(g, authz.Scope{Providers: []string{pr}}) != nil {
				out = append(out, fmt.Sprintf("allow_providers: %q is not one of the team's providers (%s)", pr, strings.Join(p.AllowProviders, ", ")))
			}
		}
	}
	for _, svc := range k.AllowServices {
		if !slices.Contains(p.AllowServices, svc) {
			out = append(out, fmt.Sprintf("allow_services: %q is not one of the team's passthrough services (%s)", svc, orNoneList(p.AllowServices)))
		}
	}
	if d, err := adminapi.ParseDuration(p.MaxKeyTTL); p.MaxKeyTTL != "" && err == nil {
		switch {
		case k.ExpiresAt == nil:
			out = append(out, fmt.Sprintf("expires_in: the key never expires, and the team's keys live at most %s", p.MaxKeyTTL))
		case k.ExpiresAt.Sub(k.CreatedAt) > d+time.Second:
			out = append(out, fmt.Sprintf("expires_in: the key lives %s, and the team's keys live at most %s", formatDuration(k.ExpiresAt.Sub(k.CreatedAt)), p.MaxKeyTTL))
		}
	}
	return append(out, limitViolations(decodeLimits(k.Limits), p.MaxLimits)...)
}

// limitViolations lists the limits of l above (or missing under) the
// ceiling: unlimited is above every ceiling.
func limitViolations(l, ceiling adminapi.Limits) []string {
	var out []string
	for _, f := range []struct {
		name   string
		v, max int64
	}{{"rps", l.RPS, ceiling.RPS}, {"rpm", l.RPM, ceiling.RPM}, {"rph", l.RPH, ceiling.RPH}, {"tpm", l.TPM, ceiling.TPM}, {"concurrency", l.Concurrency, ceiling.Concurrency}} {
		if f.max > 0 && (f.v == 0 || f.v > f.max) {
			out = append(out, fmt.Sprintf("limits.%s: %s, above the team's ceiling of %d", f.name, unlimitedOr(f.v), f.max))
		}
	}
	for _, c := range ceiling.Quotas {
		got := int64(0)
		for _, q := range l.Quotas {
			if q.Unit == c.Unit && q.Period == c.Period {
				got = q.Limit
			}
		}
		if got == 0 || got > c.Limit {
			out = append(out, fmt.Sprintf("limits.quotas: %s per %s: %s, above the team's ceiling of %s", c.Unit, c.Period, unlimitedOr(got), c))
		}
	}
	for _, c := range ceiling.Budgets {
		got := int64(0)
		for _, b := range l.Budgets {
			if b.Period == c.Period {
				got = b.MicroUSD
			}
		}
		if got == 0 || got > c.MicroUSD {
			have := "unlimited"
			if got > 0 {
				have = adminapi.Budget{MicroUSD: got, Period: c.Period}.String()
			}
			out = append(out, fmt.Sprintf("limits.budgets: %s, above the team's ceiling of %s", have, c))
		}
	}
	return out
}

func orNoneList(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}

func unlimitedOr(v int64) string {
	if v == 0 {
		return "unlimited"
	}
	return fmt.Sprint(v)
}

// keyLive reports whether a key can still be used: policies are checked
// against live keys only.
func keyLive(k store.Key, now time.Time) bool {
	return k.RevokedAt == nil && (k.ExpiresAt == nil || now.Before(*k.ExpiresAt))
}
