// Package gateway is keygate's data plane: the OpenAI- and Anthropic-compatible
// endpoint that apps and agents call with their keygate key. Read this file top
// to bottom to follow a request:
//
//	ServeHTTP        request id, access log, panic recovery (outermost first)
//	 -> endpoint     which API dialect the path speaks (OpenAI or Anthropic)
//	 -> authenticate the keygate key or an access token exchanged for one
//	                 (Authorization: Bearer or x-api-key; oauth.go)
//	 -> read body    size limit, then read model/stream without decoding the body
//	 -> route        model -> provider (prefix, patterns, default); strip the prefix
//	 -> scope        suspended? this path and method, network, hours (scopes.go)
//	 -> risk         places and hours against the key's history; step-up (risk.go)
//	 -> authorize    the key's environment, provider and model allowances
//	 -> admit        reserve the worst case against every limit of the key and
//	                 its group (rate, tokens, concurrency, quotas, budgets), all
//	                 or nothing (limits.go)
//	 -> proxy        strip client credentials, inject the real key, stream back
//	 -> settle       when the response ends, charge what it really used (meter.go)
//
// Every denial is written before any byte goes upstream, in the caller's
// dialect, and never carries an upstream key or an internal address.
package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/balance"
	"github.com/keygate/keygate/internal/detect"
	"github.com/keygate/keygate/internal/jsonpeek"
	"github.com/keygate/keygate/internal/limit"
	"github.com/keygate/keygate/internal/passthrough"
	"github.com/keygate/keygate/internal/provider"
	"github.com/keygate/keygate/internal/route"
	"github.com/keygate/keygate/internal/scrub"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/token"
	"github.com/keygate/keygate/internal/usage"
	"github.com/keygate/keygate/internal/web"
)

// KeyVerifier checks a presented keygate key and returns its record.
type KeyVerifier interface {
	Verify(ctx context.Context, raw string, now time.Time) (store.Key, error)
	// Invalidate forgets what is cached of a key, after it changed.
	Invalidate(keyID string)
}

// Options configures a Gateway.
type Options struct {
	Keys           KeyVerifier
	Log            *slog.Logger
	MaxBodyBytes   int64
	Transport      http.RoundTripper // upstream client transport; see NewTransport
	TrustedProxies []netip.Prefix
	AccessLog      bool
	// LoadTable builds a fresh routing table (providers and their credentials).
	LoadTable func(ctx context.Context) (*route.Table, error)
	// KeyUsed, when set, is told each authenticated use of a key (it must not block).
	KeyUsed func(keyID string, at time.Time)
	// Limits configures admission control, metering and the throttling of
	// failed authentication.
	Limits LimitOptions
	// Tokens, when set, serves /oauth/token, /oauth/revoke,
	// /oauth/introspect and /.well-known/jwks.json, and accepts access
	// tokens wherever keys are accepted.
	Tokens *TokenOptions
	// Risk, when set, applies the zero-trust risk rules (risk.go).
	Risk *RiskOptions
	// PassthroughTransport carries /proxy/ requests; nil uses
	// passthrough.NewTransport's defaults, which refuse private addresses.
	PassthroughTransport http.RoundTripper
	// Breaker tunes the circuit breakers of model aliases' deployments.
	Breaker balance.BreakerConfig
	// Metrics, when set, is told about every request (internal/metrics).
	Metrics Metrics
	// Audit, when set, receives an event for every authenticated or
	// refused request. With AuditFailClosed, requests are refused while no
	// audit sink keeps up.
	Audit           AuditRecorder
	AuditFailClosed bool
	// MaxInflightBodyBytes caps the request bodies held in memory at once
	// (memory.go); 0 sets no cap.
	MaxInflightBodyBytes int64
	// Detect, when set, watches every request for anomalies (internal/detect).
	Detect interface {
		Observe(o detect.Observation)
	}
	Now func() time.Time
}

