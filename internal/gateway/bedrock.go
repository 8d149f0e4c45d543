package gateway

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/keygate/keygate/internal/cloudauth"
	"github.com/keygate/keygate/internal/jsonpeek"
	"github.com/keygate/keygate/internal/provider"
	"github.com/keygate/keygate/internal/route"
)

// BedrockPrefix starts the paths of Amazon Bedrock's runtime API, which
// clients in Bedrock mode (the AWS SDKs with a Bedrock API key, Claude
// Code's Bedrock mode) call: /model/{modelId}/{operation}.
const BedrockPrefix = "/model/"

// bedrockOps are the Bedrock runtime operations keygate forwards, by the
// last path segment.
var bedrockOps = map[string]bool{"invoke": true, "invoke-with-response-stream": true, "converse": true, "converse-stream": true}

// bedrockDialect is the dialect of those clients.
var bedrockDialect provider.Dialect = provider.Bedrock{}

// serveBedrock serves a Bedrock runtime call: the same steps as a model
// call (authenticate, by bearer key or SigV4 signature; scopes, risk, the
// body's checks, authorize, admit, forward, meter, settle, record), with
// the model taken from the path and sent to a provider added with preset
// bedrock, whose Authorizer signs it with keygate's cloud identity (SigV4).
// The body and the answer, event stream included, pass through as Bedrock
// wrote them.
func (g *Gateway) serveBedrock(w http.ResponseWriter, r *http.Request) {
	c := callFrom(r.Context())
	c.dialect = bedrockDialect
	if den := g.prepareBedrockCall(w.Header(), r, c); den != nil {
		g.refuse(w, r, den)
		return
	}
	defer g.settle(c)
	g.proxy.ServeHTTP(w, r)
}

// parseBedrockPath splits /model/{modelId}/{operation}; the model id may
// be escaped (an inference profile's ARN holds ':' and '/').
func parseBedrockPath(r *http.Request) (model, op string, ok bool) {
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), BedrockPrefix)
	i := strings.LastIndexByte(rest, '/')
	if !ok || i <= 0 {
		return "", "", false
	}
	model, err := url.PathUnescape(rest[:i])
	if err != nil || model == "" {
		return "", "", false
	}
	return model, rest[i+1:], true
}

func (g *Gateway) prepareBedrockCall(h http.Header, r *http.Request, c *call) *Denial {
	model, op, ok := parseBedrockPath(r)
	if !ok || !bedrockOps[op] {
		return denyf(http.StatusNotFound, "unknown_url", "keygate serves Bedrock's /model/{modelId}/invoke, invoke-with-response-stream, converse and converse-stream, not %s", r.URL.Path)
	}
	if r.Method != http.MethodPost {
		return denyf(http.StatusMethodNotAllowed, "method_not_allowed", "use POST for %s", r.URL.Path)
	}
	key, body, den := g.bedrockCaller(r, c)
	if den != nil {
		return den
	}
	// max_tokens of an InvokeModel body for Claude bounds the reservation;
	// Converse's inferenceConfig.maxTokens is not read (the default applies).
	f, err := jsonpeek.Scan(body)
	if err != nil {
		return deny(http.StatusBadRequest, "invalid_json", "request body is not valid JSON: "+err.Error())
	}
	c.model, c.clientModel, c.op = model, model, "chat"
	c.turn = g.turnPrint(body, f)
	st := startStep(c)
	up, sent, den := g.routeBedrock(model)
	if den == nil {
		den = g.authorize(c, key, up, sent)
	}
	st.end(stepRoute)
	if den != nil {
		return den
	}
	if den := g.tracedAdmit(h, r, c, key, sent, f, len(body)); den != nil {
		return den
	}
	c.upstream, c.body, c.sentModel = up, body, sent
	c.bedrockPath = BedrockPrefix + url.PathEscape(sent) + "/" + op
	return nil
}

// routeBedrock picks the Bedrock provider for a model id: one named as a
// prefix ("bedrock-eu/anthropic.claude-..."), else the first whose --models
// match it, else the default one, else the only one.
func (g *Gateway) routeBedrock(model string) (*route.Upstream, string, *Denial) {
	t := g.table.Load()
	var match, def, only *route.Upstream
	n := 0
	if i := strings.IndexByte(model, '/'); i > 0 {
		if u, ok := t.Get(model[:i]); ok && u.Cloud == cloudauth.PresetBedrock {
			match, model = u, model[i+1:]
		}
	}
	for _, u := range t.Upstreams() {
		if u.Cloud != cloudauth.PresetBedrock {
			continue
		}
		n++
		only = u
		if match == nil && route.MatchAny(u.Models, model) {
			match = u
		}
		if def == nil && u.Default {
			def = u
		}
	}
	up := match
	switch {
	case up != nil:
	case def != nil:
		up = def
	case n == 1:
		up = only
	default:
		return nil, "", denyf(http.StatusNotFound, "model_not_found",
			"no Bedrock provider serves model %q: add one with keygate provider add NAME --preset bedrock --models PATTERN, or prefix the model id with its name", model)
	}
	if up.Unavailable != "" {
		g.opts.Log.Warn("a request for an unavailable provider was refused", "provider", up.Name, "reason", up.Unavailable)
		return nil, "", denyf(http.StatusServiceUnavailable, "provider_unavailable",
			"provider %q is unavailable: keygate cannot vouch for its credential right now, and its operator has been alerted; retry later or use another model", up.Name)
	}
	return up, model, nil
}

// bedrockTarget points a Bedrock call at its provider: the base URL and the
// operation's path, with the model id escaped as Bedrock signs it. The
// placeholder credential is set for the provider's Authorizer to strip.
func bedrockTarget(out *http.Request, c *call, up *route.Upstream) {
	base := strings.TrimRight(up.BaseURL.EscapedPath(), "/")
	out.URL.Scheme, out.URL.Host = up.BaseURL.Scheme, up.BaseURL.Host
	if p, err := url.PathUnescape(base + c.bedrockPath); err == nil {
		out.URL.Path, out.URL.RawPath = p, base+c.bedrockPath
	}
	bedrockDialect.InjectAuth(out.Header, up.Key)
}
