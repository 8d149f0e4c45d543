package server

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/leak"
	"github.com/keygate/keygate/internal/leakreport"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/vault"
)

// leakOptions turns leaks: into the gateway's outbound check, or nil when
// it is off.
func leakOptions(c config.Leaks) *gateway.LeakOptions {
	if c.Off {
		return nil
	}
	kinds := map[leak.Kind]leak.Action{
		leak.KindVault:    orAction(c.Vault, leak.DefaultAction(leak.KindVault)),
		leak.KindKeygate:  orAction(c.Keygate, leak.DefaultAction(leak.KindKeygate)),
		leak.KindProvider: orAction(c.Provider, leak.DefaultAction(leak.KindProvider)),
	}
	rules := make(map[string]leak.Action, len(c.Rules))
	for r, a := range c.Rules {
		rules[r] = leak.Action(a)
	}
	return &gateway.LeakOptions{Action: func(h leak.Hit) leak.Action {
		if a, ok := rules[h.Rule]; ok {
			return a
		}
		return kinds[h.Kind]
	}, StreamTextFindOnly: c.StreamText == "find"}
}

func orAction(s string, def leak.Action) leak.Action {
	if s == "" {
		return def
	}
	return leak.Action(s)
}

// buildLeakMatcher builds the outbound check's matcher from the current
// version of every vault record (provider keys, secrets, keygate's own).
// The values are opened once, turned into keyed tags and dropped: the
// matcher keeps none of them (internal/leak says how).
func buildLeakMatcher(ctx context.Context, st *store.Store, v *vault.Vault, issuer string) (*leak.Matcher, error) {
	all, err := st.ListSecretVersionsLike(ctx, "%")
	if err != nil {
		return nil, err
	}
	var values []leak.Value
	for i, sv := range all {
		if i+1 < len(all) && all[i+1].ID == sv.ID {
			continue // only the latest version of each record
		}
		pt, err := v.Open(ctx, sv)
		if err != nil {
			return nil, fmt.Errorf("open vault record %q for the leak check: %w", sv.ID, err)
		}
		values = append(values, leak.Value{Name: sv.ID, Value: secret.New(string(pt))})
		clear(pt)
	}
	return leak.New(leak.Options{Values: values, TokenIssuer: issuer})
}

// refreshLeakMatcher rebuilds what the outbound check looks for, when the
// vault's records change.
func (n *Node) refreshLeakMatcher(ctx context.Context) {
	if n.cfg.Leaks.Off {
		return
	}
	m, err := buildLeakMatcher(ctx, n.core.st, n.core.vault, n.cfg.Tokens.Issuer)
	if err != nil {
		if ctx.Err() == nil {
			n.log.Warn("could not rebuild the outbound credential check; it keeps looking for the values it knew", "err", err)
		}
		return
	}
	n.gw.SetLeakMatcher(m)
}

// LeakReportPath is where the gateway listener receives GitHub's secret
// scanning partner reports when leaks.github is enabled.
const LeakReportPath = "/leaks/github"

// leakReportHandler is the partner endpoint, or nil when it is off.
func (n *Node) leakReportHandler() (http.Handler, error) {
	c := n.cfg.Leaks.GitHub
	if !c.Enabled {
		return nil, nil
	}
	action := leakreport.ActionRevoke
	if c.Action == "suspend" {
		action = leakreport.ActionSuspend
	}
	resp := &leakreport.Responder{
		Store: n.core.st, Hasher: n.core.hasher, Keys: n.keys, Admin: n.core.st, Action: action,
		Alert: n.det.raise, Audit: n.trail.w.Record, Log: n.log,
		Upstream: n.upstreamLeak,
	}
	o := leakreport.PartnerOptions{
		Responder: resp, KeysURL: c.KeysURL, Log: n.log,
		Client: n.cfg.EgressPolicy().Client(10 * time.Second),
	}
	if c.KeysTokenEnv != "" {
		o.KeysToken = secret.New(os.Getenv(c.KeysTokenEnv))
	}
	h, err := leakreport.NewPartnerHandler(o)
	if err != nil {
		return nil, fmt.Errorf("config: leaks.github: %w", err)
	}
	return h, nil
}

// withLeakReports serves the partner endpoint beside the gateway, or the
// gateway alone when the endpoint is off.
func withLeakReports(gw, reports http.Handler) http.Handler {
	if reports == nil {
		return gw
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == LeakReportPath {
			reports.ServeHTTP(w, r)
			return
		}
		gw.ServeHTTP(w, r)
	})
}

// upstreamLeak answers a leak report whose token may be a provider key
// held in the vault: a minted one is rotated at once (see minting.reported).
func (n *Node) upstreamLeak(ctx context.Context, token secret.String, rep leakreport.Report) (target, action string, ok bool) {
	return n.mint.reported(ctx, n.gw.LeakMatcher, token, rep)
}
