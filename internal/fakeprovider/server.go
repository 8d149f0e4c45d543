// Package fakeprovider implements in-process fake upstreams for keygate's
// tests and benchmark harness. NewOpenAI and NewAnthropic return HTTP handlers
// that speak the respective provider's wire format (paths, auth headers, JSON
// shapes, SSE events and error bodies) closely enough that the official SDKs
// accept them, while recording what they received for assertions.
package fakeprovider

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/subtle"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultChunks is the number of content deltas a stream carries when
// Options.Chunks is zero.
const DefaultChunks = 5

// DefaultReplyText is the assistant reply used when neither Options.ReplyText
// nor Options.ReplyBytes is set.
const DefaultReplyText = "Hello from the keygate fake upstream. Everything looks fine."

// maxBodyBytes bounds how much of a request body the fake reads.
const maxBodyBytes = 64 << 20

// Options configures a fake upstream. Only APIKey is required.
type Options struct {
	// WebSocketCompression accepts permessage-deflate (without context
	// takeover) on the Responses WebSocket when the client offers it.
	WebSocketCompression bool
	// APIKey is the only key the fake accepts (Authorization: Bearer for
	// OpenAI, x-api-key for Anthropic). It must not be empty.
	APIKey string
	// Latency delays every answer before any header is written.
	Latency time.Duration
	// ChunkDelay is slept between consecutive SSE events of a stream.
	ChunkDelay time.Duration
	// Chunks is the number of content deltas in a stream; DefaultChunks when
	// zero. A reply shorter than Chunks runes yields one delta per rune.
	Chunks int
	// ReplyText is the assistant reply. When empty, a deterministic reply of
	// ReplyBytes bytes is generated, or DefaultReplyText is used.
	ReplyText string
	// ReplyBytes sets the size of a generated reply when ReplyText is empty.
	ReplyBytes int
	// Models lists the model IDs the fake knows; requests naming another
	// model are refused like the provider does. When nil, a provider-specific
	// default list is used (see DefaultOpenAIModels, DefaultAnthropicModels).
	Models []string
	// FailStatus, when non-zero, makes every call (after Latency, before
	// authentication) answer this HTTP status with the provider's real error
	// body. 429 answers also carry a retry-after header.
	FailStatus int
	// FailCount, when positive, limits FailStatus to the first FailCount
	// requests the fake receives; later requests are served normally.
	FailCount int
	// EchoKeyInErrors makes authentication errors contain the full presented
	// key instead of a masked form, so tests can prove keygate scrubs keys an
	// upstream echoes back.
	EchoKeyInErrors bool
	// Hang makes the fake never answer. The handler returns when the request
	// context ends (client cancel or disconnect) or when Close is called.
	Hang bool
	// NoWebSocket makes the fake refuse the Responses API's WebSocket mode
	// like a provider without it: the upgrade is answered 404.
	NoWebSocket bool
	// NoRecord turns off request recording so long benchmark runs do not
	// accumulate memory. RequestCount still counts.
	NoRecord bool
}

// Seen is one request as the fake received it.
type Seen struct {
	// Method is the HTTP method.
	Method string
	// Path is the URL path.
	Path string
	// RawQuery is the encoded query string without the '?'.
	RawQuery string
	// Header is a clone of the request headers.
	Header http.Header
	// Body is a copy of the request body.
	Body []byte
}

// Server is a fake provider upstream. It implements http.Handler and is safe
// for concurrent use.
type Server struct {
	opts     Options
	models   []string
	modelSet map[string]struct{}
	reply    reply
	idBase   string

	handle func(s *Server, w http.ResponseWriter, r *http.Request, body []byte)
	fail   func(s *Server, w http.ResponseWriter)

	// failBody is the prebuilt error body for Options.FailStatus.
	failBody []byte
	// modelsBody is the prebuilt answer to GET /v1/models.
	modelsBody []byte

	seq   atomic.Uint64
	count atomic.Int64

	mu    sync.Mutex
	seen  []Seen
	extra []string // keys accepted besides Options.APIKey, see AddAPIKey
	// stored holds finished Responses API answers by id (responses_extra.go).
	stored map[string][]byte

	closed    chan struct{}
	closeOnce sync.Once
	bufs      sync.Pool
}

func newServer(opts Options, defaultModels []string) *Server {
	if opts.APIKey == "" {
		panic("fakeprovider: Options.APIKey is required")
	}
	if opts.Chunks <= 0 {
		opts.Chunks = DefaultChunks
	}
	models := opts.Models
	if models == nil {
		models = defaultModels
	}
	s := &Server{
		opts:     opts,
		models:   append([]string(nil), models...),
		modelSet: make(map[string]struct{}, len(models)),
		idBase:   randomAlnum(14),
		closed:   make(chan struct{}),
	}
	for _, m := range s.models {
		s.modelSet[m] = struct{}{}
	}
	text := opts.ReplyText
	if text == "" {
		if opts.ReplyBytes > 0 {
			text = generateText(opts.ReplyBytes)
		} else {
			text = DefaultReplyText
		}
	}
	s.reply = newReply(text, opts.Chunks)
	s.bufs.New = func() any { b := make([]byte, 0, 4096); return &b }
	return s
}

