package chaos

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/internal/fakeprovider"
)

// providerFault is what a fake provider does with the calls it receives.
type providerFault int32

const (
	providerOK   providerFault = iota // answers normally
	providerHang                      // never answers, until healed or the caller gives up
	provider5xx                       // answers 500 with the provider's own error body
	provider429                       // answers 429 with retry-after: 1
)

// Prices every deployment declares, so what a fake bills and what keygate
// records are whole micro-dollars per token and can be compared exactly.
const (
	priceInput  = 1 // USD per million input tokens: 1 micro-dollar per token
	priceOutput = 2 // USD per million output tokens: 2 micro-dollars per token
)

// upstream is one fake provider (OpenAI or Anthropic wire format) with a
// fault switch, which counts what it billed: the tokens of every answer it
// delivered whole, at the deployments' prices.
type upstream struct {
	name    string
	dialect string // openai or anthropic
	key     string
	url     string // base URL as registered with keygate

	ok, fail500, fail429 *fakeprovider.Server
	srv                  *http.Server
	fault                atomic.Int32
	mu                   sync.Mutex
	release              chan struct{} // closed to free hung calls

	billedMicro atomic.Int64
	billedCalls atomic.Int64
	calls       atomic.Int64

	billMu sync.Mutex
	billed map[int64][]int64 // call number (from the prompt) → each answer's cost
}

// startUpstream serves a fake provider of dialect on a free loopback port.
func startUpstream(name, dialect, key string) (*upstream, error) {
	opts := fakeprovider.Options{APIKey: key, NoRecord: true, Chunks: 4, ChunkDelay: 5 * time.Millisecond,
		ReplyText: "All systems nominal; the chaos suite is watching."}
	newFake := fakeprovider.NewOpenAI
	if dialect == "anthropic" {
		newFake = fakeprovider.NewAnthropic
	}
	u := &upstream{name: name, dialect: dialect, key: key, release: make(chan struct{}), billed: map[int64][]int64{}}
	u.ok = newFake(opts)
	opts.FailStatus = http.StatusInternalServerError
	u.fail500 = newFake(opts)
	opts.FailStatus = http.StatusTooManyRequests
	u.fail429 = newFake(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for fake provider %s: %w", name, err)
	}
	u.url = "http://" + ln.Addr().String()
	if dialect == "openai" {
		u.url += "/v1"
	}
	u.srv = &http.Server{Handler: u, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = u.srv.Serve(ln) }()
	return u, nil
}

// setFault switches what the provider does from now on; leaving the hang
// frees every call it held.
func (u *upstream) setFault(f providerFault) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if providerFault(u.fault.Load()) == providerHang && f != providerHang {
		close(u.release)
		u.release = make(chan struct{})
	}
	u.fault.Store(int32(f))
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.calls.Add(1)
	switch providerFault(u.fault.Load()) {
	case providerHang:
		u.mu.Lock()
		release := u.release
		u.mu.Unlock()
		select {
		case <-r.Context().Done():
		case <-release:
		}
		// A hung provider never answers: when it comes back, the
		// connections it held are dropped, not answered.
		panic(http.ErrAbortHandler)
	case provider5xx:
		u.fail500.ServeHTTP(w, r)
		return
	case provider429:
		u.fail429.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	cw := &captureWriter{ResponseWriter: w, status: http.StatusOK}
	u.ok.ServeHTTP(cw, r)
	if cw.status == http.StatusOK {
		in, out := usageOf(cw.body.Bytes())
		cost := in*priceInput + out*priceOutput
		u.billedMicro.Add(cost)
		u.billedCalls.Add(1)
		if n, ok := callNumber(body); ok {
			u.billMu.Lock()
			u.billed[n] = append(u.billed[n], cost)
			u.billMu.Unlock()
		}
	}
}

var callField = regexp.MustCompile(`chaos call (\d+)`)

