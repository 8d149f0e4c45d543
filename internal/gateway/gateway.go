// Package gateway is keygate's data plane: the OpenAI-, Anthropic- and
// Gemini-compatible endpoint that apps and agents call with their keygate
// key. Read this file top
// to bottom to follow a request:
//
//	ServeHTTP        request id, access log, panic recovery (outermost first)
//	 -> endpoint     which API dialect the path speaks (OpenAI, Anthropic, or
//	                 Gemini's native API, whose call is in gemini.go)
//	 -> authenticate the keygate key or an access token exchanged for one
//	                 (Authorization: Bearer or x-api-key; oauth.go), or a
//	                 Bedrock client's SigV4 signature (sigv4.go)
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
	"context"
	"hash/maphash"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/balance"
	"github.com/keygate/keygate/internal/detect"
	"github.com/keygate/keygate/internal/jsonpeek"
	"github.com/keygate/keygate/internal/leak"
	"github.com/keygate/keygate/internal/limit"
	"github.com/keygate/keygate/internal/passthrough"
	"github.com/keygate/keygate/internal/principal"
	"github.com/keygate/keygate/internal/provider"
	"github.com/keygate/keygate/internal/route"
	"github.com/keygate/keygate/internal/scrub"
	"github.com/keygate/keygate/internal/web"
)

// KeyVerifier checks presented keygate keys and serves their compiled
// principals; internal/keysource implements it. Verify answers
// apikey.ErrMalformed, ErrUnknown, ErrRevoked or ErrExpired for a key that
// may not be used (with the principal for the last two); ByID serves the
// key an access token stands for.
type KeyVerifier interface {
	Verify(ctx context.Context, raw string, now time.Time) (*principal.Principal, error)
	ByID(ctx context.Context, keyID string, now time.Time) (*principal.Principal, error)
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
	// PublicURL is the gateway's origin as clients reach it
	// (config.Config.PublicOrigin), for the OAuth metadata and resources
	// it names; "" takes it from each request (see origin).
	PublicURL string
	AccessLog bool
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
	// Secrets, when set, serves vault secrets at GET /secrets to the keys
	// and tokens allowed to read them (secrets.go).
	Secrets SecretReader
	// Ready, when set, answers readiness probes at GET /readyz
	// (internal/ready); without it /readyz answers like /healthz.
	Ready http.Handler
	// Detect, when set, watches every request for anomalies (internal/detect).
	Detect interface {
		Observe(o detect.Observation)
	}
	// Leaks, when set, checks every forwarded body for credentials
	// (leaks.go); SetLeakMatcher gives it the vault's values.
	Leaks *LeakOptions
	// MCP, when set, serves the Model Context Protocol at /mcp and
	// /mcp/{server} (mcp.go).
	MCP MCPServer
	// Tracer, when set, traces every request (tracing.go); nil turns
	// tracing off at no cost.
	Tracer trace.Tracer
	// OverheadHeader sends X-Keygate-Overhead on forwarded answers: what
	// keygate itself added before the answer's headers, in milliseconds.
	OverheadHeader bool
	// ResponsesWS tunes the Responses API's WebSocket mode (responses_ws.go).
	ResponsesWS ResponsesWSOptions
	// ResponseOwners, when set, is the record shared by every node of
	// which key created each response made through keygate, so only that
	// key may read, cancel, delete or continue it (responses_owner.go).
	// Each node also keeps the newest in memory; without it, only those.
	ResponseOwners ResponseOwners
	// SigV4, when set, verifies the signatures of Bedrock clients that
	// sign with the AWS access key pair bound to their keygate key
	// (sigv4.go); nil refuses such requests.
	SigV4 SigV4Verifier
	Now   func() time.Time
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
	gemini    provider.Dialect
	models    *modelCache
	histories histories
	// What is known of each alias deployment, across table reloads, and
	// the limiter holding deployments to their providers' RPM and TPM.
	health         *balance.Health
	upstreamLimits Limiter
	bodyMem        *bodyBudget
	scrubs         *scrub.Cache // the wire forms of upstream credentials, to remove from answers
	leaks          atomic.Pointer[leak.Matcher]
	turnSeed       maphash.Seed // turnPrint's, this process's own
	// noWS holds, by provider name, until when a provider that refused
	// the Responses WebSocket upgrade is reached over HTTP (responses_wsup.go).
	noWS   sync.Map
	owners *ownerRecord
	// sockets counts the open Responses WebSockets by key (responses_ws.go).
	sockets socketCount
	// attrBufs lends traced requests the slices their spans' attributes
	// are built in (tracing.go).
	attrBufs attrBufs
}

