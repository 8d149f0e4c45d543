package passthrough

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/secret"
)

// clientCredentials are credential headers a client might send, in
// canonical and non-canonical spellings, with the service's own header.
func clientCredentials(a Auth) http.Header {
	h := http.Header{
		"Authorization":       {"Bearer " + clientKey},
		"Proxy-Authorization": {"Basic " + clientKey},
		"X-Api-Key":           {clientKey},
		"x-api-key":           {clientKey},
		"Api-Key":             {clientKey},
		"X-Goog-Api-Key":      {clientKey},
		"X-Auth-Token":        {clientKey},
		"Cookie":              {"session=" + clientKey},
		"X-Request-Note":      {"kept"},
	}
	if a.Kind == AuthHeader {
		h[a.Name] = []string{clientKey}
		h[strings.ToLower(a.Name)] = []string{clientKey}
	}
	return h
}

// assertNoClientCredential fails if anything the client sent as a
// credential reached the upstream.
func assertNoClientCredential(t *testing.T, got seen) {
	t.Helper()
	for k, vs := range got.Header {
		for _, v := range vs {
			if strings.Contains(v, clientKey) {
				t.Errorf("client credential reached the upstream in %s: %q", k, v)
			}
		}
	}
	if strings.Contains(got.RequestURI, clientKey) {
		t.Errorf("client credential reached the upstream in the URL %q", got.RequestURI)
	}
	if got.Header.Get("X-Request-Note") != "kept" {
		t.Errorf("an ordinary client header was dropped: %v", got.Header)
	}
}

func TestEachAuthKindInjectsTheCredentialAndOnlyIt(t *testing.T) {
	cases := []struct {
		name  string
		auth  Auth
		check func(t *testing.T, got seen)
	}{
		{"header", Auth{Kind: AuthHeader, Name: "X-Custom-Secret"}, func(t *testing.T, got seen) {
			if v := got.Header.Values("X-Custom-Secret"); len(v) != 1 || v[0] != testKey {
				t.Errorf("X-Custom-Secret = %q, want the one real credential", v)
			}
			if got.Header.Get("Authorization") != "" {
				t.Errorf("Authorization should be absent, got %q", got.Header.Get("Authorization"))
			}
		}},
		{"header with prefix", Auth{Kind: AuthHeader, Name: "Authorization", Prefix: "Token "}, func(t *testing.T, got seen) {
			if v := got.Header.Values("Authorization"); len(v) != 1 || v[0] != "Token "+testKey {
				t.Errorf("Authorization = %q", v)
			}
		}},
		{"bearer", Auth{Kind: AuthBearer}, func(t *testing.T, got seen) {
			if v := got.Header.Values("Authorization"); len(v) != 1 || v[0] != "Bearer "+testKey {
				t.Errorf("Authorization = %q", v)
			}
		}},
		{"basic with user", Auth{Kind: AuthBasic, User: "api"}, func(t *testing.T, got seen) {
			want := "Basic " + base64.StdEncoding.EncodeToString([]byte("api:"+testKey))
			if v := got.Header.Values("Authorization"); len(v) != 1 || v[0] != want {
				t.Errorf("Authorization = %q, want %q", v, want)
			}
		}},
		{"basic, secret as user", Auth{Kind: AuthBasic}, func(t *testing.T, got seen) {
			r := &http.Request{Header: got.Header}
			u, p, ok := r.BasicAuth()
			if !ok || u != testKey || p != "" {
				t.Errorf("BasicAuth = %q, %q, %v; want the secret as user and an empty password", u, p, ok)
			}
		}},
		{"query", Auth{Kind: AuthQuery, Name: "api_key"}, func(t *testing.T, got seen) {
			q, err := url.ParseQuery(got.Query)
			if err != nil {
				t.Fatalf("upstream query %q: %v", got.Query, err)
			}
			if v := q["api_key"]; len(v) != 1 || v[0] != testKey {
				t.Errorf("api_key = %q, want only the real credential; query %q", v, got.Query)
			}
			if q.Get("API_KEY") != "other-param" || q.Get("limit") != "3" || q.Get("b") != "2" {
				t.Errorf("other parameters were not kept: %q", got.Query)
			}
			for _, h := range []string{"Authorization", "X-Api-Key"} {
				if got.Header.Get(h) != "" {
					t.Errorf("%s should be stripped, got %q", h, got.Header.Get(h))
				}
			}
		}},
	}
	tr := testTransport(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			up := newUpstream(t, nil)
			s := mustService(t, "svc", up.URL+"/base", c.auth, true)
			rawQuery := "limit=3&api_key=" + clientKey + "&API_KEY=other-param&api%5Fkey=" + clientKey + "&a=1;api_key=" + clientKey + "&b=2"
			if c.auth.Kind != AuthQuery {
				rawQuery = "limit=3"
			}
			resp, err := send(t, tr, s, http.MethodGet, "/v1/things", rawQuery, clientCredentials(c.auth))
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			got := up.only(t)
			if !strings.HasPrefix(got.RequestURI, "/base/v1/things?") {
				t.Errorf("upstream path %q, want /base/v1/things", got.RequestURI)
			}
			if got.Host != strings.TrimPrefix(up.URL, "http://") {
				t.Errorf("Host %q, want the base URL's host", got.Host)
			}
			assertNoClientCredential(t, got)
			c.check(t, got)
		})
	}
}

