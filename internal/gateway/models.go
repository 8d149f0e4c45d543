package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/provider"
	"github.com/keygate/keygate/internal/route"
	"github.com/keygate/keygate/internal/web"
)

// listModels answers GET /v1/models (and Gemini's /v1beta/models) with the
// models the caller's key may use, gathered from each permitted provider of
// the caller's dialect d. A model is listed bare when a bare request would
// reach the same provider, else with its provider prefix, so every listed
// id can be sent back as is.
func (g *Gateway) listModels(w http.ResponseWriter, r *http.Request, d provider.Dialect) {
	c := callFrom(r.Context())
	c.dialect = d
	if d == g.gemini {
		if den := takeQueryKey(r); den != nil {
			g.refuse(w, r, den)
			return
		}
	}
	if r.Method != http.MethodGet {
		g.refuse(w, r, notServed("GET", r.URL.Path))
		return
	}
	key, den := g.authenticate(r, c)
	if den == nil {
		den = g.checkScope(r, c, key)
	}
	if den != nil {
		g.refuse(w, r, den)
		return
	}
	table := g.table.Load()
	p := c.principal(key)
	var ups []*route.Upstream
	for _, up := range table.Upstreams() {
		if up.Dialect == d.Name() && authz.Authorize(p, authz.Target{Kind: authz.Provider, Provider: up.Name, Env: up.Env}) == nil {
			ups = append(ups, up)
		}
	}
	results := make([][]provider.Model, len(ups))
	errs := make([]error, len(ups))
	var wg sync.WaitGroup
	for i, up := range ups {
		wg.Go(func() { results[i], errs[i] = g.models.get(r.Context(), g, d, up) })
	}
	wg.Wait()

	var out []provider.Model
	failed := 0
	for i, up := range ups {
		if errs[i] != nil {
			failed++
			g.opts.Log.Warn("could not list an upstream's models", "request_id", web.RequestID(r.Context()), "provider", up.Name, "err", errs[i])
			continue
		}
		for _, m := range results[i] {
			if authz.Authorize(p, authz.Target{Kind: authz.Model, Provider: up.Name, Env: up.Env, Model: m.ID}) != nil {
				continue
			}
			// Bare only when a bare request reaches this provider with this very model name.
			if via, sent, err := table.Resolve(d.Name(), m.ID); err != nil || via != up || sent != m.ID {
				m.ID = up.Name + "/" + m.ID
			}
			if m.OwnedBy == "" {
				m.OwnedBy = up.Name
			}
			out = append(out, m)
		}
	}
	// Model aliases the key may use are listed by the name clients call;
	// an alias hides a provider model of the same name, as it does when
	// a request names it.
	var aliases []provider.Model
	named := map[string]bool{}
	for _, a := range table.Aliases() {
		if cands, _ := aliasCandidates(p, a, d, true); len(cands) > 0 {
			aliases = append(aliases, provider.Model{ID: a.Name, OwnedBy: "keygate", DisplayName: a.Name})
		}
		named[a.Name] = true
	}
	out = slices.DeleteFunc(out, func(m provider.Model) bool { return named[m.ID] })
	out = append(out, aliases...)
	if failed > 0 && failed == len(ups) && len(out) == 0 {
		g.refuse(w, r, deny(http.StatusBadGateway, "upstream_unreachable", "keygate could not list models from any upstream provider"))
		return
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	d.WriteModels(w, out)
}

// listDialect is the dialect of a request to GET /v1/models, which every
// SDK calls: Gemini's for a Google SDK (speaksGemini), else as
// provider.DetectListDialect reads the headers.
func (g *Gateway) listDialect(r *http.Request) provider.Dialect {
	if speaksGemini(r) {
		return g.gemini
	}
	return provider.DetectListDialect(r.Header)
}

// modelCache keeps each upstream's model list for a while: listing is
// frequent in agent start-ups and changes rarely.
type modelCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[*route.Upstream]cachedModels
}

type cachedModels struct {
	at     time.Time
	models []provider.Model
}

func newModelCache(ttl time.Duration) *modelCache {
	return &modelCache{ttl: ttl, m: map[*route.Upstream]cachedModels{}}
}

func (mc *modelCache) get(ctx context.Context, g *Gateway, d provider.Dialect, up *route.Upstream) ([]provider.Model, error) {
	now := g.opts.Now()
	mc.mu.Lock()
	c, cached := mc.m[up]
	mc.mu.Unlock()
	if cached && now.Sub(c.at) < mc.ttl {
		return c.models, nil
	}
	models, err := g.fetchModels(ctx, d, up)
	if err != nil {
		if cached && now.Sub(c.at) < staleModels {
			// A provider that hangs or fails does not empty the list:
			// its last answer stands for a while.
			return c.models, nil
		}
		return nil, err
	}
	mc.mu.Lock()
	for k, c := range mc.m { // drop entries of replaced tables
		if now.Sub(c.at) >= staleModels {
			delete(mc.m, k)
		}
	}
	mc.m[up] = cachedModels{at: now, models: models}
	mc.mu.Unlock()
	return models, nil
}

// staleModels is how long a provider's last model list answers for it
// when asking it again fails.
const staleModels = time.Hour

// modelsTimeout bounds asking a provider for its model list: a provider
// that hangs holds GET /v1/models that long at most.
const modelsTimeout = 5 * time.Second

// fetchModels asks one upstream for its model list with the real credential.
func (g *Gateway) fetchModels(ctx context.Context, d provider.Dialect, up *route.Upstream) ([]provider.Model, error) {
	ctx, cancel := context.WithTimeout(ctx, modelsTimeout)
	defer cancel()
	u := *up.BaseURL
	u.Path = d.UpstreamPath(up.BaseURL.Path, "/v1/models")
	u.RawQuery = ""
	switch d.Name() {
	case "anthropic":
		u.RawQuery = "limit=1000" // Anthropic pages its list 20 at a time by default
	case "gemini":
		u.Path = d.UpstreamPath(up.BaseURL.Path, "/v1beta/models")
		u.RawQuery = "pageSize=1000" // Google pages its list 50 at a time by default
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	if up.Preset != nil {
		req.URL.RawQuery = ""
		if err := up.Preset.Prepare(req, up.BaseURL, "/v1/models", "", up.Key, up.APIVersion); err != nil {
			return nil, fmt.Errorf("list models: %w", err)
		}
	} else {
		d.InjectAuth(req.Header, up.Key)
	}
	resp, err := (&http.Client{Transport: upstreamTransport{up: up, next: g.opts.Transport}}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("list models: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("list models: read: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("list models: upstream answered %s", resp.Status)
	}
	return d.ParseModels(body)
}

// upstreamTransport sends a request keygate makes itself (a model list)
// through its upstream, so a cloud-identity upstream signs it as it signs
// the requests it proxies.
type upstreamTransport struct {
	up   *route.Upstream
	next http.RoundTripper
}

func (t upstreamTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.up.RoundTrip(req, t.next)
}
