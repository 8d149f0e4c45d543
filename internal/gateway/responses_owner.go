package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate/internal/principal"
	"github.com/keygate/keygate/internal/web"
)

// Responses are kept by the provider, under keygate's one upstream key:
// upstream, every key's responses are everyone's. So keygate records which
// key created each response made through it, and a key may read, cancel,
// delete or list the input of a response (GET and DELETE
// /v1/responses/{id}, POST .../cancel, GET .../input_items), or continue
// one with previous_response_id, only if it created it. An id keygate did
// not see created (another key's, one made outside keygate, or one older
// than what the record keeps) is answered 404, the same answer for all, so
// a key cannot learn which ids exist.

// ResponseOwner is who created a response through keygate, and where.
type ResponseOwner struct {
	KeyID    string
	Provider string // the provider that holds it
	Model    string // the model it was created with, as named upstream
}

// ResponseOwners records the owner of each response created through
// keygate. Put is called on the data path as an answer ends; it must not
// block for long.
type ResponseOwners interface {
	Put(ctx context.Context, id string, o ResponseOwner) error
	Get(ctx context.Context, id string) (ResponseOwner, bool, error)
	Delete(ctx context.Context, id string) error
}

// MemoryResponseOwners keeps the owners of the newest responses in
// memory: enough for one gateway node. Nodes behind a load balancer need a
// shared implementation, or sticky routing by key.
type MemoryResponseOwners struct {
	mu    sync.Mutex
	max   int
	byID  map[string]ResponseOwner
	order []string // ring of ids, oldest at next
	next  int
}

// NewMemoryResponseOwners returns a record of at most max responses; the
// oldest are forgotten first.
func NewMemoryResponseOwners(max int) *MemoryResponseOwners {
	return &MemoryResponseOwners{max: max, byID: make(map[string]ResponseOwner), order: make([]string, 0, min(max, 1024))}
}

// Put records id's owner.
func (m *MemoryResponseOwners) Put(_ context.Context, id string, o ResponseOwner) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.byID[id]; ok {
		m.byID[id] = o
		return nil
	}
	if len(m.order) < m.max {
		m.order = append(m.order, id)
	} else {
		delete(m.byID, m.order[m.next])
		m.order[m.next] = id
		m.next = (m.next + 1) % m.max
	}
	m.byID[id] = o
	return nil
}

// Get returns id's owner.
func (m *MemoryResponseOwners) Get(_ context.Context, id string) (ResponseOwner, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.byID[id]
	return o, ok, nil
}

// Delete forgets id; its slot in the ring is reused in turn.
func (m *MemoryResponseOwners) Delete(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.byID, id)
	return nil
}

// ownerRecord is the record the gateway reads and writes: its own memory
// first, then the shared record (Options.ResponseOwners) when there is
// one, so every node answers for a response another created. Writes to
// the shared record leave the request path, at most maxOwnerWrites at a
// time; past that a write waits, so a slow database holds requests back,
// never memory.
type ownerRecord struct {
	local  *MemoryResponseOwners
	shared ResponseOwners
	log    interface{ Error(msg string, args ...any) }
	writes chan struct{}
}

// maxOwnerWrites bounds the writes to the shared record in flight.
const maxOwnerWrites = 64

// ownerTimeout bounds a read or write of the shared record.
const ownerTimeout = 5 * time.Second

// Put records id's owner here at once, and in the shared record soon.
func (r *ownerRecord) Put(_ context.Context, id string, o ResponseOwner) error {
	_ = r.local.Put(context.Background(), id, o)
	if r.shared == nil {
		return nil
	}
	write := func() {
		ctx, cancel := context.WithTimeout(context.Background(), ownerTimeout)
		defer cancel()
		if err := r.shared.Put(ctx, id, o); err != nil {
			r.log.Error("could not record a response's owner for the other nodes; only this node serves it to its key", "err", err)
		}
	}
	select {
	case r.writes <- struct{}{}:
		go func() {
			defer func() { <-r.writes }()
			write()
		}()
	default:
		write()
	}
	return nil
}

