package gateway

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/keygate/keygate/internal/jsonpeek"
	"github.com/keygate/keygate/internal/mcpauth"
	"github.com/keygate/keygate/internal/passthrough"
	"github.com/keygate/keygate/internal/principal"
	"github.com/keygate/keygate/internal/provider"
	"github.com/keygate/keygate/internal/route"
)

// Tracing (Options.Tracer) gives each gateway request one server span,
// named and attributed after the OpenTelemetry GenAI semantic
// conventions ("chat gpt-4o-mini"; gen_ai.operation.name,
// gen_ai.provider.name, gen_ai.request.model, gen_ai.response.model,
// gen_ai.usage.*), with keygate's own attributes under keygate.*: the
// key id, the decision and its reason, the cost. Its only children are
// the upstream attempts, one client span each, which carry the trace
// context upstream as a W3C traceparent.
//
// The pipeline's own steps are attributes of the server span, each the
// step's duration: keygate.route.duration_seconds,
// keygate.admission.duration_seconds, keygate.audit.duration_seconds
// (with keygate.alias and keygate.deployments for an alias). Which of
// them ran tells where a refused call stopped (one refused at routing
// has no admission time), and keygate.denial.reason says why. They are
// not spans because a span is what tracing costs: each
// one is an SDK object with its own IDs, lock, attribute set, snapshot
// and trip through the batch queue, and an OTLP message of its own to
// encode, send and store, while these steps take microseconds, run one
// after the other in a fixed order inside the request and never leave
// the process. Nor are they span events, which cost three to four
// allocations each in the SDK: as attributes they cost nothing but
// their slots in the span's attribute slice, and a backend can query
// them (find the requests whose admission took over a millisecond).
// Five spans a request became two. The upstream attempt stays a span:
// it crosses to another service, which continues the trace from it.
//
// No span holds a secret, a body, a query string or a
// passthrough path. With no tracer every function here returns at its
// first line: tracing off costs a nil check.

// propagator reads and writes W3C trace context.
var propagator = propagation.TraceContext{}

// Attribute keys of the GenAI semantic conventions (semconv v1.40) and
// keygate's own.
const (
	attrOperation   = attribute.Key("gen_ai.operation.name")
	attrProvider    = attribute.Key("gen_ai.provider.name")
	attrSystem      = attribute.Key("gen_ai.system") // the name before gen_ai.provider.name, still read by many backends
	attrReqModel    = attribute.Key("gen_ai.request.model")
	attrRespModel   = attribute.Key("gen_ai.response.model")
	attrInTokens    = attribute.Key("gen_ai.usage.input_tokens")
	attrOutTokens   = attribute.Key("gen_ai.usage.output_tokens")
	attrMethod      = attribute.Key("http.request.method")
	attrStatus      = attribute.Key("http.response.status_code")
	attrRoute       = attribute.Key("http.route")
	attrServerAddr  = attribute.Key("server.address")
	attrKeyID       = attribute.Key("keygate.key.id")
	attrDecision    = attribute.Key("keygate.decision")
	attrReason      = attribute.Key("keygate.denial.reason")
	attrFailure     = attribute.Key("keygate.failure")
	attrCost        = attribute.Key("keygate.cost.usd")
	attrUpstream    = attribute.Key("keygate.provider")
	attrDeployment  = attribute.Key("keygate.deployment")
	attrService     = attribute.Key("keygate.service")
	attrRequestID   = attribute.Key("keygate.request.id")
	attrRisk        = attribute.Key("keygate.risk")
	attrOverheadSec = attribute.Key("keygate.overhead_seconds")
	attrAlias       = attribute.Key("keygate.alias")
	attrDeployments = attribute.Key("keygate.deployments")
	attrErrorType   = attribute.Key("error.type")
)

// startTrace opens the request's server span, as a child of the trace
// context the caller sent, if any.
func (g *Gateway) startTrace(ctx context.Context, r *http.Request, c *call) context.Context {
	if _, ok := r.Header["Traceparent"]; ok {
		ctx = propagator.Extract(ctx, propagation.HeaderCarrier(r.Header))
	}
	c.op = operation(r.URL.Path)
	// Options made once, and attributes only on a sampled span (endTrace):
	// most requests of a sampled-down service build nothing here.
	ctx, c.span = g.opts.Tracer.Start(ctx, r.Method, serverSpan...)
	c.traced = c.span.IsRecording()
	return ctx
}

// serverSpan are the start options of every request's span.
var serverSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}