func TestFixedHeadersReplaceTheClients(t *testing.T) {
	up := newUpstream(t, nil)
	s := mustService(t, "svc", up.URL, Auth{Kind: AuthBearer}, true)
	s.Headers = map[string]string{"stripe-version": "2024-06-20"}
	_, err := send(t, testTransport(t), s, http.MethodGet, "/x", "", http.Header{"Stripe-Version": {"1999-01-01"}})
	if err != nil {
		t.Fatal(err)
	}
	if v := up.only(t).Header.Values("Stripe-Version"); len(v) != 1 || v[0] != "2024-06-20" {
		t.Fatalf("Stripe-Version = %q, want the fixed value only", v)
	}
}

func TestRewriteKeepsTheClientsEncoding(t *testing.T) {
	up := newUpstream(t, nil)
	s := mustService(t, "svc", up.URL+"/v2", Auth{Kind: AuthBearer}, true)
	tr := testTransport(t)
	cases := []struct{ rest, want string }{
		{"/files/a%20b%3Fc/%E2%9C%93", "/v2/files/a%20b%3Fc/%E2%9C%93"},
		{"/items/%41%42", "/v2/items/%41%42"},
		{"/a+b/c@d:e", "/v2/a+b/c@d:e"},
		{"/trailing/", "/v2/trailing/"},
		{"/100%25", "/v2/100%25"},
		{"/...", "/v2/..."},
		{"/.well-known/x", "/v2/.well-known/x"},
		{"", "/v2"},
	}
	for _, c := range cases {
		if _, err := send(t, tr, s, http.MethodGet, c.rest, "", nil); err != nil {
			t.Fatalf("%q: %v", c.rest, err)
		}
		g := up.got()
		if got := g[len(g)-1].RequestURI; got != c.want {
			t.Errorf("rest %q reached the upstream as %q, want %q", c.rest, got, c.want)
		}
	}
}

func TestRewriteWithEmptyBasePath(t *testing.T) {
	s := mustService(t, "svc", "https://api.example.com", Auth{Kind: AuthBearer}, false)
	for rest, want := range map[string]string{"": "/", "/": "/", "/v1/x": "/v1/x"} {
		out, _ := http.NewRequest(http.MethodGet, "http://keygate.invalid/", nil)
		if err := s.Rewrite(out, rest, "q=1", secret.New(testKey)); err != nil {
			t.Fatal(err)
		}
		if got := out.URL.String(); got != "https://api.example.com"+want+"?q=1" {
			t.Errorf("rest %q: URL %q", rest, got)
		}
		if out.Host != "api.example.com" {
			t.Errorf("Host %q", out.Host)
		}
	}
}

func TestRewriteRefusesEscapingPaths(t *testing.T) {
	s := mustService(t, "svc", "https://api.example.com/v2", Auth{Kind: AuthBearer}, false)
	bad := []string{
		"/..", "/../admin", "/a/../../admin", "/./x", "/a/.",
		"/%2e%2e/admin", "/%2E%2E/admin", "/.%2e/admin", "/%2e./admin", "/%2e/x",
		"/..;/admin", "/%2e%2e;x=1/admin",
		"/a%2fb", "/a%2F..%2Fadmin", "/a%5cb",
		"/a\\..\\admin", "/a\\b",
		"/%252e%252e/admin", "/%25252e%25252e/admin", "/a%252fb", "/a%255c..",
		"/%2525252525", // more layers than keygate unwraps
		"/a%00b", "/a\x00b", "/a\rb", "/a\nb", "/a\tb", "/a%0d%0aX-Injected:1", "/a\x7f",
		"/a//b", "//evil.example/x", "/a%", "/a%zz", "/a%2",
		"/a?b", "/a#b",
		"relative", "..",
	}
	for _, rest := range bad {
		out, _ := http.NewRequest(http.MethodGet, "http://keygate.invalid/keep", nil)
		err := s.Rewrite(out, rest, "", secret.New(testKey))
		var pe *PathError
		if !errors.As(err, &pe) {
			t.Errorf("Rewrite(%q) = %v, want *PathError", rest, err)
			continue
		}
		if !strings.Contains(err.Error(), "refused") || pe.Reason == "" {
			t.Errorf("Rewrite(%q): unclear error %q", rest, err)
		}
		if strings.Contains(err.Error(), testKey) {
			t.Errorf("Rewrite(%q): error repeats the credential", rest)
		}
	}
}

