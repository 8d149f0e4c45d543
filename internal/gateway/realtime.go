package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/keygate/keygate/internal/jsonpeek"
	"github.com/keygate/keygate/internal/leak"
	"github.com/keygate/keygate/internal/principal"
	"github.com/keygate/keygate/internal/route"
	"github.com/keygate/keygate/internal/scrub"
	"github.com/keygate/keygate/internal/usage"
)

// OpenAI's Realtime API: one WebSocket per session, opened with
// GET /v1/realtime?model=MODEL (the OpenAI SDKs' client.Realtime.Connect,
// voice agents), carrying JSON events both ways for as long as the
// conversation lasts.
//
// keygate admits the session as a whole and each response in it:
//
//   - The upgrade is authenticated, scoped and risk-checked like any call,
//     the model routed to a native OpenAI provider and authorized for the
//     key, and the key's sockets counted (client.websocket.max_per_key).
//     keygate then opens the provider's session with the real key; only
//     when the provider has accepted does it accept the client's upgrade,
//     so a refusal of either is an HTTP answer and nothing is open.
//   - Each response is one call through the gateway (serveRealtimeResponse):
//     a response.create from the client, or a response the provider starts
//     itself when its voice detection hears the end of a turn. The call
//     authenticates again (a revoked key is refused at its next response),
//     checks the event for credentials, and is admitted against the key's
//     rate, concurrency, quota and budget limits before the event goes
//     upstream; it is settled with the usage of its response.done, and
//     metered and audited like an HTTP call. A response the provider
//     started is admitted when it starts; refused, it is cancelled at once.
//   - A refused response ends the session: an error event in OpenAI's
//     shape, then a close frame (1008, or 1013 for a limit), as on the
//     Responses WebSocket.
//   - Everything else (audio appends, commits, items, session updates)
//     passes through in order; conversation items and session updates are
//     checked for credentials on the way (block or redact, as the key's
//     leak action says), and what is found is recorded on the session's
//     next response. The provider's events reach the client with the
//     provider's credential scrubbed and known secrets redacted, message
//     by message.
const realtimePath = "/v1/realtime"

type rtTurnKey struct{}

// rtTurnFrom returns the Realtime response a call serves, or nil.
func rtTurnFrom(ctx context.Context) *rtTurn {
	t, _ := ctx.Value(rtTurnKey{}).(*rtTurn)
	return t
}

// rtSession is one client's Realtime session and the provider's behind it.
type rtSession struct {
	g        *Gateway
	client   *websocket.Conn
	upstream *websocket.Conn
	ctx      context.Context // ends when the session does
	cancel   context.CancelFunc
	up       *http.Request // the client's upgrade: each response's headers and address
	model    string        // as the client named it
	key      *principal.Principal
	scrub    *scrub.Set
	opts     ResponsesWSOptions

	mu      sync.Mutex
	waiting []*rtTurn          // admitted client responses the provider has not started
	active  map[string]*rtTurn // started, by response id
	lastIn  int64              // the last response's input tokens: the conversation's size
	leaks   *call              // credentials found in events since the last response
	turns   sync.WaitGroup
}

// rtTurn is one response of a session.
type rtTurn struct {
	s      *rtSession
	event  []byte // the client's response.create; nil for one the provider started
	id     string // the provider's response id, once known
	once   sync.Once
	sent   chan struct{}    // closed once the event is upstream or refused
	done   chan usage.Usage // the usage of its response.done
	denial *Denial
}

func (t *rtTurn) markSent() { t.once.Do(func() { close(t.sent) }) }

