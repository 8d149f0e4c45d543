package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/authz"
	"github.com/keygate/keygate/internal/balance"
	"github.com/keygate/keygate/internal/cloudauth"
	"github.com/keygate/keygate/internal/jsonpeek"
	"github.com/keygate/keygate/internal/principal"
	"github.com/keygate/keygate/internal/provider"
	"github.com/keygate/keygate/internal/route"
)

// The routing steps of a model call: which upstream serves the model, may
// the caller reach it (internal/authz decides), and what body it is sent.

// route picks the provider for the model.
func (g *Gateway) route(d provider.Dialect, model string) (*route.Upstream, string, *Denial) {
	up, upstreamModel, err := g.table.Load().Resolve(d.Name(), model)
	if err == nil {
		return up, upstreamModel, nil
	}
	if wd := (*route.WrongDialectError)(nil); errors.As(err, &wd) {
		return nil, "", deny(http.StatusBadRequest, "wrong_api_dialect", wd.Error())
	}
	if ua := (*route.UnavailableError)(nil); errors.As(err, &ua) {
		// The reason names where its key is kept and why it cannot be
		// read: for the operator's log and alert, not for the client.
		g.opts.Log.Warn("a request for an unavailable provider was refused", "provider", ua.Provider, "reason", ua.Reason)
		den := denyf(http.StatusServiceUnavailable, "provider_unavailable",
			"provider %q is unavailable: keygate cannot vouch for its credential right now, and its operator has been alerted; retry later or use another model", ua.Provider)
		den.RetryAfter = 30 * time.Second
		return nil, "", den
	}
	return nil, "", denyf(http.StatusNotFound, "model_not_found",
		"no provider serves model %q: prefix it with a provider name (as in openai/%s) or register a provider whose --models match it", model, model)
}

// authorize applies the key's (and its token's) allowances to the routed
// call.
func (g *Gateway) authorize(c *call, key *principal.Principal, up *route.Upstream, model string) *Denial {
	if d := authz.Authorize(c.principal(key), authz.Target{Kind: authz.Model, Provider: up.Name, Env: up.Env, Model: model}); d != nil {
		return deny(http.StatusForbidden, d.Code, d.Message)
	}
	return nil
}

// shapeForUpstream returns the body a direct model call sends its
// provider: translated when the provider speaks the other dialect, with
// the provider's model name, and asking an OpenAI stream for its usage.
func (g *Gateway) shapeForUpstream(r *http.Request, c *call, up *route.Upstream, f jsonpeek.Fields, body []byte, model string) ([]byte, *Denial) {
	d := c.dialect
	cross, err := g.crossDialect(c, up, r.URL.Path)
	if err != nil {
		return nil, deny(http.StatusBadRequest, "wrong_api_dialect", err.Error())
	}
	upPath := r.URL.Path
	if cross {
		upPath = translatedPath(upPath)
	}
	if err := checkTarget(up, upPath, model); err != nil {
		return nil, deny(http.StatusBadRequest, "invalid_model", err.Error())
	}
	if cross {
		c.includeUsage = d == g.openai && f.Stream && wantsStreamUsage(body)
		out, err := g.translateRequest(r.Context(), c, body, model)
		if errors.Is(err, errMemoryBusy) {
			return nil, busyDenial()
		}
		if err != nil {
			return nil, denyf(http.StatusBadRequest, "untranslatable_request",
				"model %q is served by a provider of the %s API, and this request cannot be translated for it: %v", f.Model, up.Dialect, err)
		}
		if den := checkCloudMessages(up, upPath, out); den != nil {
			return nil, den
		}
		c.translate, c.upDialect = true, g.wire(up)
		return out, nil
	}
	g.untranslated(c, body)
	if model != f.Model {
		body = jsonpeek.ReplaceString(body, f.ModelSpan, model)
	}
	if den := checkCloudMessages(up, upPath, body); den != nil {
		return nil, den
	}
	if f.Stream && d == g.openai && r.URL.Path != "/v1/responses" {
		body = askForStreamUsage(body)
	}
	return body, nil
}

// checkCloudMessages asks a cloud upstream whether it can send a Messages
// request (Bedrock's Converse has no counterpart for some fields), before
// any limit is taken: a refusal then costs the caller nothing.
func checkCloudMessages(up *route.Upstream, upPath string, body []byte) *Denial {
	ch, ok := up.Auth.(cloudauth.MessagesChecker)
	if !ok || upPath != "/v1/messages" {
		return nil
	}
	if err := ch.CheckMessages(body); err != nil {
		return denyf(http.StatusBadRequest, "untranslatable_request",
			"provider %q reaches this model through Bedrock's Converse API, and this request cannot be translated for it: %s", up.Name, strings.TrimPrefix(err.Error(), "translate: "))
	}
	return nil
}

