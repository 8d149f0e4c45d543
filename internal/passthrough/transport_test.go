package passthrough

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/keygate/keygate/internal/secret"
)

// wantBlocked fails unless err is a *BlockedError that names no credential.
func wantBlocked(t *testing.T, err error) *BlockedError {
	t.Helper()
	var b *BlockedError
	if !errors.As(err, &b) {
		t.Fatalf("error %v (%T), want *BlockedError", err, err)
	}
	for _, msg := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
		if strings.Contains(msg, testKey) {
			t.Fatalf("error repeats the credential: %s", msg)
		}
	}
	return b
}

func TestPrivateUpstreamsAreRefusedAtDialTime(t *testing.T) {
	up := newUpstream(t, nil) // listens on 127.0.0.1
	port := up.Listener.Addr().(*net.TCPAddr).Port
	tr := testTransport(t)
	cases := []struct {
		base string
		ip   string // the address the refusal should name; "" for any
	}{
		{up.URL, "127.0.0.1"},
		{fmt.Sprintf("http://localhost:%d", port), ""},
		{fmt.Sprintf("http://[::ffff:127.0.0.1]:%d", port), ""},
		{"http://169.254.169.254/latest/meta-data", "169.254.169.254"},
		{"http://10.1.2.3:8080", "10.1.2.3"},
		{"http://192.168.1.1", "192.168.1.1"},
		{"http://100.64.0.1", "100.64.0.1"},
		{"http://0.0.0.0:80", "0.0.0.0"},
	}
	// IPv6 sockets need an IPv6 stack; where there is one, a real server
	// listens on [::1] and must receive nothing.
	var up6 *upstream
	if l, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		up6 = &upstream{}
		up6.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			up6.mu.Lock()
			up6.reqs = append(up6.reqs, seen{RequestURI: r.RequestURI})
			up6.mu.Unlock()
		}))
		_ = up6.Listener.Close()
		up6.Listener = l
		up6.Start()
		t.Cleanup(up6.Close)
		cases = append(cases, struct{ base, ip string }{up6.URL, "::1"}, struct{ base, ip string }{"http://[fd00::1]", "fd00::1"})
	} else {
		t.Log("no IPv6 loopback here; the IPv6 dial cases are skipped (Classify's table still covers IPv6)")
	}
	for _, auth := range []Auth{{Kind: AuthBearer}, {Kind: AuthQuery, Name: "api_key"}} {
		for _, c := range cases {
			s := mustService(t, "svc", c.base, auth, false)
			_, err := send(t, tr, s, http.MethodGet, "/x", "", nil)
			b := wantBlocked(t, err)
			if c.ip != "" && b.IP != netip.MustParseAddr(c.ip) {
				t.Errorf("%s: refused IP %v, want %s", c.base, b.IP, c.ip)
			}
			if !b.IP.IsValid() || b.Service != "svc" || b.Host == "" || !strings.Contains(err.Error(), "AllowPrivate") {
				t.Errorf("%s: incomplete refusal %+v: %v", c.base, b, err)
			}
		}
	}
	if n := len(up.got()); n != 0 {
		t.Fatalf("loopback server received %d requests from a service without AllowPrivate", n)
	}
	if up6 != nil && len(up6.got()) != 0 {
		t.Fatalf("IPv6 loopback server received %d requests from a service without AllowPrivate", len(up6.got()))
	}
}

func TestAllowPrivateReachesLoopback(t *testing.T) {
	up := newUpstream(t, nil)
	port := up.Listener.Addr().(*net.TCPAddr).Port
	tr := testTransport(t)
	for _, base := range []string{up.URL, fmt.Sprintf("http://localhost:%d", port)} {
		s := mustService(t, "svc", base, Auth{Kind: AuthBearer}, true)
		resp, err := send(t, tr, s, http.MethodGet, "/x", "", nil)
		if err != nil {
			t.Fatalf("%s: %v", base, err)
		}
		if b, _ := io.ReadAll(resp.Body); string(b) != "ok" {
			t.Fatalf("%s: body %q", base, b)
		}
	}
	if n := len(up.got()); n != 2 {
		t.Fatalf("upstream received %d requests, want 2", n)
	}
}