// Gateway is the data-plane handler.
type Gateway struct {
	opts      Options
	table     atomic.Pointer[route.Table]
	proxy     *httputil.ReverseProxy
	passProxy *httputil.ReverseProxy
	chain     http.Handler
	openai    provider.Dialect
	anthropic provider.Dialect
	models    *modelCache
	plans     plans
	scopes    scopes
	tokenKeys tokenKeys
	histories histories
	// What is known of each alias deployment, across table reloads, and
	// the limiter holding deployments to their providers' RPM and TPM.
	health         *balance.Health
	upstreamLimits Limiter
	bodyMem        *bodyBudget
	scrubs         *scrub.Cache // the wire forms of upstream credentials, to remove from answers
}

// New builds a gateway serving the given routing table.
func New(opts Options, table *route.Table) *Gateway {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Transport == nil {
		opts.Transport = http.DefaultTransport
	}
	g := &Gateway{opts: opts, models: newModelCache(time.Minute), health: balance.NewHealth(opts.Breaker), bodyMem: newBodyBudget(opts.MaxInflightBodyBytes), scrubs: scrub.NewCache(256)}
	g.upstreamLimits = opts.Limits.Shared
	if g.upstreamLimits == nil {
		g.upstreamLimits = limit.NewMemory()
	}
	g.openai, _ = provider.Lookup("openai")
	g.anthropic, _ = provider.Lookup("anthropic")
	g.table.Store(table)
	g.proxy = &httputil.ReverseProxy{
		Rewrite:        g.rewrite,
		Transport:      &failover{g: g, base: opts.Transport},
		ModifyResponse: g.modifyResponse,
		ErrorHandler:   g.proxyError,
		BufferPool:     newBufferPool(),
		ErrorLog:       slog.NewLogLogger(opts.Log.Handler(), slog.LevelWarn),
	}
	pt := opts.PassthroughTransport
	if pt == nil {
		pt = passthrough.NewTransport(passthrough.TransportOptions{})
	}
	g.passProxy = g.newPassthroughProxy(pt)
	// The order, outermost first: a request id exists before anything logs,
	// the access log sees the final status, recovery answers in the dialect.
	mws := []web.Middleware{web.NewRequestIDs().Middleware}
	if opts.AccessLog {
		mws = append(mws, web.AccessLog(opts.Log, "gateway request", logFields))
	}
	mws = append(mws, web.Recover(opts.Log, func(w http.ResponseWriter, r *http.Request) {
		g.deny(w, r, http.StatusInternalServerError, "internal_error", "keygate hit an internal error; the request id is in the X-Request-Id header")
	}))
	g.chain = web.Chain(http.HandlerFunc(g.endpoint), mws...)
	return g
}

// SetTable swaps in a new routing table; requests already routed keep the old one.
func (g *Gateway) SetTable(t *route.Table) { g.table.Store(t) }

// Reload rebuilds the routing table from the store and vault. On failure the
// current table stays in place.
func (g *Gateway) Reload(ctx context.Context) error {
	if g.opts.LoadTable == nil {
		return nil
	}
	t, err := g.opts.LoadTable(ctx)
	if err != nil {
		return err
	}
	g.SetTable(t)
	return nil
}

// RefreshEvery reloads the routing table on a timer until ctx ends, so
// provider changes made through another keygate node reach this one.
func (g *Gateway) RefreshEvery(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := g.Reload(ctx); err != nil && ctx.Err() == nil {
				g.opts.Log.Warn("provider table refresh failed; keeping the previous one", "err", err)
			}
		}
	}
}

// Metrics records what the gateway does; internal/metrics implements it
// for Prometheus.
type Metrics interface {
	Request(dialect, keyID string, status int, denied string, d time.Duration)
	Upstream(provider string, d time.Duration)
	Usage(provider, keyID string, in, out, microUSD int64)
	LimitUsage(limit string, fraction float64)
}

