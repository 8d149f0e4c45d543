package gateway

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/keygate/keygate/internal/jsonpeek"
	"github.com/keygate/keygate/internal/limit"
	"github.com/keygate/keygate/internal/provider"
	"github.com/keygate/keygate/internal/route"
)

// Gemini's native API, as Gemini CLI and the Google Gen AI SDKs call it:
//
//	POST /v1beta/models/{model}:generateContent
//	POST /v1beta/models/{model}:streamGenerateContent   (?alt=sse: SSE; else a JSON array)
//	POST /v1beta/models/{model}:countTokens
//	GET  /v1beta/models, GET /v1beta/models/{model}     (models.go)
//
// and the same under /v1/ and /v1alpha/. A call passes the steps of an
// OpenAI or Anthropic call (endpoints.go), with three differences: the
// model is named in the path, not the body; the keygate credential may
// come as ?key=, which is taken out of the URL before anything reads it;
// and the upstream is a provider of the gemini dialect, reached at
// {base}/{version}/models/{upstream model}:{method} with its real key in
// x-goog-api-key. Gemini's API is not translated to or from the others:
// a model served by an OpenAI or Anthropic provider is refused
// (wrong_api_dialect). Refusals are Google's error JSON (provider.Gemini).

// serveGemini serves a call to Gemini's native API.
func (g *Gateway) serveGemini(w http.ResponseWriter, r *http.Request) {
	c := callFrom(r.Context())
	c.dialect = g.gemini
	if den := takeQueryKey(r); den != nil {
		g.refuse(w, r, den)
		return
	}
	gc, err := provider.ParseGeminiPath(r.URL.Path)
	if err != nil {
		g.refuse(w, r, denyf(http.StatusNotFound, "unknown_url", "keygate does not serve %s %s: %v", r.Method, r.URL.Path, err))
		return
	}
	if gc.Method == "" {
		g.getGeminiModel(w, r, c, gc)
		return
	}
	if den := g.prepareGeminiCall(w.Header(), r, c, gc); den != nil {
		g.refuse(w, r, den)
		return
	}
	// settle runs last, even when the client goes away mid-stream.
	defer g.settle(c)
	g.proxy.ServeHTTP(w, r) // forward (proxy.go); the answer is metered as it streams
}

// prepareGeminiCall runs the steps of a generateContent,
// streamGenerateContent or countTokens call up to the point where it can
// go upstream, as prepareModelCall does for the other dialects.
func (g *Gateway) prepareGeminiCall(h http.Header, r *http.Request, c *call, gc provider.GeminiCall) *Denial {
	if r.Method != http.MethodPost {
		return notServed(http.MethodPost, r.URL.Path)
	}
	key, body, den := g.callerAndBody(r, c)
	if den != nil {
		return den
	}
	// The fields that bound the answer's size.
	f, den := g.peekGemini(body, gc)
	if den != nil {
		return den
	}
	c.model, c.clientModel, c.gemini = gc.Model, gc.Model, gc
	c.turn = g.turnPrint(body, f)
	c.countOnly = gc.Method == provider.GeminiCountTokens
	// Where: an alias's deployments the key may reach, or the provider
	// serving the model, authorized.
	if a, isAlias := g.table.Load().Alias(gc.Model); isAlias {
		c.raw, c.fields, c.path = body, f, r.URL.Path
		if den := g.tracedRouteAlias(r, c, key, a); den != nil {
			return den
		}
		return geminiFields(g.tracedAdmit(h, r, c, key, gc.Model, f, len(body)))
	}
	st := startStep(c)
	up, model, den := g.route(c.dialect, gc.Model)
	if den == nil {
		den = g.authorize(c, key, up, model)
	}
	if den == nil && up.Dialect != c.dialect.Name() {
		den = deny(http.StatusBadRequest, "wrong_api_dialect",
			(&route.WrongDialectError{Provider: up.Name, ProviderDialect: up.Dialect, RequestDialect: c.dialect.Name()}).Error())
	}
	if den == nil {
		if err := provider.CheckGeminiModel(model, false); err != nil {
			den = deny(http.StatusBadRequest, "invalid_model", err.Error())
		}
	}
	st.end(stepRoute)
	if den != nil {
		return den
	}
	// Admission: the worst case reserved against every limit at once.
	if den := g.tracedAdmit(h, r, c, key, model, f, len(body)); den != nil {
		return geminiFields(den)
	}
	c.upstream, c.body, c.sentModel = up, body, model
	return nil
}

