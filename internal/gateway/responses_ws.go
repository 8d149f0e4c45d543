package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/keygate/keygate/internal/jsonpeek"
)

// The Responses API's WebSocket mode, as Codex CLI and the OpenAI SDKs use
// it: the client upgrades GET /v1/responses to a WebSocket (with its key in
// Authorization, as for HTTP) and sends response.create events, each the
// body of POST /v1/responses with a "type" and without "stream"; each
// answer comes back as the events its stream carries, one JSON object per
// text message.
//
// keygate serves each response.create as one call of its own: the event
// becomes a streaming POST /v1/responses that runs the whole pipeline
// (authenticate again, scope, risk, authorize the model, admit against
// limits and budgets, the outbound credential check, route), so a key
// revoked or a budget spent while the connection is open refuses the next
// response, and each response is metered, settled and audited like an
// HTTP call. The stream's events go back to the client as messages after
// the same scrubbing and leak checks as the SSE path.
//
// Upstream, a native OpenAI provider is reached over a WebSocket of its own
// (responses_wsup.go), opened on the connection's first admitted response
// with the real key and never the client's: OpenAI keeps the answers of a
// connection in memory, so previous_response_id continues a response that
// was not stored (store: false) only on the same upstream socket, and each
// turn saves a request's setup. A provider that answers the upgrade with
// anything but 101, an alias, a preset service or a provider of the other
// dialect is reached over HTTP with server-sent events instead, and the
// client still speaks WebSocket: the events are the same JSON objects.
//
// A refusal is an error event in the shape OpenAI sends on this socket,
//
//	{"type":"error","status":403,"error":{"type":"invalid_request_error","code":"model_not_allowed","message":"...","param":null}}
//
// then a close frame: 1008 (policy) for a refusal, 1013 (try again later)
// for a limit or an unavailable service, 1011 for an internal failure.
// An error answered by the provider is passed on as an error event and the
// connection stays open, as OpenAI's own does.

// ResponsesWSOptions tunes the Responses API's WebSocket mode.
type ResponsesWSOptions struct {
	// IdleTimeout closes a connection with no response.create for this
	// long (default 10 minutes).
	IdleTimeout time.Duration
	// MaxLifetime closes a connection this long after it opened (default
	// 60 minutes, OpenAI's own limit); clients open a new one.
	MaxLifetime time.Duration
	// WriteTimeout closes a connection whose client has not taken a
	// message for this long (default 30 seconds): a slow reader holds the
	// upstream back, never keygate's memory.
	WriteTimeout time.Duration
	// PingInterval is how often keygate pings a client (default 30
	// seconds): a peer that does not answer within the interval is
	// closed, and proxies between them see traffic while an agent runs
	// its tools between responses.
	PingInterval time.Duration
	// HTTPUpstream reaches every provider over HTTP with server-sent
	// events, never over a WebSocket.
	HTTPUpstream bool
	// MaxPerKey caps the connections one key holds open on this node
	// (default 32); one more is refused with 429 before the upgrade, so
	// a leaked or runaway key cannot hold the node's sockets and memory.
	MaxPerKey int
	// DisableCompression turns off permessage-deflate (RFC 7692), which
	// keygate otherwise accepts from clients and offers to providers
	// without context takeover: no per-connection compressor is kept,
	// and a message's read limit counts its bytes after decompression.
	DisableCompression bool
}

// compression is the permessage-deflate mode the options ask for.
func (o ResponsesWSOptions) compression() websocket.CompressionMode {
	if o.DisableCompression {
		return websocket.CompressionDisabled
	}
	return websocket.CompressionNoContextTakeover
}

// socketCount counts open connections by key.
type socketCount struct {
	mu   sync.Mutex
	open map[string]int
}

// acquire takes one of key's max connections, reporting false when all
// are open.
func (s *socketCount) acquire(key string, max int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[key] >= max {
		return false
	}
	if s.open == nil {
		s.open = map[string]int{}
	}
	s.open[key]++
	return true
}

// tooManySockets refuses a key's WebSocket past its max.
func tooManySockets(max int) *Denial {
	d := deny(http.StatusTooManyRequests, "too_many_connections", "this API key already holds "+strconv.Itoa(max)+" open WebSocket connections on this keygate, its limit; close one first")
	d.RetryAfter = time.Second
	return d
}