// AuditRecorder takes audit events; internal/audit's Writer implements it.
type AuditRecorder interface {
	Record(ev audit.Event) error
	Healthy() bool
}

// ServeHTTP serves one gateway request.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &call{}
	defer func() {
		g.giveBack(c, c.memHeld)
		g.releaseEarly(c) // a call refused after admitEarly, before admit
	}()
	if g.opts.Metrics == nil && g.opts.Audit == nil && g.opts.Detect == nil {
		g.chain.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callKey{}, c)))
		return
	}
	start := time.Now()
	sw := &web.StatusWriter{ResponseWriter: w}
	g.chain.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), callKey{}, c)))
	if g.opts.Metrics != nil {
		dialect := ""
		if c.dialect != nil {
			dialect = c.dialect.Name()
		}
		g.opts.Metrics.Request(dialect, c.keyID, sw.Status, c.denied, time.Since(start))
	}
	if g.opts.Audit != nil && (c.keyID != "" || c.denied != "") {
		g.audit(r, c, sw.Status, start)
	}
	if g.opts.Detect != nil && (c.keyID != "" || c.denied != "") {
		g.observe(r, c, start)
	}
}

// authDenials are the refusals that count as failed authentication.
var authDenials = map[string]bool{"missing_api_key": true, "invalid_api_key": true, "too_many_auth_failures": true}

// observe hands a finished request to the anomaly detectors.
func (g *Gateway) observe(r *http.Request, c *call, start time.Time) {
	o := detect.Observation{
		At: start, KeyID: c.keyID, Client: web.ClientAddr(r, g.opts.TrustedProxies).String(),
		AuthFailed: authDenials[c.denied], Model: c.model, Path: r.URL.Path, MicroUSD: c.microUSD,
		BudgetMicroUSD: c.budgetMicro, LimitRPS: c.limitRPS,
	}
	if o.AuthFailed {
		o.KeyPrefix = c.presentedPrefix
	}
	if c.upstream != nil {
		o.Provider = c.upstream.Name
	}
	if len(c.riskRules) == 0 {
		g.opts.Detect.Observe(o)
		return
	}
	for _, rule := range c.riskRules {
		o.Risk = rule
		g.opts.Detect.Observe(o)
		o.MicroUSD = 0 // counted once
	}
}

// audit records a request's event: who, from where, what, the decision and
// its reasons. Strings a client chose are escaped by every sink.
func (g *Gateway) audit(r *http.Request, c *call, status int, start time.Time) {
	ev := audit.Event{
		Time: start.UTC(), Type: "request", KeyID: c.keyID,
		Client:   web.ClientAddr(r, g.opts.TrustedProxies).String(),
		Resource: r.Method + " " + r.URL.Path, Decision: "allow",
		Fields: map[string]string{"status": strconv.Itoa(status), "request_id": c.requestID},
	}
	if c.denied != "" {
		ev.Decision, ev.Reasons = "deny", []string{c.denied}
		if authDenials[c.denied] {
			ev.Type = "auth.failure"
		}
	}
	if c.model != "" {
		ev.Fields["model"] = c.model
	}
	if c.upstream != nil {
		ev.Fields["provider"] = c.upstream.Name
	}
	if c.risk != "" {
		ev.Fields["risk"] = c.risk
	}
	if err := g.opts.Audit.Record(ev); err != nil {
		g.opts.Log.Error("could not record a request in the audit trail", "request_id", c.requestID, "err", err)
	}
}