// serveRealtime serves /v1/realtime: a session's upgrade, or one of its
// responses.
func (g *Gateway) serveRealtime(w http.ResponseWriter, r *http.Request) {
	if t := rtTurnFrom(r.Context()); t != nil {
		g.serveRealtimeResponse(w, r, t)
		return
	}
	c := callFrom(r.Context())
	c.dialect, c.ws = g.openai, true
	if !isWebSocketUpgrade(r) {
		g.refuse(w, r, deny(http.StatusBadRequest, "websocket_required", "the Realtime API is a WebSocket: open GET /v1/realtime?model=MODEL with Upgrade: websocket"))
		return
	}
	model := r.URL.Query().Get("model")
	if model == "" {
		g.refuse(w, r, deny(http.StatusBadRequest, "missing_model", "name the model in the query, as in /v1/realtime?model=gpt-realtime"))
		return
	}
	c.model, c.clientModel = model, model
	post := r.Clone(r.Context()) // scoped as what it carries: POST calls to the model
	post.Method = http.MethodPost
	key, den := g.caller(post, c)
	if den != nil {
		g.refuse(w, r, den)
		return
	}
	up, sent, den := g.realtimeRoute(c, key, model)
	if den != nil {
		g.refuse(w, r, den)
		return
	}
	c.upstream, c.sentModel = up, sent
	opts := g.opts.ResponsesWS.withDefaults()
	if !g.sockets.acquire(key.ID, opts.MaxPerKey) {
		g.refuse(w, r, tooManySockets(opts.MaxPerKey))
		return
	}
	defer g.sockets.release(key.ID)

	// The provider's session first, with the real key: its refusal is the
	// client's answer, before the client's upgrade.
	out := &http.Request{Method: http.MethodGet, URL: &url.URL{}, Header: r.Header.Clone()}
	for _, name := range []string{"Origin", "Sec-Websocket-Protocol"} {
		out.Header.Del(name)
	}
	c.dialect.StripCredentials(out.Header)
	stripClientHeaders(out.Header)
	stripCredentialCopies(out, c.cred)
	_ = g.target(out, c, up, realtimePath, sent) // a native provider without a preset: this cannot fail
	out.URL.RawQuery = "model=" + url.QueryEscape(sent)
	// The session outlives this handler's request context only as long
	// as the client's connection does.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := context.AfterFunc(r.Context(), cancel)
	defer stop()
	upConn, resp, err := g.dialUpstreamWS(ctx, g.opts.Transport, out)
	if err != nil {
		c.failure = "realtime_upstream"
		if resp != nil && resp.StatusCode >= 400 {
			g.refuse(w, r, denyf(resp.StatusCode, "upstream_refused", "the provider refused the Realtime session for model %q (HTTP %d)", model, resp.StatusCode))
			return
		}
		g.refuse(w, r, deny(http.StatusBadGateway, "upstream_unreachable", "keygate could not open the provider's Realtime session; retry shortly"))
		return
	}
	defer upConn.CloseNow()
	limit := g.opts.MaxBodyBytes
	if limit <= 0 {
		limit = 32 << 20
	}
	upConn.SetReadLimit(max(limit, 64<<20)) // response.done repeats the whole answer
	client, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		// Browsers cannot send an Authorization header on a WebSocket, so
		// a cross-site page cannot ride on a key; the key is the check.
		InsecureSkipVerify: true,
		CompressionMode:    opts.compression(),
	})
	if err != nil {
		c.failure = "websocket_upgrade"
		return
	}
	defer client.CloseNow()
	client.SetReadLimit(limit) // counted after decompression
	s := &rtSession{g: g, client: client, upstream: upConn, ctx: ctx, cancel: cancel, up: r, model: model, key: key,
		scrub: g.scrubs.ForRequest(out, up.Key), opts: opts, active: map[string]*rtTurn{}}
	s.run()
}

// realtimeRoute finds the provider of a Realtime model and authorizes the
// key for it: a native OpenAI provider, since the session is the
// provider's own protocol.
func (g *Gateway) realtimeRoute(c *call, key *principal.Principal, model string) (*route.Upstream, string, *Denial) {
	if _, isAlias := g.table.Load().Alias(model); isAlias {
		return nil, "", denyf(http.StatusBadRequest, "realtime_unavailable", "model %q is an alias; a Realtime session needs one provider's model: name it directly", model)
	}
	up, sent, den := g.route(g.openai, model)
	if den != nil {
		return nil, "", den
	}
	if den := g.authorize(c, key, up, sent); den != nil {
		return nil, "", den
	}
	if up.Dialect != "openai" || up.Preset != nil || up.Auth != nil {
		return nil, "", denyf(http.StatusBadRequest, "realtime_unavailable", "provider %q does not serve OpenAI's Realtime API through keygate", up.Name)
	}
	return up, sent, nil
}

