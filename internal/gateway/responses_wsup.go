package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/keygate/keygate/internal/jsonpeek"
)

// The upstream half of the Responses API's WebSocket mode: one WebSocket
// per provider a client connection reaches, opened on its first admitted
// response with the request keygate built (the real key injected, the
// client's credentials stripped), and read as if it were the HTTP stream:
// each message becomes a server-sent event, so the metering, scrubbing
// and leak checks of the SSE path apply unchanged.

// noWSFor is how long keygate remembers that a provider refused the
// WebSocket upgrade, reaching it over HTTP meanwhile.
const noWSFor = 10 * time.Minute

// upstreamFrames bounds the messages read ahead from a provider: a client
// that reads slowly holds the provider back, not keygate's memory.
const upstreamFrames = 8

// upstreamWS is one WebSocket to a provider.
type upstreamWS struct {
	conn   *websocket.Conn
	frames chan upstreamFrame // read ahead by the reader goroutine
	err    error              // why the reader stopped, once frames is closed
	broken bool
}

// upstreamFrame is one message from a provider, in a buffer lent by
// wsMsgBufs until it has been copied on.
type upstreamFrame struct {
	typ websocket.MessageType
	buf *bytes.Buffer
}

// done gives the frame's buffer back.
func (f upstreamFrame) done() {
	if f.buf.Cap() <= 1<<20 {
		wsMsgBufs.Put(f.buf)
	}
}

// wsMsgBufs lends the messages read from providers their buffers.
var wsMsgBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// readLoop reads the provider's messages until the socket ends.
func (u *upstreamWS) readLoop(ctx context.Context) {
	defer close(u.frames)
	for {
		typ, r, err := u.conn.Reader(ctx)
		if err != nil {
			u.err = err
			return
		}
		buf := wsMsgBufs.Get().(*bytes.Buffer)
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			wsMsgBufs.Put(buf)
			u.err = err
			return
		}
		select {
		case u.frames <- upstreamFrame{typ, buf}:
		case <-ctx.Done():
			u.err = ctx.Err()
			return
		}
	}
}

// wsUpstreamable reports whether a call may reach its provider over a
// WebSocket: a native OpenAI provider, one deployment, no translation.
func (g *Gateway) wsUpstreamable(c *call) bool {
	if g.opts.ResponsesWS.HTTPUpstream || c.alias != nil || c.translate || c.upstream == nil {
		return false
	}
	up := c.upstream
	if up.Dialect != "openai" || up.Preset != nil || up.Auth != nil {
		return false
	}
	if until, ok := g.noWS.Load(up.Name); ok && time.Now().Before(until.(time.Time)) {
		return false
	}
	return true
}

// roundTripWS sends a turn's request to its provider over the
// connection's WebSocket to it, opening one if needed. A provider that
// refuses the upgrade is reached over HTTP (base) instead.
func (t *wsTurn) roundTripWS(base http.RoundTripper, req *http.Request, c *call) (*http.Response, error) {
	wc, g := t.conn, t.conn.g
	u := wc.upstreams[c.upstream.Name]
	if u != nil && u.broken {
		u.conn.CloseNow()
		delete(wc.upstreams, c.upstream.Name)
		u = nil
	}
	if u == nil {
		conn, resp, err := g.dialUpstreamWS(wc.ctx, base, req)
		if err != nil {
			if resp == nil {
				return nil, err // unreachable: answered as any other call
			}
			switch resp.StatusCode {
			case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusUpgradeRequired, http.StatusNotImplemented, http.StatusBadRequest:
				// No WebSocket mode there: HTTP for a while.
				g.noWS.Store(c.upstream.Name, time.Now().Add(noWSFor))
				g.opts.Log.Info("provider has no Responses WebSocket mode; reaching it over HTTP", "provider", c.upstream.Name, "status", resp.StatusCode)
			}
			// Nothing has been sent: the same request goes over HTTP,
			// where the provider's own answer (an expired key, say)
			// reaches the client scrubbed.
			return c.upstream.RoundTrip(req, base)
		}
		u = &upstreamWS{conn: conn, frames: make(chan upstreamFrame, upstreamFrames)}
		limit := g.opts.MaxBodyBytes
		if limit <= 0 {
			limit = 32 << 20
		}
		conn.SetReadLimit(max(limit, 64<<20)) // a response.completed event repeats the whole answer
		go u.readLoop(wc.ctx)
		wc.upstreams[c.upstream.Name] = u
	}
	// Anything left from before this turn is stale.
	for drained := false; !drained; {
		select {
		case f, ok := <-u.frames:
			if !ok {
				u.broken = true
				return nil, errors.New("the provider closed its WebSocket")
			}
			f.done()
		default:
			drained = true
		}
	}
	msg, err := postToCreate(c.body)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(wc.ctx, wc.opts.WriteTimeout)
	err = u.conn.Write(wctx, websocket.MessageText, msg)
	cancel()
	if err != nil {
		u.broken = true
		return nil, err
	}
	h := http.Header{}
	h.Set("Content-Type", "text/event-stream")
	return &http.Response{
		Status: "200 OK", StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, ContentLength: -1, Request: req,
		Body: &wsEventBody{u: u},
	}, nil
}