// geminiFields names Gemini's field in a limit's advice to lower the
// output a call may produce, which the limits word for the other APIs.
func geminiFields(den *Denial) *Denial {
	if den != nil {
		den.Message = strings.ReplaceAll(den.Message, "lower max_tokens", "lower generationConfig.maxOutputTokens")
	}
	return den
}

// takeQueryKey moves a credential sent as ?key= (as Google's API takes
// one) into the x-goog-api-key header, so it is read like any other and
// stripped with the rest, and no longer in the URL that the upstream
// request, logs and traces are made from. A key sent twice, or two
// different keys, are refused.
func takeQueryKey(r *http.Request) *Denial {
	if r.URL.RawQuery == "" {
		return nil
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		r.URL.RawQuery = "" // it may hold a credential keygate cannot read; none of it goes anywhere
		return deny(http.StatusBadRequest, "invalid_query", "the query string is malformed; fix its encoding")
	}
	keys, ok := q["key"]
	if !ok {
		return nil
	}
	delete(q, "key")
	r.URL.RawQuery = q.Encode()
	r.URL.ForceQuery = false
	switch {
	case len(keys) != 1:
		return deny(http.StatusBadRequest, "invalid_api_key", "send the API key once: as ?key=, or as the x-goog-api-key header")
	case r.Header.Get("X-Goog-Api-Key") != "" && r.Header.Get("X-Goog-Api-Key") != keys[0]:
		return deny(http.StatusBadRequest, "invalid_api_key", "the request carries one API key as ?key= and another as x-goog-api-key; send one")
	}
	r.Header.Set("X-Goog-Api-Key", keys[0])
	return nil
}

// peekGemini validates a Gemini request body and reads what bounds its
// answer, as peekFields does for the other dialects: the output tokens
// it may produce, generationConfig's maxOutputTokens (or the configured
// default) plus any positive thinkingConfig.thinkingBudget, times
// candidateCount. Both the API's spellings (maxOutputTokens,
// max_output_tokens) are read, and the largest value counts.
func (g *Gateway) peekGemini(body []byte, gc provider.GeminiCall) (jsonpeek.Fields, *Denial) {
	f, err := jsonpeek.Scan(body) // validates the whole document
	if err != nil {
		if se, ok := err.(*jsonpeek.SyntaxError); ok && se.Field != "" {
			return f, denyf(http.StatusBadRequest, "invalid_field", "request field %q cannot be used: %s", se.Field, err)
		}
		return f, deny(http.StatusBadRequest, "invalid_json", "request body is not valid JSON: "+err.Error())
	}
	f.Model, f.HasModel, f.MaxTokens = gc.Model, true, 0
	f.Stream = gc.Method == provider.GeminiStreamGenerate
	if gc.Method == provider.GeminiCountTokens {
		return f, nil // counting tokens generates none
	}
	var maxOut, thinking, candidates int64
	s := jsonpeek.NewScanner(body)
	for k, ok := s.FirstMember(); ok; k, ok = s.NextMember() {
		if string(k) != "generationConfig" && string(k) != "generation_config" || s.Peek() != '{' {
			s.Skip()
			continue
		}
		for k, ok := s.FirstMember(); ok; k, ok = s.NextMember() {
			var dst *int64
			switch string(k) {
			case "maxOutputTokens", "max_output_tokens":
				dst = &maxOut
			case "candidateCount", "candidate_count":
				dst = &candidates
			case "thinkingConfig", "thinking_config":
				if s.Peek() == '{' {
					for k, ok := s.FirstMember(); ok; k, ok = s.NextMember() {
						v := s.Skip()
						if string(k) == "thinkingBudget" || string(k) == "thinking_budget" {
							if n, ok := jsonpeek.ParseInt(v); ok && n > thinking {
								thinking = min(n, jsonpeek.MaxTokensCeiling)
							}
						}
					}
					continue
				}
			}
			v := s.Skip()
			if dst == nil || v == nil || string(v) == "null" {
				continue
			}
			n, ok := jsonpeek.ParseInt(v)
			if !ok || n < 1 || n > jsonpeek.MaxTokensCeiling {
				return f, denyf(http.StatusBadRequest, "invalid_field", "generationConfig.%s must be a whole number from 1 to %d", k, jsonpeek.MaxTokensCeiling)
			}
			*dst = max(*dst, n)
		}
	}
	if maxOut == 0 {
		maxOut = g.opts.Limits.DefaultMaxTokens
	}
	f.MaxTokens = min((maxOut+thinking)*max(candidates, 1), limit.MaxValue)
	return f, nil
}

