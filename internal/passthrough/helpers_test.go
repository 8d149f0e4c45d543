package passthrough

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/secret"
)

// Obviously fake credentials: the one keygate holds and one a client sends.
const (
	testKey   = "test-upstream-secret-not-real"
	clientKey = "client-own-secret-not-real"
)

// seen is what an upstream test server received.
type seen struct {
	Method     string
	RequestURI string
	Host       string
	Header     http.Header
	Query      string
}

// upstream is a real HTTP server that records every request it receives.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
}

// newUpstream starts an upstream answering with h (200 "ok" if nil).
func newUpstream(t *testing.T, h http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.reqs = append(u.reqs, seen{Method: r.Method, RequestURI: r.RequestURI, Host: r.Host, Header: r.Header.Clone(), Query: r.URL.RawQuery})
		u.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(u.Close)
	return u
}

// got returns the requests received so far.
func (u *upstream) got() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seen(nil), u.reqs...)
}

// only returns the single request received, failing otherwise.
func (u *upstream) only(t *testing.T) seen {
	t.Helper()
	g := u.got()
	if len(g) != 1 {
		t.Fatalf("upstream received %d requests, want 1", len(g))
	}
	return g[0]
}

// mustService is ParseService that fails the test on error.
func mustService(t testing.TB, name, base string, a Auth, allowPrivate bool) *Service {
	t.Helper()
	s, err := ParseService(name, base, a, allowPrivate)
	if err != nil {
		t.Fatalf("ParseService(%q, %q): %v", name, base, err)
	}
	return s
}

// testTransport returns a Transport with short timeouts, closed at cleanup.
func testTransport(t *testing.T) *Transport {
	t.Helper()
	tr := NewTransport(TransportOptions{DialTimeout: 3 * time.Second, ResponseHeaderTimeout: 5 * time.Second})
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// send builds a request the way the gateway would: client headers, then
// Rewrite, then WithService, then the transport.
func send(t *testing.T, tr http.RoundTripper, s *Service, method, rest, rawQuery string, clientHeader http.Header) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, "http://keygate.invalid/", nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range clientHeader {
		req.Header[k] = v
	}
	if err := s.Rewrite(req, rest, rawQuery, secret.New(testKey)); err != nil {
		t.Fatalf("Rewrite: %v", err)
	}
	req = req.WithContext(WithService(req.Context(), s))
	resp, err := tr.RoundTrip(req)
	if resp != nil {
		t.Cleanup(func() { _ = resp.Body.Close() })
	}
	return resp, err
}

// front is keygate's passthrough route in miniature, wired the way the
// gateway is expected to wire it: ServiceFromPath, CheckPath, WithService,
// then httputil.ReverseProxy with Rewrite, the Transport and ScrubLocation.
type front struct {
	*httptest.Server
	mu   sync.Mutex
	errs []error
}

func newFront(t *testing.T, tr *Transport, svcs ...*Service) *front {
	return newFrontChecking(t, tr, true, svcs...)
}

// newFrontChecking is newFront; with early false the route skips CheckPath
// and relies on Rewrite inside the reverse proxy alone.
func newFrontChecking(t *testing.T, tr *Transport, early bool, svcs ...*Service) *front {
	t.Helper()
	key := secret.New(testKey)
	byName := map[string]*Service{}
	for _, s := range svcs {
		byName[s.Name] = s
	}
	f := &front{}
	rp := &httputil.ReverseProxy{
		Transport: tr,
		Rewrite: func(pr *httputil.ProxyRequest) {
			s := ServiceFrom(pr.In.Context())
			_, rest, _ := ServiceFromPath(pr.In.URL.EscapedPath())
			if err := s.Rewrite(pr.Out, rest, pr.In.URL.RawQuery, key); err != nil {
				// Detach the service: the transport then refuses the request.
				pr.Out = pr.Out.WithContext(WithService(pr.Out.Context(), nil))
			}
		},
		ModifyResponse: func(resp *http.Response) error {
			ScrubLocation(resp.Header, ServiceFrom(resp.Request.Context()), key)
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			f.mu.Lock()
			f.errs = append(f.errs, err)
			f.mu.Unlock()
			http.Error(w, "upstream refused or unreachable", http.StatusBadGateway)
		},
	}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, rest, ok := ServiceFromPath(r.URL.EscapedPath())
		s := byName[name]
		if !ok || s == nil {
			http.Error(w, "no such service", http.StatusNotFound)
			return
		}
		if err := CheckPath(rest); early && err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rp.ServeHTTP(w, r.WithContext(WithService(r.Context(), s)))
	}))
	t.Cleanup(f.Close)
	return f
}

// errors returns the errors the reverse proxy reported.
func (f *front) errors() []error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]error(nil), f.errs...)
}

// raw sends target verbatim in a request line to the front, so no client
// library cleans or re-encodes it, and returns the status code and body.
func (f *front) raw(t *testing.T, target string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", f.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: keygate.test\r\nConnection: close\r\n\r\n", target); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