// run relays the session until either side ends it, then waits for its
// responses to settle.
func (s *rtSession) run() {
	defer s.turns.Wait()
	defer s.cancel()
	go s.fromProvider()
	go pingLoop(s.ctx, s.client, s.opts.PingInterval)
	life := time.AfterFunc(s.opts.MaxLifetime, func() {
		s.sendError(http.StatusBadRequest, "session_expired", "the Realtime session reached its maximum duration ("+s.opts.MaxLifetime.String()+"); open a new one")
		s.close(websocket.StatusNormalClosure, "session lifetime reached")
	})
	defer life.Stop()
	idle := time.AfterFunc(s.opts.IdleTimeout, func() { s.close(websocket.StatusNormalClosure, "idle for too long; open a new session") })
	defer idle.Stop()
	for {
		typ, msg, err := s.client.Read(s.ctx)
		if err != nil {
			return // the client closed, or the session ended
		}
		idle.Reset(s.opts.IdleTimeout)
		if typ != websocket.MessageText {
			s.sendError(http.StatusBadRequest, "unsupported_data", "send events as JSON text messages")
			s.close(websocket.StatusUnsupportedData, "binary messages are not accepted")
			return
		}
		if !s.fromClient(msg) {
			return
		}
	}
}

// fromClient passes one client event on; it reports false when the
// session is over.
func (s *rtSession) fromClient(msg []byte) bool {
	if !json.Valid(msg) {
		s.sendError(http.StatusBadRequest, "invalid_json", "the event is not valid JSON")
		s.close(websocket.StatusInvalidFramePayloadData, "invalid_json")
		return false
	}
	switch string(eventType(msg)) {
	case "response.create":
		t := &rtTurn{s: s, event: msg, sent: make(chan struct{}), done: make(chan usage.Usage, 1)}
		s.turns.Add(1)
		go s.serveTurn(t)
		select {
		case <-t.sent:
		case <-s.ctx.Done():
			return false
		}
		return t.denial == nil
	case "session.update", "conversation.item.create":
		var den *Denial
		if msg, den = s.checkLeaks(msg); den != nil {
			s.sendErrorBody(den.Status, s.g.openAIErrorBody(den.Status, den.Code, den.Message))
			s.close(closeCode(den.Status), den.Code)
			return false
		}
	}
	return s.toProvider(msg)
}

// checkLeaks checks an event for credentials, as a request body is; what
// it finds is recorded on the session's next response.
func (s *rtSession) checkLeaks(msg []byte) ([]byte, *Denial) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.leaks == nil {
		s.leaks = &call{}
	}
	scratch := &call{}
	out, den := s.g.checkLeaks(scratch, s.key, msg)
	if scratch.leakAction != "" {
		l := s.leaks
		if l.leakAction == "" || leak.Action(scratch.leakAction) == leak.ActionBlock || leak.Action(scratch.leakAction) == leak.ActionRedact && leak.Action(l.leakAction) != leak.ActionBlock {
			l.leakAction = scratch.leakAction
		}
		l.leakRules = joinList(l.leakRules, scratch.leakRules)
		l.leakValues = joinList(l.leakValues, scratch.leakValues)
		l.riskRules = append(l.riskRules, scratch.riskRules...)
	}
	return out, den
}

// takeLeaks moves what checkLeaks found onto c.
func (s *rtSession) takeLeaks(c *call) {
	s.mu.Lock()
	l := s.leaks
	s.leaks = nil
	s.mu.Unlock()
	if l == nil || l.leakAction == "" {
		return
	}
	if c.leakAction == "" || leak.Action(l.leakAction) == leak.ActionBlock {
		c.leakAction = l.leakAction
	}
	c.leakRules = joinList(c.leakRules, l.leakRules)
	c.leakValues = joinList(c.leakValues, l.leakValues)
	c.riskRules = append(c.riskRules, l.riskRules...)
}

