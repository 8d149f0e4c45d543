package gateway

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/keygate/keygate/internal/jsonpeek"
	"github.com/keygate/keygate/internal/mcpauth"
	"github.com/keygate/keygate/internal/passthrough"
	"github.com/keygate/keygate/internal/principal"
	"github.com/keygate/keygate/internal/provider"
	"github.com/keygate/keygate/internal/web"
)

// This file is the gateway's endpoints, each a list of steps read top to
// bottom. A step either prepares the call (recording what it learned on
// it) or returns a *Denial; the first denial is the answer, written once
// in the caller's dialect, and nothing has gone upstream by then. The
// response half runs while the answer streams back (meter.go: usage is
// read, credentials scrubbed) and once it has ended (settle: the
// reservation is charged what the call used; record: audit, metrics,
// detection).

// endpoint maps the path to its endpoint. Anything else is a 404 in the
// dialect the caller appears to speak.
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
		g.refuse(w, r, deny(http.StatusServiceUnavailable, "audit_unavailable", msg))
		return
	}
	switch r.URL.Path {
	case "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses/compact", "/v1/responses/input_tokens":
		g.serveModel(w, r, g.openai)
	case "/v1/responses":
		if isWebSocketUpgrade(r) {
			g.serveResponsesWS(w, r) // responses_ws.go
			return
		}
		g.serveModel(w, r, g.openai)
	case realtimePath:
		g.serveRealtime(w, r) // realtime.go: a session's upgrade, or one of its responses
	case "/v1/messages", "/v1/messages/count_tokens":
		g.serveModel(w, r, g.anthropic)
	case "/v1/models":
		g.listModels(w, r, g.listDialect(r))
	case "/v1beta/models", "/v1alpha/models":
		g.listModels(w, r, g.gemini)
	case "/oauth/token":
		g.tokenEndpoint(w, r)
	case mcpauth.MetadataPath, mcpauth.RegisterPath: // public, as the MCP authorization spec asks (mcpauth.go)
		g.serveAuthorizationServer(w, r)
	case "/oauth/revoke":
		g.revokeEndpoint(w, r)
	case "/oauth/introspect":
		g.introspectEndpoint(w, r)
	case "/.well-known/jwks.json":
		g.jwks(w, r)
	case SecretsPath:
		g.serveSecret(w, r)
	case "/healthz":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	case "/readyz":
		if g.opts.Ready == nil {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = w.Write([]byte("ready\n"))
			return
		}
		g.opts.Ready.ServeHTTP(w, r)
	default:
		if strings.HasPrefix(r.URL.Path, passthrough.RoutePrefix) {
			g.servePassthrough(w, r)
			return
		}
		if strings.HasPrefix(r.URL.Path, BedrockPrefix) {
			g.serveBedrock(w, r)
			return
		}
		if isMCPPath(r.URL.Path) {
			g.serveMCP(w, r)
			return
		}
		if provider.IsGeminiPath(r.URL.Path) || (strings.HasPrefix(r.URL.Path, "/v1/models/") && speaksGemini(r)) {
			g.serveGemini(w, r)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/v1/responses/") {
			g.serveStoredResponse(w, r) // responses_owner.go
			return
		}
		if strings.HasPrefix(r.URL.Path, ProtectedResourcePath) {
			g.protectedResource(w, r)
			return
		}
		g.refuse(w, r, denyf(http.StatusNotFound, "unknown_url", "keygate does not serve %s %s", r.Method, r.URL.Path))
	}
}

// recorded reports whether requests to path are audit events, which
// fail-closed auditing refuses while the trail cannot record: everything
// but the health and readiness checks and the public metadata (signing
// keys, protected resource and authorization server).
func recorded(path string) bool {
	return path != "/healthz" && path != "/readyz" && path != "/.well-known/jwks.json" && !strings.HasPrefix(path, ProtectedResourcePath) &&
		path != mcpauth.MetadataPath
}

// serveModel serves an API call of dialect d: an OpenAI or Anthropic
// model call, forwarded to the provider (or the alias deployment) that
// serves its model.
func (g *Gateway) serveModel(w http.ResponseWriter, r *http.Request, d provider.Dialect) {
	c := callFrom(r.Context())
	c.dialect = d
	switch r.URL.Path {
	case "/v1/responses":
		// Its id is recorded as the key's (responses_owner.go); a
		// response.create on a WebSocket comes here too (responses_ws.go).
		c.ownsResponse, c.ws = true, wsTurnFrom(r.Context()) != nil
	case "/v1/responses/input_tokens":
		c.countOnly = true // a count: charged as a request
	}
	if den := g.prepareModelCall(w.Header(), r, c); den != nil {
		g.refuse(w, r, den)
		return
	}
	// settle runs last, even when the client goes away mid-stream (the
	// reverse proxy then aborts the handler with a panic).
	defer g.settle(c)
	g.proxy.ServeHTTP(w, r) // forward (proxy.go); the answer is metered as it streams
}

// caller runs the steps every authenticated call takes first: who (the
// keygate key or access token), whether the key may make this call here
// and now (scope.go), and the risk rules (risk.go).
func (g *Gateway) caller(r *http.Request, c *call) (*principal.Principal, *Denial) {
	key, den := g.authenticate(r, c)
	if den != nil {
		return nil, den
	}
	if den := g.checkScope(r, c, key); den != nil {
		return nil, den
	}
	if den := g.assessRisk(r, c, key); den != nil {
		return nil, den
	}
	return key, nil
}