// ServeHTTP answers one request in the provider's wire format.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.count.Add(1)
	bp := s.bufs.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 1<<20 {
			*bp = (*bp)[:0]
			s.bufs.Put(bp)
		}
	}()
	body, err := readBody(r.Body, (*bp)[:0])
	*bp = body
	if !s.opts.NoRecord {
		s.record(r, body)
	}
	if err != nil {
		return
	}
	if s.opts.Hang {
		select {
		case <-r.Context().Done():
		case <-s.closed:
		}
		return
	}
	if s.opts.Latency > 0 && !s.wait(r.Context(), s.opts.Latency) {
		return
	}
	if s.opts.FailStatus != 0 && (s.opts.FailCount <= 0 || n <= int64(s.opts.FailCount)) {
		s.fail(s, w)
		return
	}
	s.handle(s, w, r, body)
}

// Requests returns a deep copy of the requests recorded so far, oldest first;
// callers may modify it freely.
func (s *Server) Requests() []Seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Seen, len(s.seen))
	for i, r := range s.seen {
		r.Header = r.Header.Clone()
		r.Body = bytes.Clone(r.Body)
		out[i] = r
	}
	return out
}

// Reset forgets the recorded requests. RequestCount and the FailCount budget
// are not affected.
func (s *Server) Reset() {
	s.mu.Lock()
	s.seen = nil
	s.mu.Unlock()
}

// RequestCount reports how many requests the fake has received since it was
// created, whether or not recording is on.
func (s *Server) RequestCount() int64 { return s.count.Load() }

// Models returns the model IDs the fake accepts.
func (s *Server) Models() []string { return append([]string(nil), s.models...) }

// ReplyText returns the assistant reply every successful generation carries.
func (s *Server) ReplyText() string { return s.reply.text }

// Close releases every handler blocked by Hang, Latency or ChunkDelay so an
// enclosing http.Server or httptest.Server can shut down. It is idempotent.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
}

func (s *Server) record(r *http.Request, body []byte) {
	seen := Seen{
		Method:   r.Method,
		Path:     r.URL.Path,
		RawQuery: r.URL.RawQuery,
		Header:   r.Header.Clone(),
		Body:     bytes.Clone(body),
	}
	if seen.Body == nil {
		seen.Body = []byte{}
	}
	s.mu.Lock()
	s.seen = append(s.seen, seen)
	s.mu.Unlock()
}

// wait sleeps for d; it reports false when ctx ends or the server closes first.
func (s *Server) wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.closed:
		return false
	}
}

// newID returns prefix followed by a per-server random base and a sequence
// number, unique within the server.
func (s *Server) newID(prefix string) string {
	n := s.seq.Add(1)
	b := make([]byte, 0, len(prefix)+len(s.idBase)+10)
	b = append(b, prefix...)
	b = append(b, s.idBase...)
	const digits = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	var tmp [11]byte
	i := len(tmp)
	for j := 0; j < 10; j++ {
		i--
		tmp[i] = digits[n%62]
		n /= 62
	}
	return string(append(b, tmp[i:]...))
}

func (s *Server) knownModel(m string) bool {
	_, ok := s.modelSet[m]
	return ok
}

// keyMatches compares a presented key with each accepted one in constant time.
func (s *Server) keyMatches(presented string) bool {
	ok := subtle.ConstantTimeCompare([]byte(presented), []byte(s.opts.APIKey)) == 1
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.extra {
		ok = subtle.ConstantTimeCompare([]byte(presented), []byte(k)) == 1 || ok
	}
	return ok
}

// AddAPIKey makes the fake accept key as well as its configured one, as a
// provider does while an account rolls from one key to the next.
func (s *Server) AddAPIKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.extra = append(s.extra, key)
}

// MaskKey masks a key the way OpenAI does in "Incorrect API key provided"
// messages: the first three and last four characters stay, the rest become
// asterisks. Keys of eight characters or fewer are masked entirely.
func MaskKey(key string) string {
	if len(key) <= 8 {
		return string(bytes.Repeat([]byte{'*'}, len(key)))
	}
	b := make([]byte, 0, len(key))
	b = append(b, key[:3]...)
	b = append(b, bytes.Repeat([]byte{'*'}, len(key)-7)...)
	return string(append(b, key[len(key)-4:]...))
}

func readBody(r io.Reader, buf []byte) ([]byte, error) {
	lr := io.LimitReader(r, maxBodyBytes)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// sseWriter writes server-sent events, flushing after each one and sleeping
// ChunkDelay between them.
type sseWriter struct {
	s     *Server
	w     http.ResponseWriter
	rc    *http.ResponseController
	ctx   context.Context
	buf   []byte
	count int
	err   bool
}

func (s *Server) startSSE(w http.ResponseWriter, r *http.Request, buf []byte) *sseWriter {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	return &sseWriter{s: s, w: w, rc: http.NewResponseController(w), ctx: r.Context(), buf: buf}
}

// begin starts a new event in e.buf, waiting ChunkDelay if it is not the
// first. It reports false when the stream should stop.
func (e *sseWriter) begin() bool {
	if e.err {
		return false
	}
	if e.count > 0 && e.s.opts.ChunkDelay > 0 && !e.s.wait(e.ctx, e.s.opts.ChunkDelay) {
		e.err = true
		return false
	}
	e.count++
	e.buf = e.buf[:0]
	return true
}

// flush writes the event in e.buf and flushes it to the client.
func (e *sseWriter) flush() bool {
	if _, err := e.w.Write(e.buf); err != nil {
		e.err = true
		return false
	}
	if err := e.rc.Flush(); err != nil {
		e.err = true
		return false
	}
	return true
}

func randomAlnum(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	_, _ = crand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
