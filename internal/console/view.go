package console

import (
	"encoding/json"
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
)

// navItem is one entry of the console's menu, shown only to a user who
// holds its permission somewhere.
type navItem struct {
	Path, Label string
	Perms       []string // any of them
}

// nav is the console's menu, in order.
var nav = []navItem{
	{"/", "Overview", []string{"usage.read"}},
	{"/keys", "Keys", []string{"keys.read"}},
	{"/providers", "Providers", []string{"providers.read"}},
	{"/people", "Teams and users", []string{"users.read", "teams.read"}},
	{"/audit", "Audit", []string{"audit.read"}},
	{"/alerts", "Alerts", []string{"alerts.read", "approvals.decide"}},
	{"/vault", "Vault", []string{"vault.status", "secrets.list"}},
}

// me is the signed-in user as the API describes it.
type me struct{ adminapi.WhoAmI }

// Can reports whether the user holds perm anywhere: everywhere, in a team
// or on their own resources. The API decides each resource; this only
// chooses what to show.
func (m me) Can(perm string) bool {
	for _, p := range m.Permissions {
		if p == perm || strings.HasPrefix(p, perm+"@") || p == perm+":own" {
			return true
		}
	}
	return false
}

// CanGlobally reports whether the user holds perm everywhere.
func (m me) CanGlobally(perm string) bool {
	for _, p := range m.Permissions {
		if p == perm {
			return true
		}
	}
	return false
}

// view is what every page template receives.
type view struct {
	Title   string
	Path    string
	Me      me
	Nav     []navItem
	Flash   string
	Error   string
	Version string
	Data    any
}

func funcs(now func() time.Time) template.FuncMap {
	return template.FuncMap{
		"usd": func(micro int64) string { return fmt.Sprintf("$%.2f", float64(micro)/1e6) },
		"when": func(t any) string {
			switch v := t.(type) {
			case time.Time:
				if v.IsZero() {
					return "never"
				}
				return v.UTC().Format("2006-01-02 15:04 UTC")
			case *time.Time:
				if v == nil {
					return "never"
				}
				return v.UTC().Format("2006-01-02 15:04 UTC")
			}
			return ""
		},
		"ago": func(t *time.Time) string {
			if t == nil {
				return "never"
			}
			return agoText(now().Sub(*t))
		},
		"num": func(n any) string { return fmt.Sprintf("%d", n) },
		"pct": func(f float64) string { return fmt.Sprintf("%.0f%%", f) },
		// chart encodes a chart's data for console.js; html/template
		// escapes it as an attribute value, so no script is inline.
		"chart": func(v any) (string, error) {
			b, err := json.Marshal(v)
			return string(b), err
		},
		"scopes":   scopeWords,
		"limits":   limitWords,
		"join":     strings.Join,
		"has":      func(m me, p string) bool { return m.Can(p) },
		"hasAll":   func(m me, p string) bool { return m.CanGlobally(p) },
		"keyState": keyState,
	}
}

func agoText(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	default:
		return fmt.Sprintf("%d days ago", int(d.Hours()/24))
	}
}

// keyState is a key's state in one word: active, suspended, step-up,
// expired or revoked.
func keyState(k adminapi.Key) string {
	switch {
	case k.Status != "active":
		return k.Status
	case k.SuspendedAt != nil:
		return "suspended"
	case k.StepUpUntil != nil:
		return "step-up"
	}
	return "active"
}

// scopeWords says in plain words what a key may reach.
func scopeWords(k adminapi.Key) []string {
	var out []string
	switch {
	case len(k.AllowModels) == 0 && len(k.AllowProviders) == 0:
		out = append(out, "Any model of any provider.")
	default:
		if len(k.AllowProviders) > 0 {
			out = append(out, "Only through the providers "+strings.Join(k.AllowProviders, ", ")+".")
		}
		if len(k.AllowModels) > 0 {
			out = append(out, "Only the models "+strings.Join(k.AllowModels, ", ")+".")
		}
	}
	if len(k.AllowPaths) > 0 {
		out = append(out, "Only these API calls: "+strings.Join(k.AllowPaths, "; ")+".")
	}
	if len(k.AllowServices) > 0 {
		out = append(out, "May reach the passthrough services "+strings.Join(k.AllowServices, ", ")+".")
	} else {
		out = append(out, "No passthrough services.")
	}
	if len(k.AllowIPs) > 0 {
		out = append(out, "Only from the addresses "+strings.Join(k.AllowIPs, ", ")+".")
	} else {
		out = append(out, "From any address.")
	}
	if k.Hours != "" {
		out = append(out, "Only during "+k.Hours+".")
	}
	if k.ClientCert != "" {
		out = append(out, "Only with the client certificate "+k.ClientCert+".")
	}
	if k.ExpiresAt != nil {
		out = append(out, "Stops working at "+k.ExpiresAt.UTC().Format("2006-01-02 15:04 UTC")+".")
	} else {
		out = append(out, "Does not expire.")
	}
	return out
}

// limitWords lists a key's limits in plain words.
func limitWords(l adminapi.Limits) []string {
	var out []string
	for _, r := range []struct {
		n    int64
		unit string
	}{{l.RPS, "requests a second"}, {l.RPM, "requests a minute"}, {l.RPH, "requests an hour"}, {l.TPM, "tokens a minute"}, {l.Concurrency, "requests at once"}} {
		if r.n > 0 {
			out = append(out, fmt.Sprintf("At most %d %s.", r.n, r.unit))
		}
	}
	for _, q := range l.Quotas {
		out = append(out, fmt.Sprintf("At most %d %s per %s.", q.Limit, q.Unit, q.Period))
	}
	for _, b := range l.Budgets {
		out = append(out, fmt.Sprintf("Spend at most $%.2f per %s.", float64(b.MicroUSD)/1e6, b.Period))
	}
	if len(out) == 0 {
		out = append(out, "No limits of its own.")
	}
	return out
}