// Get returns id's owner, from memory or else the shared record.
func (r *ownerRecord) Get(ctx context.Context, id string) (ResponseOwner, bool, error) {
	if o, ok, _ := r.local.Get(ctx, id); ok || r.shared == nil {
		return o, ok, nil
	}
	ctx, cancel := context.WithTimeout(ctx, ownerTimeout)
	defer cancel()
	o, ok, err := r.shared.Get(ctx, id)
	if ok {
		_ = r.local.Put(ctx, id, o)
	}
	return o, ok, err
}

// Delete forgets id everywhere.
func (r *ownerRecord) Delete(ctx context.Context, id string) error {
	_ = r.local.Delete(ctx, id)
	if r.shared == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, ownerTimeout)
	defer cancel()
	return r.shared.Delete(ctx, id)
}

// responseNotFound is the answer for a response id the key did not create
// through keygate.
func responseNotFound(id string) *Denial {
	return denyf(http.StatusNotFound, "response_not_found",
		"no response with id %q was created through keygate with this key; a key may use only the responses it created", id)
}

// checkPrevious refuses a call that continues (previous_response_id) a
// response its key did not create through keygate.
func (g *Gateway) checkPrevious(r *http.Request, key *principal.Principal, body []byte) *Denial {
	if !strings.HasPrefix(r.URL.Path, "/v1/responses") || !bytes.Contains(body, []byte(`"previous_response_id"`)) {
		return nil
	}
	var f struct {
		Previous *string `json:"previous_response_id"`
	}
	if json.Unmarshal(body, &f) != nil || f.Previous == nil || *f.Previous == "" {
		return nil
	}
	o, ok, err := g.owners.Get(r.Context(), *f.Previous)
	if err != nil {
		g.opts.Log.Error("could not read a response's owner", "request_id", web.RequestID(r.Context()), "err", err)
		return deny(http.StatusServiceUnavailable, "owners_unavailable", "keygate cannot check who created the previous response right now; try again shortly")
	}
	if !ok || o.KeyID != key.ID {
		return responseNotFound(*f.Previous)
	}
	return nil
}

// responseIDBody records, when an answer that creates a response ends,
// the response's id as its key's. The id is the answer's first "id": the
// response object's own in a JSON answer, and in a stream that of
// response.created, its first event.
type responseIDBody struct {
	io.ReadCloser
	g    *Gateway
	c    *call
	tail []byte // the end of what was read while no id was found
	id   string
	once sync.Once
}

// maxResponseID bounds an id read from an answer.
const maxResponseID = 128

// Read passes the answer through, looking for the id.
func (b *responseIDBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 && b.id == "" {
		b.tail = append(b.tail, p[:n]...)
		if id, ok := firstID(b.tail); ok {
			b.id, b.tail = id, nil
		} else if len(b.tail) > 2*maxResponseID {
			b.tail = append(b.tail[:0], b.tail[len(b.tail)-2*maxResponseID:]...)
		}
	}
	return n, err
}

// Close records the owner once.
func (b *responseIDBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(func() {
		if b.id == "" || b.c.keyID == "" || b.c.upstream == nil {
			return
		}
		b.c.responseID = b.id
		o := ResponseOwner{KeyID: b.c.keyID, Provider: b.c.upstream.Name, Model: b.c.sentModel}
		if perr := b.g.owners.Put(context.Background(), b.id, o); perr != nil {
			b.g.opts.Log.Error("could not record a response's owner; only its id's holder loses access to it", "request_id", b.c.requestID, "err", perr)
		}
	})
	return err
}