// release gives back a connection acquire took.
func (s *socketCount) release(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[key]--; s.open[key] <= 0 {
		delete(s.open, key)
	}
}

func (o ResponsesWSOptions) withDefaults() ResponsesWSOptions {
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 10 * time.Minute
	}
	if o.MaxLifetime <= 0 {
		o.MaxLifetime = 60 * time.Minute
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.PingInterval <= 0 {
		o.PingInterval = 30 * time.Second
	}
	if o.MaxPerKey <= 0 {
		o.MaxPerKey = 32
	}
	return o
}

// isWebSocketUpgrade reports whether r asks to switch to a WebSocket.
func isWebSocketUpgrade(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// wsConn is one client's Responses API WebSocket.
type wsConn struct {
	g      *Gateway
	client *websocket.Conn
	ctx    context.Context // ends when the connection does
	up     *http.Request   // the upgrade request: the turns' headers and address
	opts   ResponsesWSOptions
	// upstreams holds the WebSockets opened to providers, by provider
	// name; only the connection's own goroutine uses it.
	upstreams map[string]*upstreamWS
	// stalled closes the connection when a write has waited WriteTimeout.
	stalled *time.Timer
}

// wsTurn is one response.create, from its event to its answer's end.
type wsTurn struct {
	conn   *wsConn
	denial *Denial // set by refuse when keygate refused the call
}

type wsTurnKey struct{}

// wsTurnFrom returns the turn a call serves, or nil for an HTTP call.
func wsTurnFrom(ctx context.Context) *wsTurn {
	t, _ := ctx.Value(wsTurnKey{}).(*wsTurn)
	return t
}

// serveResponsesWS serves the Responses API's WebSocket mode on
// /v1/responses. The upgrade is authenticated and scoped as the door to
// POST /v1/responses calls; a refusal there is an HTTP answer, before any
// upgrade.
func (g *Gateway) serveResponsesWS(w http.ResponseWriter, r *http.Request) {
	c := callFrom(r.Context())
	c.dialect, c.ws = g.openai, true
	post := r.Clone(r.Context()) // scoped as what it carries: POST /v1/responses
	post.Method = http.MethodPost
	key, den := g.caller(post, c)
	if den != nil {
		g.refuse(w, r, den)
		return
	}
	opts := g.opts.ResponsesWS.withDefaults()
	if !g.sockets.acquire(key.ID, opts.MaxPerKey) {
		g.refuse(w, r, tooManySockets(opts.MaxPerKey))
		return
	}
	defer g.sockets.release(key.ID)
	client, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		// Browsers cannot send an Authorization header on a WebSocket, so
		// a cross-site page cannot ride on a key; the key is the check.
		InsecureSkipVerify: true,
		CompressionMode:    opts.compression(),
	})
	if err != nil {
		c.failure = "websocket_upgrade"
		return // Accept has answered the client
	}
	defer client.CloseNow()
	limit := g.opts.MaxBodyBytes
	if limit <= 0 {
		limit = 32 << 20
	}
	client.SetReadLimit(limit) // counted after decompression
	// The turns' context carries none of the HTTP server's values: a
	// stream the client stops reading ends the turn, not the connection's
	// goroutine (httputil.ReverseProxy panics only under a server).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := context.AfterFunc(r.Context(), cancel)
	defer stop()
	wc := &wsConn{g: g, client: client, ctx: ctx, up: r, opts: opts, upstreams: map[string]*upstreamWS{}}
	wc.stalled = time.AfterFunc(time.Hour, func() { _ = client.CloseNow() })
	wc.stalled.Stop()
	defer wc.closeUpstreams()
	wc.run(cancel)
}

// clientFrame is one message read from the client.
type clientFrame struct {
	typ websocket.MessageType
	msg []byte
}