// endTrace names the request's span and sets what the call came to.
func (g *Gateway) endTrace(r *http.Request, c *call, status int) {
	sp := c.span
	if !c.traced {
		sp.End() // a trace not sampled: nothing to describe
		return
	}
	buf := g.attrBufs.get()
	defer g.attrBufs.put(buf)
	attrs := append(*buf, attrMethod.String(r.Method), attrStatus.Int(status), attrRequestID.String(c.requestID))
	name := r.Method
	if rt := spanRoute(r.URL.Path); rt != "" {
		attrs = append(attrs, attrRoute.String(rt))
		name += " " + rt
	}
	op := c.op
	if op != "" {
		attrs = append(attrs, attrOperation.String(op))
		if c.clientModel != "" {
			attrs = append(attrs, attrReqModel.String(c.clientModel))
			name = op + " " + c.clientModel
		}
		if c.respModel != "" {
			attrs = append(attrs, attrRespModel.String(c.respModel))
		}
	}
	sp.SetName(name)
	if c.keyID != "" {
		attrs = append(attrs, attrKeyID.String(c.keyID))
	}
	if c.upstream != nil {
		attrs = append(attrs, attrUpstream.String(c.upstream.Name))
		if op != "" {
			p := genAIProvider(c.upstream)
			attrs = append(attrs, attrProvider.String(p), attrSystem.String(p))
		}
	}
	if c.deployment != nil {
		attrs = append(attrs, attrDeployment.String(c.deployment.Name))
	}
	if c.service != nil {
		attrs = append(attrs, attrService.String(c.service.Name))
	}
	if c.risk != "" {
		attrs = append(attrs, attrRisk.String(c.risk))
	}
	switch {
	case c.denied != "":
		attrs = append(attrs, attrDecision.String("deny"), attrReason.String(c.denied))
	case c.keyID != "":
		attrs = append(attrs, attrDecision.String("allow"))
	}
	if c.failure != "" {
		attrs = append(attrs, attrFailure.String(c.failure))
	}
	if c.upstream != nil && c.denied == "" {
		u := c.used
		if in := u.InputTokens + u.CacheWriteTokens; in > 0 {
			attrs = append(attrs, attrInTokens.Int64(in))
		}
		if u.OutputTokens > 0 {
			attrs = append(attrs, attrOutTokens.Int64(u.OutputTokens))
		}
		attrs = append(attrs, attrCost.Float64(float64(c.microUSD)/1e6))
	}
	if c.overhead > 0 {
		attrs = append(attrs, attrOverheadSec.Float64(c.overhead.Seconds()))
	}
	if c.alias != nil {
		attrs = append(attrs, attrAlias.String(c.alias.Name), attrDeployments.Int(len(c.order)))
	}
	for i, d := range c.steps {
		if d > 0 {
			attrs = append(attrs, stepAttr(i).Float64(d.Seconds()))
		}
	}
	sp.SetAttributes(attrs...)
	if status >= 500 {
		sp.SetStatus(codes.Error, c.denied+c.failure)
	}
	sp.End()
}

// spanRoute is the low-cardinality route of a path: the endpoint's own
// path, /proxy/{service} for a passthrough call, "" for anything else.
func spanRoute(path string) string {
	switch path {
	case "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/messages",
		"/v1/responses/compact", "/v1/responses/input_tokens",
		"/v1/messages/count_tokens", "/v1/models", "/oauth/token", "/oauth/revoke", "/oauth/introspect",
		"/.well-known/jwks.json", SecretsPath, "/healthz", mcpauth.RegisterPath, mcpauth.MetadataPath:
		return path
	}
	if strings.HasPrefix(path, "/v1/responses/") {
		return "/v1/responses/{id}" // and its cancel and input_items
	}
	if len(path) > len(passthrough.RoutePrefix) && path[:len(passthrough.RoutePrefix)] == passthrough.RoutePrefix {
		return passthrough.RoutePrefix + "{service}"
	}
	if provider.IsGeminiPath(path) || path == "/v1/models" || strings.HasPrefix(path, "/v1/models/") {
		return geminiRoute(path)
	}
	return ""
}

// geminiRoute is the route of a Gemini API path, its model left out:
// /v1beta/models/{model}:generateContent. Only a method keygate serves
// is named; anything else is "".
func geminiRoute(path string) string {
	gc, err := provider.ParseGeminiPath(path)
	switch {
	case err == nil && gc.Method != "":
		return "/" + gc.Version + "/models/{model}:" + gc.Method
	case err == nil:
		return "/" + gc.Version + "/models/{model}"
	case path == "/v1beta/models" || path == "/v1alpha/models":
		return path
	}
	return ""
}