// endpoint maps the path to its dialect and handler. Anything else is a 404
// in the dialect the caller appears to speak.
func (g *Gateway) endpoint(w http.ResponseWriter, r *http.Request) {
	callFrom(r.Context()).requestID = web.RequestID(r.Context())
	if g.opts.AuditFailClosed && g.opts.Audit != nil && !g.opts.Audit.Healthy() && recorded(r.URL.Path) {
		// Every call, every token issued or revoked and every listing is
		// an audit event: none is served while none can be recorded.
		const msg = "keygate cannot record requests in its audit trail right now, so it refuses them; try again shortly"
		w.Header().Set("Retry-After", "1")
		if strings.HasPrefix(r.URL.Path, "/oauth/") {
			callFrom(r.Context()).denied = "audit_unavailable"
			oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", msg)
			return
		}
		g.deny(w, r, http.StatusServiceUnavailable, "audit_unavailable", msg)
		return
	}
	switch r.URL.Path {
	case "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses":
		g.forward(w, r, g.openai)
	case "/v1/messages", "/v1/messages/count_tokens":
		g.forward(w, r, g.anthropic)
	case "/v1/models":
		if r.Method != http.MethodGet {
			g.deny(w, r, http.StatusMethodNotAllowed, "method_not_allowed", "use GET for /v1/models")
			return
		}
		g.listModels(w, r)
	case "/oauth/token":
		g.tokenEndpoint(w, r)
	case "/oauth/revoke":
		g.revokeEndpoint(w, r)
	case "/oauth/introspect":
		g.introspectEndpoint(w, r)
	case "/.well-known/jwks.json":
		g.jwks(w, r)
	case "/healthz":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	default:
		if isPassthrough(r.URL.Path) {
			g.passthrough(w, r)
			return
		}
		g.deny(w, r, http.StatusNotFound, "unknown_url", fmt.Sprintf("keygate does not serve %s %s", r.Method, r.URL.Path))
	}
}

// recorded reports whether requests to path are audit events, which
// fail-closed auditing refuses while the trail cannot record: everything
// but the health check and the public signing keys.
func recorded(path string) bool {
	return path != "/healthz" && path != "/.well-known/jwks.json"
}

// forward authenticates, routes, authorizes and proxies one API call.
func (g *Gateway) forward(w http.ResponseWriter, r *http.Request, d provider.Dialect) {
	c := callFrom(r.Context())
	c.dialect = d
	if r.Method != http.MethodPost {
		g.deny(w, r, http.StatusMethodNotAllowed, "method_not_allowed", fmt.Sprintf("use POST for %s", r.URL.Path))
		return
	}
	key, ok := g.authenticate(w, r)
	if !ok {
		return
	}
	c.keyID = key.ID
	if !g.scope(w, r, key) || !g.assessRisk(w, r, key) || !g.admitEarly(w, r, key) {
		return
	}

	body, ok := g.readBody(w, r)
	if !ok {
		return
	}
	f, err := jsonpeek.Scan(body)
	if err != nil {
		var se *jsonpeek.SyntaxError
		if errors.As(err, &se) && se.Field != "" {
			g.deny(w, r, http.StatusBadRequest, "invalid_field", fmt.Sprintf("request field %q cannot be used: %s", se.Field, err))
			return
		}
		g.deny(w, r, http.StatusBadRequest, "invalid_json", "request body is not valid JSON: "+err.Error())
		return
	}
	if !f.HasModel || f.Model == "" {
		g.deny(w, r, http.StatusBadRequest, "missing_model", `request body must name a model, as in {"model": "gpt-4o-mini", ...}`)
		return
	}
	c.model = f.Model

	c.clientModel = f.Model

	if a, isAlias := g.table.Load().Alias(f.Model); isAlias {
		c.raw, c.fields, c.path = body, f, r.URL.Path
		if !g.routeAlias(w, r, key, a, d) {
			return
		}
		if !c.mayTranslate {
			g.untranslated(c, body)
		}
		if !g.admit(w, r, key, f.Model, f, len(body)) {
			return
		}
		g.proxy.ServeHTTP(w, r)
		return
	}
	up, model, ok := g.route(w, r, d, f.Model)
	if !ok {
		return
	}
	if !g.authorize(w, r, key, up, model) {
		return
	}
	cross, err := g.crossDialect(c, up, r.URL.Path)
	if err != nil {
		g.deny(w, r, http.StatusBadRequest, "wrong_api_dialect", err.Error())
		return
	}
	upPath := r.URL.Path
	if cross {
		upPath = translatedPath(upPath)
	}
	if err := checkTarget(up, upPath, model); err != nil {
		g.deny(w, r, http.StatusBadRequest, "invalid_model", err.Error())
		return
	}
	if cross {
		c.includeUsage = d == g.openai && f.Stream && wantsStreamUsage(body)
		if body, err = g.translateRequest(r.Context(), c, body, model); errors.Is(err, errMemoryBusy) {
			g.denyBusy(w, r)
			return
		} else if err != nil {
			g.deny(w, r, http.StatusBadRequest, "untranslatable_request", fmt.Sprintf(
				"model %q is served by a provider of the %s API, and this request cannot be translated for it: %v", f.Model, up.Dialect, err))
			return
		}
		c.translate, c.upDialect = true, g.wire(up)
	}
	if !g.admit(w, r, key, model, f, len(body)) {
		return
	}
	if !cross {
		g.untranslated(c, body)
		if model != f.Model {
			body = jsonpeek.ReplaceString(body, f.ModelSpan, model)
		}
		if f.Stream && d == g.openai && r.URL.Path != "/v1/responses" {
			body = askForStreamUsage(body)
		}
	}
	c.upstream, c.body, c.sentModel = up, body, model
	g.proxy.ServeHTTP(w, r)
}