// run reads the client's events and serves them one at a time, until the
// client closes, a refusal closes, or a timeout does.
func (wc *wsConn) run(cancel context.CancelFunc) {
	frames := make(chan clientFrame, 1) // one event waits while a response streams
	go func() {
		defer cancel()
		defer close(frames)
		for {
			typ, msg, err := wc.client.Read(wc.ctx)
			if err != nil {
				return // the client closed or broke the connection
			}
			select {
			case frames <- clientFrame{typ, msg}:
			case <-wc.ctx.Done():
				return
			}
		}
	}()
	go wc.keepAlive()
	idle := time.NewTimer(wc.opts.IdleTimeout)
	defer idle.Stop()
	life := time.NewTimer(wc.opts.MaxLifetime)
	defer life.Stop()
	for {
		select {
		case f, ok := <-frames:
			if !ok {
				return
			}
			if !wc.serve(f) {
				return
			}
			idle.Reset(wc.opts.IdleTimeout)
		case <-idle.C:
			wc.close(websocket.StatusNormalClosure, "idle for too long; open a new connection")
			return
		case <-life.C:
			wc.sendError(http.StatusBadRequest, "websocket_connection_limit_reached", "Responses websocket connection limit reached ("+wc.opts.MaxLifetime.String()+"). Create a new websocket connection to continue.")
			wc.close(websocket.StatusNormalClosure, "connection lifetime reached")
			return
		case <-wc.ctx.Done():
			return
		}
	}
}

// keepAlive pings the client every PingInterval and closes a connection
// whose client does not answer within one; the reader goroutine takes the
// pongs.
func (wc *wsConn) keepAlive() { pingLoop(wc.ctx, wc.client, wc.opts.PingInterval) }

// pingLoop pings a client every interval until ctx ends, and closes the
// connection of one that does not answer within an interval.
func pingLoop(ctx context.Context, conn *websocket.Conn, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, interval)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					closeWS(conn, websocket.StatusPolicyViolation, "no answer to ping")
				}
				return
			}
		}
	}
}

// serve handles one client message; it reports false when the connection
// is done.
func (wc *wsConn) serve(f clientFrame) bool {
	if f.typ != websocket.MessageText {
		wc.sendError(http.StatusBadRequest, "unsupported_data", "send events as JSON text messages")
		wc.close(websocket.StatusUnsupportedData, "binary messages are not accepted")
		return false
	}
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(f.msg, &head); err != nil {
		wc.sendError(http.StatusBadRequest, "invalid_json", "the message is not valid JSON: "+err.Error())
		wc.close(websocket.StatusInvalidFramePayloadData, "invalid_json")
		return false
	}
	switch head.Type {
	case "response.create":
		return wc.turn(f.msg)
	case "response.processed":
		// The client has handled an answer. It carries nothing to check;
		// an upstream socket that expects it gets it.
		wc.relayProcessed(f.msg)
		return true
	}
	wc.sendError(http.StatusBadRequest, "unknown_event_type", "keygate serves response.create events on this socket, not "+strconv.Quote(head.Type))
	return true
}

// turn serves one response.create as a streaming POST /v1/responses
// through the whole gateway.
func (wc *wsConn) turn(msg []byte) bool {
	body, err := createToPost(msg)
	if err != nil {
		wc.sendError(http.StatusBadRequest, "invalid_json", "the response.create event is not a JSON object")
		wc.close(websocket.StatusInvalidFramePayloadData, "invalid_json")
		return false
	}
	t := &wsTurn{conn: wc}
	req := wc.turnRequest(context.WithValue(wc.ctx, wsTurnKey{}, t), body)
	tw := &turnWriter{conn: wc, h: http.Header{}}
	wc.g.ServeHTTP(tw, req)
	if tw.err != nil || wc.ctx.Err() != nil {
		wc.close(websocket.StatusGoingAway, "the client stopped reading")
		return false
	}
	switch {
	case tw.status == http.StatusOK && tw.sse && !tw.ended:
		// The stream broke off before its last event: the client would
		// wait for it forever. The next response.create starts afresh.
		wc.sendError(http.StatusBadGateway, "upstream_stream_ended", "the provider's stream ended before the response completed; send the request again")
		return true
	case tw.status == http.StatusOK:
		if !tw.sse && tw.errBody.Len() > 0 {
			// A whole answer where a stream was asked for: one event.
			_ = wc.write(append(append([]byte(`{"type":"response.completed","response":`), tw.errBody.Bytes()...), '}'))
		}
		return true
	case tw.status == 0:
		wc.sendError(http.StatusBadGateway, "upstream_unreachable", "keygate got no answer for this response")
		wc.close(websocket.StatusInternalError, "no answer")
		return false
	}
	// An error answer: keygate's refusal, or the provider's.
	wc.sendErrorBody(tw.status, tw.errBody.Bytes())
	if t.denial == nil {
		return true // the provider's error: the connection stays usable
	}
	wc.close(closeCode(t.denial.Status), t.denial.Code)
	return false
}