// New builds a gateway serving the given routing table.
func New(opts Options, table *route.Table) *Gateway {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Transport == nil {
		opts.Transport = http.DefaultTransport
	}
	g := &Gateway{opts: opts, models: newModelCache(time.Minute), health: balance.NewHealth(opts.Breaker), bodyMem: newBodyBudget(opts.MaxInflightBodyBytes), scrubs: scrub.NewCache(256), turnSeed: maphash.MakeSeed()}
	g.owners = &ownerRecord{local: NewMemoryResponseOwners(100_000), shared: opts.ResponseOwners, log: opts.Log, writes: make(chan struct{}, maxOwnerWrites)}
	g.upstreamLimits = opts.Limits.Shared
	if g.upstreamLimits == nil {
		g.upstreamLimits = limit.NewMemory()
	}
	g.openai, _ = provider.Lookup("openai")
	g.anthropic, _ = provider.Lookup("anthropic")
	g.gemini, _ = provider.Lookup("gemini")
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
	if opts.Tracer != nil || opts.Metrics != nil || opts.OverheadHeader {
		pt = passAttempt{g: g, base: pt}
	}
	g.passProxy = g.newPassthroughProxy(pt)
	// The order, outermost first: a request id exists before anything logs,
	// the access log sees the final status, recovery answers in the dialect.
	mws := []web.Middleware{web.NewRequestIDs().Middleware}
	if opts.AccessLog {
		mws = append(mws, web.AccessLog(opts.Log, "gateway request", logFields))
	}
	mws = append(mws, web.Recover(opts.Log, func(w http.ResponseWriter, r *http.Request) {
		g.refuse(w, r, deny(http.StatusInternalServerError, "internal_error", "keygate hit an internal error; the request id is in the X-Request-Id header"))
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
	// Overhead records what keygate added to a forwarded call before
	// the answer's headers, upstream waits excluded.
	Overhead(d time.Duration)
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
	if g.opts.Metrics == nil && g.opts.Audit == nil && g.opts.Detect == nil && g.opts.Tracer == nil && !g.opts.OverheadHeader {
		g.chain.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callKey{}, c)))
		return
	}
	start := time.Now()
	c.start, c.timed = start, g.opts.Metrics != nil || g.opts.OverheadHeader
	ctx := context.WithValue(r.Context(), callKey{}, c)
	if g.opts.Tracer != nil {
		ctx = g.startTrace(ctx, r, c)
	}
	sw := &web.StatusWriter{ResponseWriter: w}
	g.chain.ServeHTTP(sw, r.WithContext(ctx))
	if g.opts.Metrics != nil {
		dialect := ""
		if c.dialect != nil {
			dialect = c.dialect.Name()
		}
		g.opts.Metrics.Request(dialect, c.keyID, sw.Status, c.denied, time.Since(start))
		if c.overhead > 0 {
			g.opts.Metrics.Overhead(c.overhead)
		}
	}
	if g.opts.Audit != nil && (c.keyID != "" || c.denied != "") {
		g.recordAudit(ctx, r, c, sw.Status, start)
	}
	if g.opts.Detect != nil && (c.keyID != "" || c.denied != "") {
		g.observe(r, c, start)
	}
	if c.span != nil {
		g.endTrace(r, c, sw.Status)
	}
}

// turnPrint hashes the end of a request's conversation (and its model),
// for the loop detector: requests whose conversations end alike get the
// same number. The seed is this process's own, so the number says nothing
// outside it. 0 when detection is off or the body has no turns.
func (g *Gateway) turnPrint(body []byte, f jsonpeek.Fields) uint64 {
	if g.opts.Detect == nil || f.TurnsTail.Start < 0 {
		return 0
	}
	var h maphash.Hash
	h.SetSeed(g.turnSeed)
	h.WriteString(f.Model)
	h.WriteByte(0)
	h.Write(body[f.TurnsTail.Start:f.TurnsTail.End])
	return max(h.Sum64(), 1)
}

// authDenials are the refusals that count as failed authentication.
var authDenials = map[string]bool{"missing_api_key": true, "invalid_api_key": true, "invalid_signature": true, "too_many_auth_failures": true}

// observe hands a finished request to the anomaly detectors.
func (g *Gateway) observe(r *http.Request, c *call, start time.Time) {
	o := detect.Observation{
		At: start, KeyID: c.keyID, Client: web.ClientAddr(r, g.opts.TrustedProxies).String(),
		AuthFailed: authDenials[c.denied], Model: c.model, Path: r.URL.Path, MicroUSD: c.microUSD,
		BudgetMicroUSD: c.budgetMicro, LimitRPS: c.limitRPS,
	}
	if c.denied == "" {
		o.Turn = c.turn
		// The whole context the model read: OpenAI counts cached input in
		// its input tokens, Anthropic apart.
		o.ContextTokens = c.used.InputTokens + c.used.CacheWriteTokens
		if c.used.CacheReadTokens > 0 && c.used.CacheReadTokens > c.used.InputTokens {
			o.ContextTokens += c.used.CacheReadTokens
		}
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
	if c.ws {
		ev.Fields["transport"] = "websocket"
	}
	if c.responseID != "" {
		ev.Fields["response_id"] = c.responseID
	}
	if c.metered {
		// What the call used and cost, as metered: the trail alone
		// accounts for spend, whatever becomes of the usage rows.
		ev.Fields["input_tokens"], ev.Fields["output_tokens"] = strconv.FormatInt(c.meteredIn, 10), strconv.FormatInt(c.meteredOut, 10)
		if c.est.priced {
			ev.Fields["micro_usd"] = strconv.FormatInt(c.microUSD, 10)
		}
	}
	if c.leakAction != "" {
		ev.Fields["leak_action"], ev.Fields["leak_rules"] = c.leakAction, c.leakRules
		if c.leakValues != "" {
			ev.Fields["leak_values"] = c.leakValues
		}
	}
	g.answerLeakFields(c, ev.Fields)
	if err := g.opts.Audit.Record(ev); err != nil {
		g.opts.Log.Error("could not record a request in the audit trail", "request_id", c.requestID, "err", err)
	}
}