// callNumber reads the load's call number from a request body's prompt,
// which translation between dialects carries through unchanged.
func callNumber(body []byte) (int64, bool) {
	m := callField.FindSubmatch(body)
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseInt(string(m[1]), 10, 64)
	return n, err == nil
}

// bills returns what the provider billed, by call number.
func (u *upstream) bills() map[int64][]int64 {
	u.billMu.Lock()
	defer u.billMu.Unlock()
	out := make(map[int64][]int64, len(u.billed))
	for n, c := range u.billed {
		out[n] = append([]int64(nil), c...)
	}
	return out
}

// close stops the provider, freeing held calls.
func (u *upstream) close() {
	u.setFault(providerOK)
	u.ok.Close()
	u.fail500.Close()
	u.fail429.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = u.srv.Shutdown(ctx)
}

// captureWriter keeps a copy of what of an answer reached the caller (bounded).
type captureWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (c *captureWriter) WriteHeader(code int) {
	c.status = code
	c.ResponseWriter.WriteHeader(code)
}

// Write passes p on and keeps what reached the caller: a provider bills
// the usage it delivered, even when the caller hangs up after it.
func (c *captureWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	if c.body.Len() < 1<<20 {
		c.body.Write(p[:n])
	}
	return n, err
}

// Flush passes a stream's events on as they are written.
func (c *captureWriter) Flush() {
	_ = http.NewResponseController(c.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the real writer.
func (c *captureWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

var usageField = regexp.MustCompile(`"(prompt_tokens|completion_tokens|input_tokens|output_tokens)"\s*:\s*(\d+)`)

// usageOf reads the input and output tokens an answer reports, JSON or
// SSE, in either dialect: a stream's counts are cumulative, so the largest
// of each is the total.
func usageOf(body []byte) (in, out int64) {
	for _, m := range usageField.FindAllSubmatch(body, -1) {
		n, _ := strconv.ParseInt(string(m[2]), 10, 64)
		switch string(m[1]) {
		case "prompt_tokens", "input_tokens":
			in = max(in, n)
		default:
			out = max(out, n)
		}
	}
	return in, out
}

// costOf is what an answer costs at the deployments' prices, in micro-dollars.
func costOf(body []byte) int64 {
	in, out := usageOf(body)
	return in*priceInput + out*priceOutput
}

// echoService is the HTTP API behind the passthrough service: it answers
// only calls that carry the credential keygate injects.
type echoService struct {
	token string
	url   string
	srv   *http.Server
	calls atomic.Int64
}

func startEcho(token string) (*echoService, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the passthrough service: %w", err)
	}
	e := &echoService{token: token, url: "http://" + ln.Addr().String()}
	e.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.calls.Add(1)
		if r.Header.Get("Authorization") != "Bearer "+e.token {
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"pong":true}`))
	})}
	go func() { _ = e.srv.Serve(ln) }()
	return e, nil
}

func (e *echoService) close() { _ = e.srv.Close() }

// auditReceiver is the webhook audit sink: it accepts batches while on,
// and while off its port refuses connections, as a SIEM that is down.
type auditReceiver struct {
	addr string

	mu      sync.Mutex
	srv     *http.Server
	batches atomic.Int64
}

func startAuditReceiver() (*auditReceiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the audit webhook: %w", err)
	}
	a := &auditReceiver{addr: ln.Addr().String()}
	a.serve(ln)
	return a, nil
}

func (a *auditReceiver) serve(ln net.Listener) {
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b bytes.Buffer
		_, _ = b.ReadFrom(r.Body)
		a.batches.Add(1)
		w.WriteHeader(http.StatusNoContent)
	})}
	a.mu.Lock()
	a.srv = srv
	a.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// off stops the receiver; its port then refuses connections.
func (a *auditReceiver) off() {
	a.mu.Lock()
	srv := a.srv
	a.srv = nil
	a.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// on starts the receiver again on the same port.
func (a *auditReceiver) on() error {
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", a.addr); err == nil {
			a.serve(ln)
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("restart the audit webhook on %s: %w", a.addr, err)
}