// dialUpstreamWS opens a WebSocket to the provider req is addressed to,
// with req's headers: the real credential, and what the client sent
// besides its own.
func (g *Gateway) dialUpstreamWS(ctx context.Context, base http.RoundTripper, req *http.Request) (*websocket.Conn, *http.Response, error) {
	u := *req.URL
	switch u.Scheme {
	case "https":
		u.Scheme = "wss"
	case "http":
		u.Scheme = "ws"
	}
	h := req.Header.Clone()
	for _, name := range []string{"Content-Length", "Content-Type", "Accept", "Connection", "Upgrade", "Accept-Encoding"} {
		h.Del(name)
	}
	for name := range h {
		if strings.HasPrefix(name, "Sec-Websocket-") {
			delete(h, name)
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(dctx, u.String(), &websocket.DialOptions{
		HTTPClient:      &http.Client{Transport: base, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		HTTPHeader:      h,
		CompressionMode: g.opts.ResponsesWS.compression(),
	})
	if resp != nil && resp.Body != nil && err != nil {
		resp.Body.Close()
	}
	return conn, resp, err
}

// wsEventBody reads one answer's messages off an upstream WebSocket as
// server-sent events, until the answer's last event.
type wsEventBody struct {
	u    *upstreamWS
	buf  bytes.Buffer
	done bool
	once sync.Once
}

// Read returns the next events.
func (b *wsEventBody) Read(p []byte) (int, error) {
	for b.buf.Len() == 0 {
		if b.done {
			return 0, io.EOF
		}
		f, ok := <-b.u.frames
		if !ok {
			// The reader stopped (frames is closed, so its err is set).
			b.u.broken = true
			b.done = true
			return 0, fmt.Errorf("the provider's WebSocket ended mid-answer (%w): %v", io.ErrUnexpectedEOF, b.u.err)
		}
		if f.typ != websocket.MessageText {
			f.done()
			continue
		}
		msg := f.buf.Bytes()
		typ := eventType(msg)
		b.buf.WriteString("event: ")
		b.buf.Write(typ)
		b.buf.WriteString("\ndata: ")
		if bytes.IndexByte(msg, '\n') < 0 {
			b.buf.Write(msg)
		} else {
			b.buf.Write(bytes.ReplaceAll(msg, []byte("\n"), nil)) // one data line: JSON needs no raw newline
		}
		b.buf.WriteString("\n\n")
		b.done = lastEvent(typ)
		f.done()
	}
	return b.buf.Read(p)
}

// Close ends the answer; a socket left in the middle of one is closed,
// since what remains of it would be read as the next answer.
func (b *wsEventBody) Close() error {
	b.once.Do(func() {
		if !b.done {
			b.u.broken = true
		}
	})
	return nil
}

// eventType reads an event's "type", nil when it has none or it is not a
// plain string. OpenAI sends it first, so little is read.
func eventType(msg []byte) []byte {
	s := jsonpeek.NewScanner(msg)
	for key, ok := s.FirstMember(); ok; key, ok = s.NextMember() {
		v := s.Skip()
		if string(key) == "type" {
			if len(v) >= 2 && v[0] == '"' && bytes.IndexByte(v[1:len(v)-1], '\\') < 0 {
				return v[1 : len(v)-1]
			}
			return nil
		}
	}
	return nil
}

// relayProcessed passes a response.processed event to the upstream
// sockets that are open; over HTTP there is nobody to tell.
func (wc *wsConn) relayProcessed(msg []byte) {
	if len(msg) > 4<<10 {
		return // it names a response id, no more
	}
	if m := wc.g.leaks.Load(); m != nil && len(m.Check(msg)) > 0 {
		return // a credential has no business there
	}
	for _, u := range wc.upstreams {
		if u.broken {
			continue
		}
		ctx, cancel := context.WithTimeout(wc.ctx, wc.opts.WriteTimeout)
		if err := u.conn.Write(ctx, websocket.MessageText, msg); err != nil {
			u.broken = true
		}
		cancel()
	}
}

// closeUpstreams closes the connection's upstream sockets.
func (wc *wsConn) closeUpstreams() {
	for name, u := range wc.upstreams {
		_ = u.conn.Close(websocket.StatusNormalClosure, "")
		delete(wc.upstreams, name)
	}
}