// firstID finds the first complete "id":"..." string value in b.
func firstID(b []byte) (string, bool) {
	i := bytes.Index(b, []byte(`"id"`))
	if i < 0 {
		return "", false
	}
	rest := b[i+4:]
	rest = bytes.TrimLeft(rest, " \t\r\n")
	if len(rest) == 0 {
		return "", false
	}
	if rest[0] != ':' {
		return firstID(b[i+4:])
	}
	rest = bytes.TrimLeft(rest[1:], " \t\r\n")
	if len(rest) == 0 {
		return "", false
	}
	if rest[0] != '"' {
		return firstID(b[i+4:])
	}
	end := bytes.IndexByte(rest[1:], '"')
	if end < 0 {
		return "", false
	}
	id := rest[1 : 1+end]
	if len(id) == 0 || len(id) > maxResponseID || bytes.ContainsAny(id, `\ `) {
		return "", false
	}
	return string(id), true
}

// serveStoredResponse serves what the Responses API offers on a response
// once created: GET and DELETE /v1/responses/{id}, POST
// /v1/responses/{id}/cancel and GET /v1/responses/{id}/input_items. It
// takes the steps of a model call, the model being the response's, and
// one more: the key must have created the response through keygate. The
// call is charged as a request, never as tokens: reading an answer again
// uses none.
func (g *Gateway) serveStoredResponse(w http.ResponseWriter, r *http.Request) {
	c := callFrom(r.Context())
	c.dialect = g.openai
	if den := g.prepareStoredResponse(w.Header(), r, c); den != nil {
		g.refuse(w, r, den)
		return
	}
	defer g.settle(c)
	sw := &web.StatusWriter{ResponseWriter: w}
	g.proxy.ServeHTTP(sw, r)
	if r.Method == http.MethodDelete && sw.Status == http.StatusOK {
		if err := g.owners.Delete(context.Background(), c.responseID); err != nil {
			g.opts.Log.Warn("could not forget a deleted response's owner", "request_id", c.requestID, "err", err)
		}
	}
}

// prepareStoredResponse runs the steps of a call on a stored response.
func (g *Gateway) prepareStoredResponse(h http.Header, r *http.Request, c *call) *Denial {
	id, sub, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v1/responses/"), "/")
	switch {
	case id == "" || strings.Contains(sub, "/"):
		return denyf(http.StatusNotFound, "unknown_url", "keygate does not serve %s %s", r.Method, r.URL.Path)
	case sub == "" && r.Method != http.MethodGet && r.Method != http.MethodDelete:
		return notServed("GET or DELETE", r.URL.Path)
	case sub == "cancel" && r.Method != http.MethodPost:
		return notServed(http.MethodPost, r.URL.Path)
	case sub == "input_items" && r.Method != http.MethodGet:
		return notServed(http.MethodGet, r.URL.Path)
	case sub != "" && sub != "cancel" && sub != "input_items":
		return denyf(http.StatusNotFound, "unknown_url", "keygate does not serve %s %s", r.Method, r.URL.Path)
	}
	key, den := g.caller(r, c)
	if den != nil {
		return den
	}
	o, ok, err := g.owners.Get(r.Context(), id)
	if err != nil {
		g.opts.Log.Error("could not read a response's owner", "request_id", c.requestID, "err", err)
		return deny(http.StatusServiceUnavailable, "owners_unavailable", "keygate cannot check who created this response right now; try again shortly")
	}
	if !ok || o.KeyID != key.ID {
		return responseNotFound(id)
	}
	up, known := g.table.Load().Get(o.Provider)
	if !known {
		return denyf(http.StatusNotFound, "response_not_found", "the provider that holds response %q is no longer configured", id)
	}
	c.model, c.responseID, c.countOnly = o.Model, id, true
	if den := g.authorize(c, key, up, o.Model); den != nil {
		return den
	}
	if den := g.tracedAdmit(h, r, c, key, o.Model, emptyFields, 0); den != nil {
		return den
	}
	c.upstream, c.sentModel, c.body = up, o.Model, nil
	return nil
}
