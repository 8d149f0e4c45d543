package routing

import (
	"fmt"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/route"
	"github.com/keygate/keygate/internal/store"
)

// Change is one step of a plan: an entry created, updated or deleted
// (store.RoutingCreate, RoutingUpdate or RoutingDelete). Before is the
// entry as it is (update, delete), After as it will be (create, update).
type Change struct {
	Op            string
	Kind, Name    string
	Before, After *Entry
}

// Diff returns the changes that turn the database's entries current into
// desired, ordered by kind and name; entries that are the same are left
// alone.
func Diff(current, desired []Entry) []Change {
	cur := map[string]Entry{}
	for _, e := range current {
		cur[e.Key()] = e
	}
	var out []Change
	seen := map[string]bool{}
	for _, d := range desired {
		seen[d.Key()] = true
		c, ok := cur[d.Key()]
		switch {
		case !ok:
			out = append(out, Change{Op: store.RoutingCreate, Kind: d.Kind, Name: d.Name, After: &d})
		case !Same(c, d):
			out = append(out, Change{Op: store.RoutingUpdate, Kind: d.Kind, Name: d.Name, Before: &c, After: &d})
		}
	}
	for _, c := range current {
		if !seen[c.Key()] {
			out = append(out, Change{Op: store.RoutingDelete, Kind: c.Kind, Name: c.Name, Before: &c})
		}
	}
	rank := map[string]int{store.RoutingDeployment: 0, store.RoutingAlias: 1, store.RoutingService: 2}
	slices.SortStableFunc(out, func(a, b Change) int {
		if a.Kind != b.Kind {
			return rank[a.Kind] - rank[b.Kind]
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// Apply returns current with the changes made.
func Apply(current []Entry, changes []Change) []Entry {
	out := make([]Entry, 0, len(current)+len(changes))
	drop := map[string]bool{}
	for _, c := range changes {
		drop[c.Kind+" "+c.Name] = true
	}
	for _, e := range current {
		if !drop[e.Key()] {
			out = append(out, e)
		}
	}
	for _, c := range changes {
		if c.After != nil {
			out = append(out, *c.After)
		}
	}
	Sort(out)
	return out
}

// Breakage is a key a change would leave with nothing to reach: no model
// at all, or none of the services it names.
type Breakage struct {
	KeyID, KeyName string
	What           string   // "model" or "service"
	Reached        []string // what it reaches before the change ("alias fast", "provider openai", "service stripe")
}

func (b Breakage) String() string {
	return fmt.Sprintf("key %q (%s) would reach no %s: today it reaches only %s", b.KeyName, b.KeyID, b.What, strings.Join(b.Reached, ", "))
}

// Breaks returns the active keys (not revoked, not expired at now) that
// reach at least one model, or one of the services they name, with the
// routing before, and none with the routing after. See Reach for what
// reaching means.
func Breaks(keys []store.Key, providers []store.Provider, before, after Set, now time.Time) []Breakage {
	tb, ta := tableOf(providers, before), tableOf(providers, after)
	var out []Breakage
	for _, k := range keys {
		if k.RevokedAt != nil || (k.ExpiresAt != nil && !k.ExpiresAt.After(now)) {
			continue
		}
		g := authz.Principal{Grant: authz.Grant{Env: k.Env, Providers: k.AllowProviders, Models: k.AllowModels, Services: k.AllowServices}}
		mb, sb := reach(g, tb, before)
		ma, sa := reach(g, ta, after)
		if len(mb) > 0 && len(ma) == 0 {
			out = append(out, Breakage{KeyID: k.ID, KeyName: k.Name, What: "model", Reached: mb})
		}
		if len(sb) > 0 && len(sa) == 0 {
			out = append(out, Breakage{KeyID: k.ID, KeyName: k.Name, What: "service", Reached: sb})
		}
	}
	return out
}

// Reach lists what a key may reach under a routing: the aliases with a
// deployment it may use, the providers it may call directly, and the
// services it may call.
//
// A key may call a provider directly when it may use the provider (its
// environment and provider list allow it) and either it names no model
// patterns, or one of its patterns names the provider by prefix
// ("openai/*"), or one meets a pattern of the models the provider says it
// serves ("gpt-4o" and "gpt-*"). A pattern that only an alias answers to
// (a key made for the alias "fast") reaches that alias and nothing else.
func Reach(k store.Key, providers []store.Provider, set Set) (models, services []string) {
	g := authz.Principal{Grant: authz.Grant{Env: k.Env, Providers: k.AllowProviders, Models: k.AllowModels, Services: k.AllowServices}}
	return reach(g, tableOf(providers, set), set)
}

func reach(p authz.Principal, t *route.Table, set Set) (models, services []string) {
	for _, a := range t.Aliases() {
		for _, d := range a.Deployments {
			if authz.Authorize(p, authz.Target{Kind: authz.Deployment, Provider: d.Upstream.Name, Env: d.Env, Model: d.Model, Alias: a.Name}) == nil {
				models = append(models, "alias "+a.Name)
				break
			}
		}
	}
	for _, u := range t.Upstreams() {
		if authz.Authorize(p, authz.Target{Kind: authz.Provider, Provider: u.Name, Env: u.Env}) != nil {
			continue
		}
		if len(p.Models) == 0 || slices.ContainsFunc(p.Models, func(pat string) bool { return patternReaches(pat, u) }) {
			models = append(models, "provider "+u.Name)
		}
	}
	for _, name := range p.Services {
		s, ok := set.Services[name]
		if ok && authz.Authorize(p, authz.Target{Kind: authz.Service, Provider: name, Env: s.Env}) == nil {
			services = append(services, "service "+name)
		}
	}
	return models, services
}

// patternReaches reports whether a key's model pattern lets it call a
// model the provider serves.
func patternReaches(pat string, u *route.Upstream) bool {
	if prefix, _, ok := strings.Cut(pat, "/"); ok {
		m, _ := path.Match(prefix, u.Name)
		return m
	}
	for _, served := range u.Models {
		if a, _ := path.Match(served, pat); a {
			return true
		}
		if b, _ := path.Match(pat, served); b {
			return true
		}
	}
	return false
}

// tableOf builds a routing table of the providers without their
// credentials: enough to see which deployments exist and whom they serve.
func tableOf(providers []store.Provider, set Set) *route.Table {
	ups := make([]*route.Upstream, 0, len(providers))
	for _, p := range providers {
		u, _ := url.Parse(p.BaseURL)
		ups = append(ups, &route.Upstream{Name: p.Name, Dialect: p.Dialect, BaseURL: u, Models: p.Models, Default: p.IsDefault, Env: p.Env})
	}
	return route.NewTable(ups).WithRouting(set.Routing, nil)
}