// turnRequest builds the POST /v1/responses a response.create stands for:
// the upgrade's headers (the key among them) without the WebSocket ones.
func (wc *wsConn) turnRequest(ctx context.Context, body []byte) *http.Request {
	up := wc.up
	h := turnHeaders(up)
	h.Set("Accept", "text/event-stream")
	req := (&http.Request{
		Method: http.MethodPost, URL: &url.URL{Path: "/v1/responses"}, RequestURI: "/v1/responses",
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Host: up.Host, RemoteAddr: up.RemoteAddr, TLS: up.TLS,
		Body: http.NoBody, ContentLength: int64(len(body)),
	}).WithContext(ctx)
	req.Body = readCloser{bytes.NewReader(body)}
	return req
}

// turnHeaders are the headers of a call a WebSocket message stands for:
// the upgrade's (the key among them) without the WebSocket ones.
func turnHeaders(up *http.Request) http.Header {
	h := up.Header.Clone()
	for name := range h {
		if strings.HasPrefix(name, "Sec-Websocket-") {
			delete(h, name)
		}
	}
	for _, name := range []string{"Upgrade", "Connection", "Origin", "Content-Length", "Accept-Encoding"} {
		h.Del(name)
	}
	h.Set("Content-Type", "application/json")
	return h
}

// readCloser is a body read from memory.
type readCloser struct{ *bytes.Reader }

// Close does nothing.
func (readCloser) Close() error { return nil }

// createToPost turns a response.create event into the body of a streaming
// POST /v1/responses: without its type, with "stream": true.
func createToPost(msg []byte) ([]byte, error) {
	return rewriteMembers(msg, "type", "stream", `"stream":true`)
}

// postToCreate is createToPost's reverse, for an upstream WebSocket: the
// body keygate would have sent (checked, and routed to the provider's
// model) as a response.create event.
func postToCreate(body []byte) ([]byte, error) {
	return rewriteMembers(body, "type", "stream", `"type":"response.create"`)
}

// rewriteMembers returns the JSON object obj without its top-level
// members named drop1 or drop2, first adds, the others as written and in
// order. It validates obj; it does not decode it.
func rewriteMembers(obj []byte, drop1, drop2, first string) ([]byte, error) {
	s := jsonpeek.NewScanner(obj)
	out := make([]byte, 0, len(obj)+len(first)+2)
	out = append(out, '{')
	out = append(out, first...)
	from := s.Pos()
	key, ok := s.FirstMember()
	for ok {
		val := s.Skip()
		if val == nil {
			break
		}
		to := s.Pos()
		if k := string(key); k != drop1 && k != drop2 {
			m := bytes.TrimLeft(obj[from:to], " \t\r\n{,")
			out = append(out, ',')
			out = append(out, m...)
		}
		from = s.Pos()
		key, ok = s.NextMember()
	}
	if !s.End() {
		if err := s.Err(); err != nil {
			return nil, err
		}
		return nil, errors.New("not a JSON object")
	}
	return append(out, '}'), nil
}

// closeCode is the close code for a refusal of HTTP status.
func closeCode(status int) websocket.StatusCode {
	switch {
	case status == http.StatusTooManyRequests, status == http.StatusServiceUnavailable:
		return websocket.StatusTryAgainLater
	case status >= 500:
		return websocket.StatusInternalError
	}
	return websocket.StatusPolicyViolation
}

// write sends one message, giving a slow client WriteTimeout.
func (wc *wsConn) write(msg []byte) error {
	wc.stalled.Reset(wc.opts.WriteTimeout)
	err := wc.client.Write(wc.ctx, websocket.MessageText, msg)
	wc.stalled.Stop()
	return err
}

// close ends the connection with a close frame.
func (wc *wsConn) close(code websocket.StatusCode, reason string) { closeWS(wc.client, code, reason) }