// joinList joins two comma-separated lists.
func joinList(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "," + b
}

// serveTurn runs one response as a call through the whole gateway, and
// ends the session when keygate refused it.
func (s *rtSession) serveTurn(t *rtTurn) {
	defer s.turns.Done()
	defer t.markSent()
	body := t.event
	if body == nil {
		body = []byte("{}")
	}
	h := turnHeaders(s.up)
	req := (&http.Request{
		Method: http.MethodPost, URL: &url.URL{Path: realtimePath, RawQuery: s.up.URL.RawQuery}, RequestURI: realtimePath,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Host: s.up.Host, RemoteAddr: s.up.RemoteAddr, TLS: s.up.TLS,
		Body: readCloser{bytes.NewReader(body)}, ContentLength: int64(len(body)),
	}).WithContext(context.WithValue(s.ctx, rtTurnKey{}, t))
	bw := &bufferWriter{h: http.Header{}}
	s.g.ServeHTTP(bw, req)
	if d := t.denial; d != nil {
		if t.event == nil && t.id != "" {
			// A response the provider started: stop it at once.
			cancelEv, _ := json.Marshal(map[string]string{"type": "response.cancel", "response_id": t.id})
			s.toProvider(cancelEv)
		}
		s.sendErrorBody(d.Status, bw.b.Bytes())
		s.close(closeCode(d.Status), d.Code)
		s.cancel()
	}
}

// serveRealtimeResponse is one response of a session: authenticate again,
// route and authorize the session's model, check the event for
// credentials, admit, then send the event and wait for the response's
// usage, which settles it.
func (g *Gateway) serveRealtimeResponse(w http.ResponseWriter, r *http.Request, t *rtTurn) {
	s := t.s
	c := callFrom(r.Context())
	c.dialect, c.ws = g.openai, true
	c.model, c.clientModel = s.model, s.model
	den := func() *Denial {
		key, den := g.caller(r, c)
		if den != nil {
			return den
		}
		up, sent, den := g.realtimeRoute(c, key, s.model)
		if den != nil {
			return den
		}
		s.takeLeaks(c)
		if t.event != nil {
			if t.event, den = g.checkLeaks(c, key, t.event); den != nil {
				return den
			}
		}
		c.upstream, c.sentModel, c.model = up, sent, sent
		// The provider reads the whole conversation for each response:
		// reserve at least what the last one read.
		s.mu.Lock()
		in := s.lastIn
		s.mu.Unlock()
		n := len(t.event)
		if in > int64(n)/4 {
			n = int(min(in, 1<<40) * 4)
		}
		return g.tracedAdmit(w.Header(), r, c, key, sent, jsonpeek.Fields{Model: sent, HasModel: true}, n)
	}()
	if den != nil {
		t.denial = den
		g.refuse(w, r, den)
		return
	}
	defer g.settle(c)
	c.sentAt = time.Now()
	if t.event != nil {
		s.mu.Lock()
		s.waiting = append(s.waiting, t)
		s.mu.Unlock()
		if !s.toProvider(t.event) {
			c.failure = "realtime_upstream"
			t.markSent()
			w.WriteHeader(http.StatusBadGateway)
			return
		}
	}
	t.markSent()
	select {
	case u := <-t.done:
		c.used = u
		w.WriteHeader(http.StatusOK)
	case <-s.ctx.Done():
		// The session ended mid-response: settled at its estimate.
		c.failure = "realtime_session_ended"
		w.WriteHeader(http.StatusBadGateway)
	}
}