// routeAlias narrows an alias to the deployments the key may use, in the
// order the strategy prefers, and records them on the call.
func (g *Gateway) routeAlias(r *http.Request, c *call, key *principal.Principal, a *route.Alias) *Denial {
	d := c.dialect
	if len(a.Deployments) == 0 {
		// The reasons name providers, where their keys are kept and why
		// they cannot be read: for the operator's log, not the client.
		g.opts.Log.Warn("a request for a model alias with no usable deployment was refused", "alias", a.Name, "reasons", strings.Join(a.Unavailable, "; "))
		den := denyf(http.StatusServiceUnavailable, "model_unavailable",
			"model alias %q has no usable deployment right now: keygate cannot vouch for the credentials of its providers; retry later or use another model", a.Name)
		den.RetryAfter = 30 * time.Second
		return den
	}
	cands, why := aliasCandidates(c.principal(key), a, d, translatedPath(r.URL.Path) != "")
	// Deployments of the other dialect serve the request translated, if
	// it can be: a feature the other API lacks leaves them out.
	var untranslatable error
	checked := false
	cands = slices.DeleteFunc(cands, func(dep *route.Deployment) bool {
		if dep.Upstream.Dialect == d.Name() {
			return false
		}
		if !checked {
			checked = true
			_, untranslatable = g.translateRequest(r.Context(), c, c.raw, dep.Model)
			c.includeUsage = d == g.openai && c.fields.Stream && wantsStreamUsage(c.raw)
		}
		return untranslatable != nil
	})
	if errors.Is(untranslatable, errMemoryBusy) {
		return busyDenial()
	}
	c.mayTranslate = checked && untranslatable == nil
	if len(cands) == 0 && untranslatable != nil {
		return denyf(http.StatusBadRequest, "untranslatable_request",
			"model %q is served by providers of the other API, and this request cannot be translated for them: %v", a.Name, untranslatable)
	}
	if len(cands) == 0 {
		msg := map[string]string{
			"wrong_api_dialect":       fmt.Sprintf("model alias %q is served by providers of the other API dialect, and keygate translates only chat requests; send this request to the other API's endpoint", a.Name),
			"environment_not_allowed": fmt.Sprintf("model alias %q has no deployment for the %s environment of this key", a.Name, key.Env),
			"provider_not_allowed":    fmt.Sprintf("this API key may not use any provider that serves model alias %q", a.Name),
			"model_not_allowed":       fmt.Sprintf("this API key may not use model %q", a.Name),
		}[why]
		status := http.StatusForbidden
		if why == "wrong_api_dialect" {
			status = http.StatusBadRequest
		}
		return deny(status, why, msg)
	}
	bc := make([]balance.Candidate, len(cands))
	for i, dep := range cands {
		bc[i] = balance.Candidate{Weight: dep.Weight, Cost: float64(dep.Price.Input + 3*dep.Price.Output), State: g.health.Of(dep.Name)}
	}
	order := balance.Order(a.Strategy, bc, nil)
	c.alias = a
	c.order = make([]*route.Deployment, len(order))
	for i, j := range order {
		c.order[i] = cands[j]
	}
	c.upstream = c.order[0].Upstream // until one answers: for logs and the first guess at a price
	return nil
}

// aliasCandidates returns the deployments of an alias a principal may
// reach in dialect d, or none and the reason (internal/authz decides).
// chatPath says the call is a chat call, which deployments of another
// dialect serve translated where keygate translates between the two.
func aliasCandidates(p authz.Principal, a *route.Alias, d provider.Dialect, chatPath bool) ([]*route.Deployment, string) {
	cands := make([]*route.Deployment, 0, len(a.Deployments))
	why := "model_not_allowed"
	for _, dep := range a.Deployments {
		up := dep.Upstream
		if up.Dialect != d.Name() && !(chatPath && translatable(d.Name(), up.Dialect)) {
			why = "wrong_api_dialect"
			continue
		}
		if den := authz.Authorize(p, authz.Target{Kind: authz.Deployment, Provider: up.Name, Env: dep.Env, Model: dep.Model, Alias: a.Name}); den != nil {
			why = den.Code
			continue
		}
		cands = append(cands, dep)
	}
	return cands, why
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
