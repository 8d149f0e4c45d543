package route

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/keygate/keygate/internal/balance"
	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/pricing"
)

// Deployment is one model at one registered provider, as an alias uses it.
type Deployment struct {
	// Name identifies the deployment's health (breaker, latency) and
	// upstream limits: the configured name, with "/provider" appended for
	// each member of a pool.
	Name     string
	Upstream *Upstream
	Model    string // the model's name at the provider
	Weight   int
	Env      string // the environment it serves; "" any
	RPM, TPM int64  // the provider's limits for it; 0 none
	Price    pricing.Price
	Priced   bool
}

// Alias is a model name clients call and the deployments that serve it.
type Alias struct {
	Name        string
	Strategy    balance.Strategy
	Deployments []*Deployment
	MaxAttempts int
	Timeout     time.Duration
	// AttemptTimeout bounds one deployment's time to response headers; 0
	// leaves it the rest of Timeout.
	AttemptTimeout time.Duration
	// Unavailable names configured deployments whose provider is not
	// registered (yet); they are left out until it is.
	Unavailable []string
}

// Default limits of an alias's failover.
const (
	defaultMaxAttempts = 3
	defaultTimeout     = 60 * time.Second
)

// ValidateRouting checks a routing configuration on its own, before any
// provider is known: names, references, strategies and numbers.
func ValidateRouting(r config.Routing) error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("config: routing: "+format, a...)) }
	names := map[string]bool{}
	for i, d := range r.Deployments {
		switch {
		case d.Name == "":
			bad("deployment %d has no name", i+1)
		case names[d.Name]:
			bad("deployment %q is declared twice", d.Name)
		}
		names[d.Name] = true
		if (d.Provider == "") == (len(d.Providers) == 0) {
			bad("deployment %q: set provider (one upstream key) or providers (a pool of them), not both or neither", d.Name)
		}
		if d.Model == "" {
			bad("deployment %q: model is the model's name at the provider, and is required", d.Name)
		}
		if d.Weight < 0 || d.RPM < 0 || d.TPM < 0 {
			bad("deployment %q: weight, rpm and tpm must not be negative", d.Name)
		}
		if d.Price != nil && (d.Price.Input < 0 || d.Price.Output < 0) {
			bad("deployment %q: prices must not be negative", d.Name)
		}
	}
	aliases := make([]string, 0, len(r.Aliases))
	for name := range r.Aliases {
		aliases = append(aliases, name)
	}
	sort.Strings(aliases)
	for _, name := range aliases {
		a := r.Aliases[name]
		if name == "" {
			bad("an alias has an empty name")
		}
		if _, err := balance.ParseStrategy(a.Strategy); err != nil {
			bad("alias %q: %v", name, err)
		}
		if len(a.Deployments) == 0 {
			bad("alias %q lists no deployments", name)
		}
		for _, d := range a.Deployments {
			if !names[d] {
				bad("alias %q names deployment %q, which is not declared under routing.deployments", name, d)
			}
		}
		if a.MaxAttempts < 0 || a.Timeout < 0 || a.AttemptTimeout < 0 {
			bad("alias %q: max_attempts, timeout and attempt_timeout must not be negative", name)
		}
	}
	if r.Breaker.Failures < 0 || r.Breaker.Cooldown < 0 {
		bad("breaker: failures and cooldown must not be negative")
	}
	return errors.Join(errs...)
}

// WithRouting returns a copy of the table that also resolves the aliases
// of r (which ValidateRouting accepted) to deployments at the table's
// providers. prices prices deployments without a price of their own.
func (t *Table) WithRouting(r config.Routing, prices *pricing.Table) *Table {
	n := *t
	n.aliases = make(map[string]*Alias, len(r.Aliases))
	byName := map[string]config.Deployment{}
	for _, d := range r.Deployments {
		byName[d.Name] = d
	}
	for name, ac := range r.Aliases {
		strategy, _ := balance.ParseStrategy(ac.Strategy)
		a := &Alias{Name: name, Strategy: strategy, MaxAttempts: ac.MaxAttempts, Timeout: ac.Timeout, AttemptTimeout: ac.AttemptTimeout}
		if a.Timeout == 0 {
			a.Timeout = defaultTimeout
		}
		for _, dn := range ac.Deployments {
			dc := byName[dn]
			providers := dc.Providers
			if dc.Provider != "" {
				providers = []string{dc.Provider}
			}
			for _, pn := range providers {
				up, ok := t.byName[pn]
				if !ok {
					a.Unavailable = append(a.Unavailable, fmt.Sprintf("%s (provider %q is not registered)", dn, pn))
					continue
				}
				if up.Unavailable != "" {
					// Its key cannot be served now (see Upstream.Unavailable):
					// the alias fails over to the other deployments.
					a.Unavailable = append(a.Unavailable, fmt.Sprintf("%s (provider %q: %s)", dn, pn, up.Unavailable))
					continue
				}
				d := &Deployment{Name: dn, Upstream: up, Model: dc.Model, Weight: max(dc.Weight, 1), Env: up.Env, RPM: dc.RPM, TPM: dc.TPM}
				if len(dc.Providers) > 0 {
					d.Name = dn + "/" + pn
				}
				if dc.Env != "" {
					d.Env = dc.Env
				}
				switch {
				case dc.Price != nil:
					d.Price, d.Priced = pricing.USD(dc.Price.Input, dc.Price.Output), true
				case prices != nil:
					d.Price, d.Priced = prices.Lookup(dc.Model)
				}
				a.Deployments = append(a.Deployments, d)
			}
		}
		if a.MaxAttempts == 0 {
			a.MaxAttempts = min(len(a.Deployments), defaultMaxAttempts)
		}
		n.aliases[name] = a
	}
	return &n
}

// Alias returns the alias called name, if one is configured.
func (t *Table) Alias(name string) (*Alias, bool) {
	a, ok := t.aliases[name]
	return a, ok
}

// Aliases returns the configured aliases ordered by name.
func (t *Table) Aliases() []*Alias {
	out := make([]*Alias, 0, len(t.aliases))
	for _, a := range t.aliases {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