func TestRewriteRefusesBadCredentials(t *testing.T) {
	s := mustService(t, "svc", "https://api.example.com", Auth{Kind: AuthBearer}, false)
	out, _ := http.NewRequest(http.MethodGet, "http://keygate.invalid/", nil)
	if err := s.Rewrite(out, "/x", "", secret.String{}); !errors.Is(err, ErrNoCredential) {
		t.Errorf("empty credential: %v, want ErrNoCredential", err)
	}
	crlf := "test-upstream-secret-not-real\r\nX-Injected: 1"
	err := s.Rewrite(out, "/x", "", secret.New(crlf))
	if !errors.Is(err, ErrBadCredential) || strings.Contains(err.Error(), "not-real") {
		t.Errorf("credential with CRLF: %v, want ErrBadCredential without the value", err)
	}
	// A query credential is escaped, so any byte is fine there.
	q := mustService(t, "svc", "https://api.example.com", Auth{Kind: AuthQuery, Name: "key"}, false)
	if err := q.Rewrite(out, "/x", "", secret.New("a&b=c d")); err != nil {
		t.Fatal(err)
	}
	if got := out.URL.Query()["key"]; len(got) != 1 || got[0] != "a&b=c d" {
		t.Errorf("query credential = %q", got)
	}
	var bogus Service
	if err := bogus.Rewrite(out, "/x", "", secret.New(testKey)); err == nil {
		t.Error("a zero Service must not rewrite")
	}
}

// TestTraversalThroughTheRouteSendsNothing drives the route the way a
// client would, with raw request lines, and checks that no attempt to leave
// the base path reaches the upstream: refused early by CheckPath, or, when
// the route skips that, by Rewrite inside the reverse proxy.
func TestTraversalThroughTheRouteSendsNothing(t *testing.T) {
	targets := []string{
		"/proxy/svc/../admin",
		"/proxy/svc/a/../../admin",
		"/proxy/svc/%2e%2e/admin",
		"/proxy/svc/%2E%2E/admin",
		"/proxy/svc/.%2e/admin",
		"/proxy/svc/..%2Fadmin",
		"/proxy/svc/a%2fb",
		"/proxy/svc/..\\admin",
		"/proxy/svc/%5c..%5cadmin",
		"/proxy/svc/%252e%252e/admin",
		"/proxy/svc/%252F..%252Fadmin",
		"/proxy/svc/..;/admin",
		"/proxy/svc//evil.example/x",
		"/proxy/svc/a%00b",
	}
	for _, early := range []bool{true, false} {
		t.Run(map[bool]string{true: "CheckPath first", false: "Rewrite only"}[early], func(t *testing.T) {
			up := newUpstream(t, nil)
			s := mustService(t, "svc", up.URL+"/api", Auth{Kind: AuthBearer}, true)
			f := newFrontChecking(t, testTransport(t), early, s)
			for _, target := range targets {
				code, body := f.raw(t, target)
				switch {
				case early && (code != http.StatusBadRequest || !strings.Contains(body, "refused")):
					t.Errorf("%q answered %d %q, want 400 from CheckPath", target, code, body)
				case !early && code != http.StatusBadGateway:
					t.Errorf("%q answered %d, want 502 from the transport's refusal", target, code)
				}
			}
			if !early {
				errs := f.errors()
				if len(errs) != len(targets) {
					t.Errorf("%d proxy errors for %d attempts", len(errs), len(targets))
				}
				for _, err := range errs {
					wantBlocked(t, err)
				}
			}
			if n := len(up.got()); n != 0 {
				t.Fatalf("upstream received %d requests from traversal attempts: %+v", n, up.got())
			}
			// The route itself works.
			if code, _ := f.raw(t, "/proxy/svc/v1/ok"); code != http.StatusOK {
				t.Fatalf("plain path answered %d", code)
			}
			if got := up.only(t).RequestURI; got != "/api/v1/ok" {
				t.Fatalf("upstream saw %q", got)
			}
		})
	}
}