// fromProvider relays the provider's events to the client, each scrubbed
// of the provider's credential and checked for secrets, and follows the
// responses they start and finish.
func (s *rtSession) fromProvider() {
	defer s.cancel()
	var m *leak.Matcher
	if s.g.opts.Leaks != nil {
		m = s.g.leaks.Load()
	}
	for {
		typ, msg, err := s.upstream.Read(s.ctx)
		if err != nil {
			if s.ctx.Err() == nil {
				s.sendError(http.StatusBadGateway, "upstream_closed", "the provider ended the Realtime session")
				s.close(websocket.StatusGoingAway, "the provider ended the session")
			}
			return
		}
		if typ != websocket.MessageText {
			continue // the Realtime API speaks JSON text only
		}
		s.scrub.Bytes(msg)
		if m != nil {
			if hits := m.Check(msg); len(hits) > 0 {
				msg = leak.Redacted(msg, hits)
			}
		}
		switch string(eventType(msg)) {
		case "response.created":
			s.started(responseID(msg))
		case "response.done":
			s.finished(msg)
		}
		if err := s.write(msg); err != nil {
			return
		}
	}
}

// started binds a response the provider started to the client's oldest
// admitted response.create, or admits it as one the provider started on
// its own.
func (s *rtSession) started(id string) {
	s.mu.Lock()
	if len(s.waiting) > 0 {
		t := s.waiting[0]
		s.waiting = s.waiting[1:]
		t.id = id
		s.active[id] = t
		s.mu.Unlock()
		return
	}
	t := &rtTurn{s: s, id: id, sent: make(chan struct{}), done: make(chan usage.Usage, 1)}
	s.active[id] = t
	s.mu.Unlock()
	s.turns.Add(1)
	go s.serveTurn(t)
}

// finished hands a response's usage to its call.
func (s *rtSession) finished(msg []byte) {
	var ev struct {
		Response struct {
			ID    string `json:"id"`
			Usage *struct {
				InputTokens       int64 `json:"input_tokens"`
				OutputTokens      int64 `json:"output_tokens"`
				InputTokenDetails struct {
					CachedTokens int64 `json:"cached_tokens"`
				} `json:"input_token_details"`
			} `json:"usage"`
		} `json:"response"`
	}
	_ = json.Unmarshal(msg, &ev)
	s.mu.Lock()
	t := s.active[ev.Response.ID]
	delete(s.active, ev.Response.ID)
	u := usage.Usage{}
	if ev.Response.Usage != nil {
		u = usage.Usage{InputTokens: ev.Response.Usage.InputTokens, OutputTokens: ev.Response.Usage.OutputTokens,
			CacheReadTokens: ev.Response.Usage.InputTokenDetails.CachedTokens, Complete: true}
		s.lastIn = u.InputTokens
	}
	s.mu.Unlock()
	if t != nil {
		t.done <- u
	}
}

// responseID reads response.id of a response event.
func responseID(msg []byte) string {
	var ev struct {
		Response struct {
			ID string `json:"id"`
		} `json:"response"`
	}
	_ = json.Unmarshal(msg, &ev)
	return ev.Response.ID
}

// toProvider sends one event to the provider; false when it cannot.
func (s *rtSession) toProvider(msg []byte) bool {
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.WriteTimeout)
	defer cancel()
	if err := s.upstream.Write(ctx, websocket.MessageText, msg); err != nil {
		s.cancel()
		return false
	}
	return true
}

// write sends one event to the client, giving a slow client WriteTimeout
// before the session is closed: a slow reader holds the provider back,
// never keygate's memory.
func (s *rtSession) write(msg []byte) error {
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.WriteTimeout)
	defer cancel()
	err := s.client.Write(ctx, websocket.MessageText, msg)
	if err != nil {
		s.cancel()
	}
	return err
}

// sendError sends an error event of keygate's own.
func (s *rtSession) sendError(status int, code, msg string) {
	s.sendErrorBody(status, s.g.openAIErrorBody(status, code, msg))
}

// sendErrorBody sends an OpenAI error body as the Realtime API's error
// event.
func (s *rtSession) sendErrorBody(status int, body []byte) { _ = s.write(errorEvent(status, body)) }

// close ends the client's session with a close frame.
func (s *rtSession) close(code websocket.StatusCode, reason string) { closeWS(s.client, code, reason) }