// TestPoolsAreSeparate checks that a connection opened for a service with
// AllowPrivate is never reused for one without it on the same host.
func TestPoolsAreSeparate(t *testing.T) {
	up := newUpstream(t, nil)
	tr := testTransport(t)
	open := mustService(t, "open", up.URL, Auth{Kind: AuthBearer}, true)
	strict := mustService(t, "strict", up.URL, Auth{Kind: AuthBearer}, false)
	resp, err := send(t, tr, open, http.MethodGet, "/x", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close() // the connection goes back to the pool
	_, err = send(t, tr, strict, http.MethodGet, "/x", "", nil)
	wantBlocked(t, err)
	if n := len(up.got()); n != 1 {
		t.Fatalf("upstream received %d requests, want only the allowed one", n)
	}
}

func TestRequestsMustMatchTheirService(t *testing.T) {
	up := newUpstream(t, nil)
	other := newUpstream(t, nil)
	s := mustService(t, "svc", up.URL, Auth{Kind: AuthBearer}, true)
	tr := testTransport(t)
	otherURL, _ := url.Parse(other.URL)

	build := func(t *testing.T) *http.Request {
		req, _ := http.NewRequest(http.MethodGet, "http://keygate.invalid/", nil)
		if err := s.Rewrite(req, "/x", "", secret.New(testKey)); err != nil {
			t.Fatal(err)
		}
		return req.WithContext(WithService(req.Context(), s))
	}
	cases := map[string]func(r *http.Request) *http.Request{
		"other host":        func(r *http.Request) *http.Request { r.URL.Host = otherURL.Host; r.Host = ""; return r },
		"other Host header": func(r *http.Request) *http.Request { r.Host = "admin.internal"; return r },
		"other scheme":      func(r *http.Request) *http.Request { r.URL.Scheme = "https"; return r },
		"user info":         func(r *http.Request) *http.Request { r.URL.User = url.UserPassword("u", "p"); return r },
		"no service":        func(r *http.Request) *http.Request { return r.WithContext(context.Background()) },
		"nil service":       func(r *http.Request) *http.Request { return r.WithContext(WithService(r.Context(), nil)) },
		"invalid service": func(r *http.Request) *http.Request {
			return r.WithContext(WithService(r.Context(), &Service{Name: "x"}))
		},
		"other service host": func(r *http.Request) *http.Request {
			o := *s
			o.BaseURL = otherURL
			return r.WithContext(WithService(r.Context(), &o))
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			closed := &closeRecorder{Reader: strings.NewReader("body")}
			req := mutate(build(t))
			req.Body = closed
			_, err := tr.RoundTrip(req)
			b := wantBlocked(t, err)
			if b.IP.IsValid() || b.Reason == "" {
				t.Errorf("refusal %+v", b)
			}
			if !closed.closed.Load() {
				t.Error("the request body was not closed")
			}
		})
	}
	if len(up.got())+len(other.got()) != 0 {
		t.Fatalf("a mismatched request was sent: %d, %d", len(up.got()), len(other.got()))
	}
	// Host names compare without regard to case, and an explicit default
	// port matches an implicit one.
	r := build(t)
	r.URL.Host = strings.ToUpper(r.URL.Host)
	if _, err := tr.RoundTrip(r); err != nil {
		t.Fatalf("upper-case host should match: %v", err)
	}
	tls := mustService(t, "tls", "https://api.example.com", Auth{Kind: AuthBearer}, false)
	for host, ok := range map[string]bool{"api.example.com:443": true, "API.example.com": true, "api.example.com:8443": false, "api.example.com.evil.example": false} {
		req, _ := http.NewRequest(http.MethodGet, "https://"+host+"/x", nil)
		if err := tr.check(req, tls); (err == nil) != ok {
			t.Errorf("host %q: check = %v, want accepted %v", host, err, ok)
		}
	}
}