// operation is the GenAI operation a model endpoint performs, "" for
// the other endpoints.
func operation(path string) string {
	switch path {
	case "/v1/chat/completions", "/v1/responses", "/v1/messages":
		return "chat"
	case "/v1/completions":
		return "text_completion"
	case "/v1/embeddings":
		return "embeddings"
	case "/v1/messages/count_tokens":
		return "count_tokens"
	}
	switch {
	case !provider.IsGeminiPath(path):
	case strings.HasSuffix(path, ":generateContent"), strings.HasSuffix(path, ":streamGenerateContent"):
		return "generate_content"
	case strings.HasSuffix(path, ":countTokens"):
		return "count_tokens"
	}
	return ""
}

// genAIProvider is the gen_ai.provider.name of an upstream: the
// convention's name for the service its preset names, else its dialect.
func genAIProvider(up *route.Upstream) string {
	if up.Preset != nil {
		switch up.Preset.Name {
		case "azure-openai":
			return "azure.ai.openai"
		case "gemini":
			return "gcp.gemini"
		case "mistral":
			return "mistral_ai"
		case "xai":
			return "x_ai"
		case "openai", "anthropic", "groq", "deepseek":
			return up.Preset.Name
		}
	}
	if up.Dialect == "gemini" {
		return "gcp.gemini"
	}
	return up.Dialect
}

// The pipeline steps timed for the request's span, indexes of
// call.steps.
const (
	stepRoute = iota
	stepAdmission
	stepAudit
	nSteps
)

// stepAttr names step i's duration on the request's span.
func stepAttr(i int) attribute.Key {
	switch i {
	case stepRoute:
		return "keygate.route.duration_seconds"
	case stepAdmission:
		return "keygate.admission.duration_seconds"
	}
	return "keygate.audit.duration_seconds"
}

// A step is one pipeline step being timed; zero when the request's
// trace is not recorded.
type step struct {
	c     *call
	start time.Time
}

// startStep starts timing a step of call c; a zero step when tracing is
// off or the trace is not sampled.
func startStep(c *call) step {
	if c == nil || !c.traced {
		return step{} // off, or a trace not sampled: its steps are not either
	}
	return step{c: c, start: time.Now()}
}

// end adds the step's duration to the call's step i.
func (st step) end(i int) {
	if st.c != nil {
		st.c.steps[i] += max(time.Since(st.start), 1) // ran, even within the clock's grain
	}
}

// tracedAdmit is admit (limits.go), timed as the admission step.
func (g *Gateway) tracedAdmit(h http.Header, r *http.Request, c *call, key *principal.Principal, model string, f jsonpeek.Fields, bodyLen int) *Denial {
	st := startStep(c)
	den := g.admit(h, r, c, key, model, f, bodyLen)
	st.end(stepAdmission)
	return den
}

// tracedRouteAlias is routeAlias (routing.go), timed as the route step.
func (g *Gateway) tracedRouteAlias(r *http.Request, c *call, key *principal.Principal, a *route.Alias) *Denial {
	st := startStep(c)
	den := g.routeAlias(r, c, key, a)
	st.end(stepRoute)
	return den
}

// roundTrip sends one upstream attempt: in a client span named after
// the GenAI operation and the model sent, whose context goes upstream as
// traceparent, and timed, so what keygate itself adds can be told apart
// from the upstream's wait (overhead).
func (g *Gateway) roundTrip(base http.RoundTripper, out *http.Request, c *call, up *route.Upstream, model string) (*http.Response, error) {
	var sp trace.Span
	var attrs []attribute.KeyValue
	if c.span != nil && !c.traced {
		// A trace not sampled: the provider is told so, with no span of
		// ours to describe.
		propagator.Inject(out.Context(), headerCarrier(out.Header))
	} else if g.opts.Tracer != nil {
		name := c.op
		if name == "" {
			name = out.Method
		} else if model != "" {
			name += " " + model
		}
		var ctx context.Context
		ctx, sp = g.opts.Tracer.Start(out.Context(), name, clientSpan...)
		buf := g.attrBufs.get()
		defer g.attrBufs.put(buf)
		attrs = append(*buf, attrServerAddr.String(out.URL.Hostname()), attrMethod.String(out.Method))
		if up != nil {
			attrs = append(attrs, attrUpstream.String(up.Name))
		}
		if c.op != "" && up != nil {
			p := genAIProvider(up)
			attrs = append(attrs, attrOperation.String(c.op), attrProvider.String(p), attrSystem.String(p), attrReqModel.String(model))
		}
		propagator.Inject(ctx, headerCarrier(out.Header))
	}
	var t0 time.Time
	if c.timed {
		t0 = time.Now()
	}
	var resp *http.Response
	var err error
	if up != nil {
		resp, err = up.RoundTrip(out, base) // a cloud-identity upstream signs here
	} else {
		resp, err = base.RoundTrip(out)
	}
	if c.timed {
		c.upstreamWait += time.Since(t0)
	}
	if sp != nil {
		if err != nil {
			sp.SetStatus(codes.Error, "no answer")
			attrs = append(attrs, attrErrorType.String(errorType(err)))
		} else {
			attrs = append(attrs, attrStatus.Int(resp.StatusCode))
			if resp.StatusCode >= 400 {
				sp.SetStatus(codes.Error, strconv.Itoa(resp.StatusCode))
			}
		}
		sp.SetAttributes(attrs...)
		sp.End()
	}
	return resp, err
}