// authenticate reads the caller's keygate key or access token and
// verifies it. A credential that verifies is accepted whatever failures
// others have charged to its address or prefix; one that fails is charged
// to its source (authfail.go).
func (g *Gateway) authenticate(w http.ResponseWriter, r *http.Request) (store.Key, bool) {
	c := callFrom(r.Context())
	raw, ok := c.dialect.ClientKey(r.Header)
	if !ok {
		g.deny(w, r, http.StatusUnauthorized, "missing_api_key",
			"no API key: send your keygate key as 'Authorization: Bearer kg_...' or 'x-api-key: kg_...'")
		return store.Key{}, false
	}
	c.cred = raw
	now := g.opts.Now()
	var key store.Key
	var err error
	if g.opts.Tokens != nil && token.LooksLikeJWT(raw) {
		key, err = g.verifyToken(r.Context(), r, raw, now)
		if errors.Is(err, token.ErrInvalid) {
			if t := g.authFailure(r, raw); t != nil {
				t.write(g, w, r)
				return store.Key{}, false
			}
			msg := "invalid access token"
			if errors.Is(err, token.ErrExpired) {
				msg = "the access token has expired; exchange your key or refresh token for a new one at /oauth/token"
			}
			g.deny(w, r, http.StatusUnauthorized, "invalid_api_key", msg)
			return store.Key{}, false
		}
		if errors.Is(err, errUnbound) {
			g.deny(w, r, http.StatusUnauthorized, "invalid_api_key", err.Error())
			return store.Key{}, false
		}
		if errors.Is(err, errSuspended) {
			g.deny(w, r, http.StatusForbidden, "key_suspended", "the key this token was issued for is suspended")
			return store.Key{}, false
		}
	} else {
		key, err = g.opts.Keys.Verify(r.Context(), raw, now)
		if errors.Is(err, apikey.ErrMalformed) || errors.Is(err, apikey.ErrUnknown) {
			callFrom(r.Context()).presentedPrefix = failingIdentity(raw)
			if t := g.authFailure(r, raw); t != nil {
				t.write(g, w, r)
				return store.Key{}, false
			}
		}
	}
	switch {
	case err == nil:
		if g.opts.KeyUsed != nil {
			g.opts.KeyUsed(key.ID, now)
		}
		return key, true
	case errors.Is(err, apikey.ErrMalformed):
		why := apikey.MalformedReason(err)
		if why == "" {
			why = "keygate keys start with kg_"
		}
		g.deny(w, r, http.StatusUnauthorized, "invalid_api_key", "the API key is not a valid keygate key ("+why+"); use the key `keygate key create` printed")
	case errors.Is(err, apikey.ErrUnknown):
		g.deny(w, r, http.StatusUnauthorized, "invalid_api_key", "invalid API key")
	case errors.Is(err, apikey.ErrRevoked):
		g.deny(w, r, http.StatusUnauthorized, "revoked_api_key", "this API key has been revoked")
	case errors.Is(err, apikey.ErrExpired):
		g.deny(w, r, http.StatusUnauthorized, "expired_api_key", "this API key has expired")
	default:
		g.opts.Log.Error("key verification failed", "request_id", web.RequestID(r.Context()), "err", err)
		g.deny(w, r, http.StatusServiceUnavailable, "auth_unavailable", "keygate could not verify the API key right now; try again shortly")
	}
	return store.Key{}, false
}