type closeRecorder struct {
	io.Reader
	closed atomic.Bool
}

func (c *closeRecorder) Close() error { c.closed.Store(true); return nil }

func TestRedirectsAreReturnedNotFollowed(t *testing.T) {
	elsewhere := newUpstream(t, nil)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", elsewhere.URL+"/landing?"+r.URL.RawQuery)
		w.Header().Add("Link", "<"+elsewhere.URL+"/p2?"+r.URL.RawQuery+`>; rel="next"`)
		w.WriteHeader(http.StatusFound)
	})
	s := mustService(t, "svc", up.URL, Auth{Kind: AuthQuery, Name: "api_key"}, true)

	// Directly through the transport.
	resp, err := send(t, testTransport(t), s, http.MethodGet, "/go", "page=2", nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("status %d, want the 302 itself", resp.StatusCode)
	}

	// Through the route, with a client that does not follow redirects either.
	f := newFront(t, testTransport(t), s)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = client.Get(f.URL + "/proxy/svc/go?page=2")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("status %d, want 302", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, elsewhere.URL+"/landing?") || !strings.Contains(loc, "page=2") {
		t.Errorf("Location %q, want the upstream's target without the credential", loc)
	}
	for _, v := range append(resp.Header.Values("Location"), resp.Header.Values("Link")...) {
		if strings.Contains(v, testKey) {
			t.Errorf("the credential reached the client in %q", v)
		}
	}
	if n := len(elsewhere.got()); n != 0 {
		t.Fatalf("the redirect target received %d requests; redirects must not be followed", n)
	}
	if n := len(up.got()); n != 2 {
		t.Fatalf("upstream received %d requests, want 2", n)
	}
}

func TestTheRouteRefusesPrivateUpstreams(t *testing.T) {
	up := newUpstream(t, nil)
	s := mustService(t, "svc", up.URL, Auth{Kind: AuthQuery, Name: "key"}, false)
	f := newFront(t, testTransport(t), s)
	resp, err := http.Get(f.URL + "/proxy/svc/x?key=" + clientKey)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", resp.StatusCode)
	}
	errs := f.errors()
	if len(errs) != 1 {
		t.Fatalf("proxy errors %v", errs)
	}
	wantBlocked(t, errs[0])
	if n := len(up.got()); n != 0 {
		t.Fatalf("upstream received %d requests", n)
	}
}

func TestNoProxyFromTheEnvironment(t *testing.T) {
	t.Setenv("HTTP_PROXY", "http://proxy.invalid:3128")
	t.Setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
	tr := NewTransport(TransportOptions{})
	if tr.public.Proxy != nil || tr.private.Proxy != nil {
		t.Fatal("the transport must not use a proxy")
	}
	if tr.public.DialContext == nil || tr.private.DialContext == nil {
		t.Fatal("the transport must dial through its own dialer")
	}
}

func TestUpstreamErrorsNeverRepeatTheCredential(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens there now
	tr := testTransport(t)
	for _, a := range []Auth{{Kind: AuthQuery, Name: "api_key"}, {Kind: AuthBearer}, {Kind: AuthHeader, Name: "X-K", Prefix: "P "}, {Kind: AuthBasic}} {
		s := mustService(t, "svc", "http://"+addr, a, true)
		_, err := send(t, tr, s, http.MethodGet, "/x", "", nil)
		var ue *UpstreamError
		if !errors.As(err, &ue) {
			t.Fatalf("%s: %v (%T), want *UpstreamError", a.Kind, err, err)
		}
		var ne net.Error
		if !errors.As(err, &ne) {
			t.Errorf("%s: the network error should stay reachable through Unwrap", a.Kind)
		}
		for _, msg := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			if strings.Contains(msg, testKey) {
				t.Fatalf("%s: error repeats the credential: %s", a.Kind, msg)
			}
		}
	}
	// If an underlying error ever quotes the request, the credential is redacted.
	ue := newUpstreamError("svc", errors.New(`Get "https://a.example/x?api_key=`+testKey+`": boom`), []secret.String{secret.New(testKey)})
	for _, msg := range []string{ue.Error(), fmt.Sprintf("%+v", ue), fmt.Sprintf("%#v", ue)} {
		if strings.Contains(msg, testKey) {
			t.Fatalf("message %q repeats the credential", msg)
		}
	}
	if !strings.Contains(ue.Error(), secret.Redacted) {
		t.Fatalf("message %q", ue.Error())
	}
}