// clientSpan are the start options of every upstream attempt's span.
var clientSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}

// errorType names an attempt's failure without its text, which may hold
// internal host names.
func errorType(err error) string {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return "timeout"
	}
	return "unreachable"
}

// recordAudit is audit (gateway.go), timed as the audit step.
func (g *Gateway) recordAudit(ctx context.Context, r *http.Request, c *call, status int, start time.Time) {
	st := startStep(c)
	g.audit(r, c, status, start)
	st.end(stepAudit)
}

// responseModel reads the model an upstream's JSON answer names, for
// gen_ai.response.model; only traced calls read it. It stops at the
// first top-level "model" (near the start of every provider's answer),
// and an answer naming the model sent returns sent itself, not a copy.
func responseModel(body []byte, sent string) string {
	s := jsonpeek.NewScanner(body)
	for key, ok := s.FirstMember(); ok; key, ok = s.NextMember() {
		if string(key) != "model" {
			s.Skip()
			continue
		}
		v := s.Skip()
		if len(v) < 2 || v[0] != '"' {
			return ""
		}
		if raw := v[1 : len(v)-1]; string(raw) == sent && bytes.IndexByte(raw, '\\') < 0 {
			return sent
		}
		m, ok := jsonpeek.AppendUnquoted(nil, v)
		if !ok {
			return ""
		}
		return string(m)
	}
	return ""
}

// headerCarrier is propagation.HeaderCarrier that writes the W3C
// headers under their canonical names as they are, without the
// canonicalisation (and its copy of the name) http.Header.Set does on
// every upstream attempt.
type headerCarrier http.Header

// Get implements propagation.TextMapCarrier.
func (h headerCarrier) Get(key string) string { return http.Header(h).Get(key) }

// Set implements propagation.TextMapCarrier.
func (h headerCarrier) Set(key, value string) {
	switch key {
	case "traceparent":
		h["Traceparent"] = []string{value}
	case "tracestate":
		h["Tracestate"] = []string{value}
	default:
		http.Header(h).Set(key, value)
	}
}

// Keys implements propagation.TextMapCarrier.
func (h headerCarrier) Keys() []string { return propagation.HeaderCarrier(h).Keys() }

// attrBufs lends the attribute slices a span's attributes are built in:
// the SDK copies what SetAttributes is given, so a slice serves one
// span after another instead of one allocation each.
type attrBufs struct{ p sync.Pool }

// get lends an empty slice.
func (b *attrBufs) get() *[]attribute.KeyValue {
	if s, ok := b.p.Get().(*[]attribute.KeyValue); ok {
		return s
	}
	s := make([]attribute.KeyValue, 0, 32)
	return &s
}

// put takes a slice back.
func (b *attrBufs) put(s *[]attribute.KeyValue) {
	clear(*s) // drop the strings it points to
	*s = (*s)[:0]
	b.p.Put(s)
}

// passAttempt is the passthrough proxy's transport when requests are
// traced or timed: each request to a service is an attempt.
type passAttempt struct {
	g    *Gateway
	base http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (p passAttempt) RoundTrip(req *http.Request) (*http.Response, error) {
	c := callFrom(req.Context())
	return p.g.roundTrip(p.base, req, c, c.upstream, "")
}

// setOverhead records what keygate added before the answer's headers
// could go to the client: the time since the request arrived less the
// upstream attempts' waits. With Options.OverheadHeader it is sent as
// X-Keygate-Overhead, in milliseconds.
func (g *Gateway) setOverhead(c *call, h http.Header) {
	if !c.timed {
		return
	}
	c.overhead = max(time.Since(c.start)-c.upstreamWait, 0)
	if g.opts.OverheadHeader {
		h.Set("X-Keygate-Overhead", strconv.FormatFloat(float64(c.overhead.Microseconds())/1000, 'f', 3, 64)+"ms")
	}
}