// getGeminiModel answers GET /{version}/models/{model}: the model as its
// provider lists it, named as the client did, when the key may use it.
func (g *Gateway) getGeminiModel(w http.ResponseWriter, r *http.Request, c *call, gc provider.GeminiCall) {
	if r.Method != http.MethodGet {
		g.refuse(w, r, notServed(http.MethodGet, r.URL.Path))
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
	c.model = gc.Model
	table := g.table.Load()
	if a, isAlias := table.Alias(gc.Model); isAlias {
		if cands, _ := aliasCandidates(c.principal(key), a, c.dialect, false); len(cands) == 0 {
			g.refuse(w, r, denyf(http.StatusForbidden, "model_not_allowed", "this API key may not use model %q", gc.Model))
			return
		}
		writeGeminiModel(w, provider.Model{ID: a.Name, DisplayName: a.Name})
		return
	}
	up, model, den := g.route(c.dialect, gc.Model)
	if den == nil {
		den = g.authorize(c, key, up, model)
	}
	if den == nil && up.Dialect != c.dialect.Name() {
		den = deny(http.StatusBadRequest, "wrong_api_dialect",
			(&route.WrongDialectError{Provider: up.Name, ProviderDialect: up.Dialect, RequestDialect: c.dialect.Name()}).Error())
	}
	if den != nil {
		g.refuse(w, r, den)
		return
	}
	c.upstream = up
	models, err := g.models.get(r.Context(), g, c.dialect, up)
	if err != nil {
		g.opts.Log.Warn("could not list an upstream's models", "request_id", c.requestID, "provider", up.Name, "err", err)
		g.refuse(w, r, denyf(http.StatusBadGateway, "upstream_unreachable", "keygate could not read the models of upstream provider %q", up.Name))
		return
	}
	for _, m := range models {
		if m.ID == model {
			m.ID = gc.Model
			writeGeminiModel(w, m)
			return
		}
	}
	g.refuse(w, r, denyf(http.StatusNotFound, "model_not_found", "provider %q does not list model %q", up.Name, model))
}

// writeGeminiModel answers with one Gemini model entry.
func writeGeminiModel(w http.ResponseWriter, m provider.Model) {
	b := provider.GeminiModelEntry(m)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// speaksGemini reports whether a request to a path the dialects share
// (/v1/models, /v1/models/{id}) comes from a Google SDK: it carries
// x-goog-api-key, x-goog-api-client or ?key=.
func speaksGemini(r *http.Request) bool {
	if _, ok := provider.DetectListDialect(r.Header).(provider.Gemini); ok {
		return true
	}
	if !strings.Contains(r.URL.RawQuery, "key") {
		return false
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	return err != nil || q.Has("key") // an unreadable query is refused as Gemini's
}