func TestScrubLocation(t *testing.T) {
	key := secret.New("sk/test+upstream secret-not-real")
	s := mustService(t, "svc", "https://api.example.com", Auth{Kind: AuthQuery, Name: "api_key"}, false)
	k := key.Reveal()
	h := http.Header{
		"Location":         {"https://api.example.com/next?page=2&api_key=" + url.QueryEscape(k) + "&x=1"},
		"Content-Location": {"/doc?token=" + url.PathEscape(k)},
		"Link":             {"<https://api.example.com/p?api_key=" + url.QueryEscape(k) + `>; rel="next"`, `<https://api.example.com/p?page=1>; rel="first"`},
		"X-Other":          {k},
	}
	ScrubLocation(h, s, key)
	if got := h.Get("Location"); got != "https://api.example.com/next?page=2&x=1" {
		t.Errorf("Location = %q", got)
	}
	if got := h.Get("Content-Location"); got != "/doc" {
		t.Errorf("Content-Location = %q", got)
	}
	if got := h.Values("Link"); len(got) != 2 || strings.Contains(got[0], "secret") || !strings.Contains(got[0], "REDACTED") || got[1] != `<https://api.example.com/p?page=1>; rel="first"` {
		t.Errorf("Link = %q", got)
	}
	if h.Get("X-Other") != k {
		t.Error("ScrubLocation must leave other headers alone")
	}
	// Double-encoded, it is still found; the value goes.
	h = http.Header{"Location": {"https://a.example/#" + url.QueryEscape(url.QueryEscape(k))}}
	ScrubLocation(h, s, key)
	if v, ok := h["Location"]; ok && strings.Contains(strings.Join(v, ""), "secret") {
		t.Errorf("Location = %q", v)
	}
	// A parameter with the credential's name goes whatever its value.
	h = http.Header{"Location": {"/x?api_key=other&a=1"}}
	ScrubLocation(h, s, key)
	if got := h.Get("Location"); got != "/x?a=1" {
		t.Errorf("Location = %q", got)
	}
	// Without a credential in it, a header is left as the upstream wrote it.
	h = http.Header{"Location": {"/x?b=%41&a=1"}}
	ScrubLocation(h, s, key)
	if got := h.Get("Location"); got != "/x?b=%41&a=1" {
		t.Errorf("Location = %q", got)
	}
	ScrubLocation(nil, s, key)
	ScrubLocation(http.Header{"Location": {"/x"}}, nil, secret.String{})
}

func TestBlockedErrorMessages(t *testing.T) {
	e := &BlockedError{Service: "svc", Host: "10.0.0.1:80", IP: netip.MustParseAddr("10.0.0.1"), Reason: "private"}
	if msg := e.Error(); !strings.Contains(msg, "svc") || !strings.Contains(msg, "10.0.0.1") || !strings.Contains(msg, "private") {
		t.Errorf("message %q", msg)
	}
	e = &BlockedError{Service: "svc", Host: "a.example", Reason: "host mismatch"}
	if msg := e.Error(); strings.Contains(msg, "invalid IP") || !strings.Contains(msg, "host mismatch") {
		t.Errorf("message %q", msg)
	}
}