// route picks the provider for the model.
func (g *Gateway) route(w http.ResponseWriter, r *http.Request, d provider.Dialect, model string) (*route.Upstream, string, bool) {
	up, upstreamModel, err := g.table.Load().Resolve(d.Name(), model)
	var wd *route.WrongDialectError
	switch {
	case err == nil:
		return up, upstreamModel, true
	case errors.As(err, &wd):
		g.deny(w, r, http.StatusBadRequest, "wrong_api_dialect", wd.Error())
	default:
		g.deny(w, r, http.StatusNotFound, "model_not_found", fmt.Sprintf(
			"no provider serves model %q: prefix it with a provider name (as in openai/%s) or register a provider whose --models match it", model, model))
	}
	return nil, "", false
}

// authorize applies the key's (and its token's) allowances to the routed
// call: internal/authz decides.
func (g *Gateway) authorize(w http.ResponseWriter, r *http.Request, key store.Key, up *route.Upstream, model string) bool {
	c := callFrom(r.Context())
	if d := authz.Authorize(c.principal(key), authz.Target{Kind: authz.Model, Provider: up.Name, Env: up.Env, Model: model}); d != nil {
		g.deny(w, r, http.StatusForbidden, d.Code, d.Message)
		return false
	}
	return true
}

// deny answers in the caller's dialect and records why.
func (g *Gateway) deny(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	c := callFrom(r.Context())
	c.denied = code
	if c.keyID != "" && g.opts.Limits.Usage != nil {
		g.opts.Limits.Usage.Record(usage.Entry{KeyID: c.keyID, Model: c.model, At: g.opts.Now(), Denied: true})
	}
	d := c.dialect
	if d == nil {
		d = g.dialectFor(r)
	}
	d.WriteError(w, status, code, msg)
}

// dialectFor guesses the caller's dialect where the path does not fix it.
func (g *Gateway) dialectFor(r *http.Request) provider.Dialect {
	switch r.URL.Path {
	case "/v1/messages", "/v1/messages/count_tokens":
		return g.anthropic
	}
	return provider.DetectListDialect(r.Header)
}

// finishCall settles the call's limits and records its usage, once.
func (g *Gateway) finishCall(c *call, u usage.Usage) {
	c.finished.Do(func() { g.finish(c, u) })
}

// askForStreamUsage asks an OpenAI stream for its final usage chunk when the
// client did not, so keygate can settle the request on real figures. A
// client that set stream_options itself is left alone.
func askForStreamUsage(body []byte) []byte {
	if bytes.Contains(body, []byte(`"stream_options"`)) {
		return body
	}
	end := bytes.LastIndexByte(body, '}')
	if end < 0 {
		return body
	}
	out := make([]byte, 0, len(body)+40)
	out = append(out, body[:end]...)
	out = append(out, `,"stream_options":{"include_usage":true}`...)
	return append(out, body[end:]...)
}