// callerAndBody runs the first steps every model call takes, whatever its
// dialect, in this order: who (the keygate key or access token, its
// scope here, the risk rules), then what (the body, read within the
// memory budget, a large one only after the key's concurrency slots are
// taken; no credential leaving in it, refused or redacted as configured).
func (g *Gateway) callerAndBody(r *http.Request, c *call) (*principal.Principal, []byte, *Denial) {
	key, den := g.caller(r, c)
	if den != nil {
		return nil, nil, den
	}
	if den := g.admitEarly(r, c, key); den != nil {
		return nil, nil, den
	}
	body, den := g.readBody(r, c)
	if den != nil {
		return nil, nil, den
	}
	if body, den = g.checkLeaks(c, key, body); den != nil {
		return nil, nil, den
	}
	return key, body, nil
}

// prepareModelCall runs a model call's steps up to the point where it
// can go upstream. h receives the headers of an admitted call (its limits'
// figures).
func (g *Gateway) prepareModelCall(h http.Header, r *http.Request, c *call) *Denial {
	if r.Method != http.MethodPost {
		return denyf(http.StatusMethodNotAllowed, "method_not_allowed", "use POST for %s", r.URL.Path)
	}
	key, body, den := g.callerAndBody(r, c)
	if den != nil {
		return den
	}
	f, den := peekFields(body)
	if den != nil {
		return den
	}
	c.model, c.clientModel = f.Model, f.Model
	c.turn = g.turnPrint(body, f)
	if den := g.checkPrevious(r, key, body); den != nil {
		return den
	}
	// Where: an alias's deployments the key may reach, or the one
	// provider serving the model, authorized and, across dialects,
	// translated.
	if a, isAlias := g.table.Load().Alias(f.Model); isAlias {
		c.raw, c.fields, c.path = body, f, r.URL.Path
		if den := g.tracedRouteAlias(r, c, key, a); den != nil {
			return den
		}
		if !c.mayTranslate {
			g.untranslated(c, body)
		}
		// Admission: the worst case reserved against every limit at once.
		return g.tracedAdmit(h, r, c, key, f.Model, f, len(body))
	}
	st := startStep(c)
	up, model, den := g.route(c.dialect, f.Model)
	if den == nil {
		den = g.authorize(c, key, up, model)
	}
	st.end(stepRoute)
	if den != nil {
		return den
	}
	body, den = g.shapeForUpstream(r, c, up, f, body, model)
	if den != nil {
		return den
	}
	if den := g.tracedAdmit(h, r, c, key, model, f, len(body)); den != nil {
		return den
	}
	c.upstream, c.body, c.sentModel = up, body, model
	return nil
}

// peekFields reads the top-level fields keygate needs from a body.
func peekFields(body []byte) (jsonpeek.Fields, *Denial) {
	f, err := jsonpeek.Scan(body)
	if err != nil {
		if se, ok := err.(*jsonpeek.SyntaxError); ok && se.Field != "" {
			return f, denyf(http.StatusBadRequest, "invalid_field", "request field %q cannot be used: %s", se.Field, err)
		}
		return f, deny(http.StatusBadRequest, "invalid_json", "request body is not valid JSON: "+err.Error())
	}
	if !f.HasModel || f.Model == "" {
		return f, deny(http.StatusBadRequest, "missing_model", `request body must name a model, as in {"model": "gpt-4o-mini", ...}`)
	}
	return f, nil
}

// servePassthrough serves /proxy/{service}/...: any HTTP API call to a
// configured service (services: in the configuration), with the
// service's credential from the vault injected where it wants it. The
// call passes the same steps as a model call, but for the body, which is
// forwarded as it is, and routing, which the path decides.
func (g *Gateway) servePassthrough(w http.ResponseWriter, r *http.Request) {
	c := callFrom(r.Context())
	c.dialect = g.openai // errors in the OpenAI JSON shape
	if den := g.preparePassthrough(w.Header(), r, c); den != nil {
		g.refuse(w, r, den)
		return
	}
	defer g.settle(c)
	g.passProxy.ServeHTTP(w, r) // forward (passthrough.go)
}

// preparePassthrough runs a passthrough call's steps up to the point
// where it can go upstream.
func (g *Gateway) preparePassthrough(h http.Header, r *http.Request, c *call) *Denial {
	switch r.Method {
	case http.MethodTrace, "TRACK", http.MethodConnect:
		// TRACE and TRACK echo the request, injected credential included,
		// back to the client; CONNECT would turn keygate into a tunnel.
		return denyf(http.StatusMethodNotAllowed, "method_not_allowed", "keygate does not pass %s to a service", r.Method)
	}
	name, rest, ok := passthrough.ServiceFromPath(r.URL.EscapedPath())
	svc, known := g.table.Load().Service(name)
	if !ok || !known {
		return denyf(http.StatusNotFound, "unknown_service", "keygate has no service %q; services are configured under services: in keygate's configuration", name)
	}
	key, den := g.caller(r, c)
	if den != nil {
		return den
	}
	if den := g.authorizeService(c, key, svc); den != nil {
		return den
	}
	if err := passthrough.CheckPath(rest); err != nil {
		return deny(http.StatusBadRequest, "invalid_path", err.Error())
	}
	c.service, c.passRest = svc, rest
	if den := g.admitEarly(r, c, key); den != nil {
		return den
	}
	body, den := g.readBody(r, c)
	if den != nil {
		return den
	}
	if body, den = g.checkLeaks(c, key, body); den != nil {
		return den
	}
	c.upstream = upstreamOf(svc)
	if den := g.tracedAdmit(h, r, c, key, "", emptyFields, len(body)); den != nil {
		return den
	}
	c.body = body
	return nil
}

// notServed answers a method an endpoint does not take.
func notServed(method, path string) *Denial {
	return deny(http.StatusMethodNotAllowed, "method_not_allowed", fmt.Sprintf("use %s for %s", method, path))
}