// closeWS ends a client's WebSocket with a close frame whose reason fits
// the frame.
func closeWS(conn *websocket.Conn, code websocket.StatusCode, reason string) {
	if len(reason) > 120 {
		reason = reason[:120]
	}
	_ = conn.Close(code, reason)
}

// sendError sends an error event of keygate's own.
func (wc *wsConn) sendError(status int, code, msg string) {
	wc.sendErrorBody(status, wc.g.openAIErrorBody(status, code, msg))
}

// sendErrorBody sends an error event made of an OpenAI error body
// ({"error":{...}}) and the status it came with.
func (wc *wsConn) sendErrorBody(status int, body []byte) { _ = wc.write(errorEvent(status, body)) }

// errorEvent is the error event OpenAI's WebSocket APIs send, made of an
// OpenAI error body ({"error":{...}}) and the status it came with.
func errorEvent(status int, body []byte) []byte {
	var e struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || len(e.Error) == 0 || e.Error[0] != '{' {
		e.Error, _ = json.Marshal(map[string]any{"type": "server_error", "code": "upstream_error", "message": "the provider answered HTTP " + strconv.Itoa(status), "param": nil})
	}
	b := make([]byte, 0, len(e.Error)+48)
	b = append(b, `{"type":"error","status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, `,"error":`...)
	b = append(b, e.Error...)
	return append(b, '}')
}

// openAIErrorBody is the error body keygate answers an OpenAI call with.
func (g *Gateway) openAIErrorBody(status int, code, msg string) []byte {
	rec := &bufferWriter{h: http.Header{}}
	g.openai.WriteError(rec, status, code, msg)
	return rec.b.Bytes()
}

// bufferWriter is a ResponseWriter into memory, for small bodies.
type bufferWriter struct {
	h http.Header
	b bytes.Buffer
}

func (w *bufferWriter) Header() http.Header         { return w.h }
func (w *bufferWriter) Write(p []byte) (int, error) { return w.b.Write(p) }
func (w *bufferWriter) WriteHeader(int)             {}

// maxErrorEvent bounds an error answer kept to send as an error event.
const maxErrorEvent = 64 << 10

// turnWriter receives a turn's HTTP answer: each event of a stream becomes
// one text message to the client, as it arrives; an error answer is kept
// to send as an error event.
type turnWriter struct {
	conn    *wsConn
	h       http.Header
	status  int
	sse     bool
	in      []byte // an unfinished event
	errBody bytes.Buffer
	err     error // the client could not be written to
	ended   bool  // the stream's last event (completed, failed, incomplete, error) was sent
}

// Header returns the answer's headers, which the client never sees.
func (tw *turnWriter) Header() http.Header { return tw.h }

// WriteHeader notes the answer's status and kind.
func (tw *turnWriter) WriteHeader(code int) {
	if tw.status != 0 {
		return
	}
	tw.status = code
	tw.sse = code == http.StatusOK && strings.HasPrefix(tw.h.Get("Content-Type"), "text/event-stream")
}

// Write passes whole events on as messages.
func (tw *turnWriter) Write(p []byte) (int, error) {
	if tw.status == 0 {
		tw.WriteHeader(http.StatusOK)
	}
	if tw.err != nil {
		return 0, tw.err
	}
	if !tw.sse {
		if tw.errBody.Len()+len(p) <= maxErrorEvent {
			tw.errBody.Write(p)
		}
		return len(p), nil
	}
	tw.in = append(tw.in, p...)
	for {
		end := eventEnd(tw.in)
		if end < 0 {
			break
		}
		if _, data, _, ok := eventData(tw.in[:end]); ok && len(data) > 0 && !bytes.Equal(data, []byte("[DONE]")) {
			if err := tw.conn.write(data); err != nil {
				tw.err = err
				return 0, err
			}
			tw.ended = tw.ended || lastEvent(eventType(data))
		}
		tw.in = tw.in[end:]
	}
	if len(tw.in) == 0 {
		tw.in = tw.in[:0]
	}
	return len(p), nil
}

// lastEvent reports whether an event of type typ ends a response's stream.
func lastEvent(typ []byte) bool {
	switch string(typ) {
	case "response.completed", "response.failed", "response.incomplete", "error":
		return true
	}
	return false
}

// Flush does nothing: every event is sent as it is whole.
func (tw *turnWriter) Flush() {}
