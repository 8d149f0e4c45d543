package gateway_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/keysource"
	"github.com/keygate/keygate/internal/route"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/store/storetest"
)

// gatewayNow is the gateway's clock in these tests: years ahead of the wall
// clock, so an expiry only counts when it is judged by the injected clock.
var gatewayNow = time.Date(2031, time.June, 1, 12, 0, 0, 0, time.UTC)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// keys issues keygate keys into a real SQLite store with a real hasher.
type keys struct {
	t      testing.TB
	st     *store.Store
	hasher *apikey.Hasher
}

func newKeys(t testing.TB) *keys {
	t.Helper()
	h, err := apikey.NewHasher(randomBytes(t, apikey.MinPepperSize))
	if err != nil {
		t.Fatal(err)
	}
	return &keys{t: t, st: storetest.Open(t, storetest.SQLiteURL(t)), hasher: h}
}

// issue stores a new key named name, adjusted by edit, and returns its secret.
func (k *keys) issue(name string, edit func(*store.Key)) string {
	k.t.Helper()
	raw, err := apikey.Generate("live")
	if err != nil {
		k.t.Fatal(err)
	}
	p, err := apikey.Parse(raw.Reveal())
	if err != nil {
		k.t.Fatal(err)
	}
	sum := k.hasher.Hash(raw.Reveal())
	rec := store.Key{ID: "key_" + name, Name: name, Env: p.Env, Prefix: p.Prefix, Hash: sum[:], CreatedAt: gatewayNow.Add(-time.Hour)}
	if edit != nil {
		edit(&rec)
	}
	if err := k.st.CreateKey(context.Background(), rec); err != nil {
		k.t.Fatal(err)
	}
	return raw.Reveal()
}

func (k *keys) verifier() *keysource.Source { return keysource.New(k.hasher, k.st) }

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// upstreamKey returns a fake provider key made for this run.
func upstreamKey(t *testing.T, label string) string {
	return "test-upstream-key-" + label + "-" + hex.EncodeToString(randomBytes(t, 16))
}

// serve starts h on a real listener for the duration of the test.
func serve(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// fake is a fake provider upstream on a real listener.
type fake struct {
	*fakeprovider.Server
	key string
	url string
}

func newFake(t *testing.T, dialect string, opts fakeprovider.Options) *fake {
	t.Helper()
	if opts.APIKey == "" {
		opts.APIKey = upstreamKey(t, dialect)
	}
	var s *fakeprovider.Server
	if dialect == "anthropic" {
		s = fakeprovider.NewAnthropic(opts)
	} else {
		s = fakeprovider.NewOpenAI(opts)
	}
	srv := serve(t, s)
	t.Cleanup(s.Close)
	return &fake{Server: s, key: opts.APIKey, url: srv.URL}
}

// upstream describes a provider: its base URL as the dialect's SDK takes it.
func (f *fake) upstream(name, dialect string, models ...string) *route.Upstream {
	base := f.url
	if dialect == "openai" {
		base += "/v1"
	}
	return upstreamAt(name, dialect, base, f.key, models...)
}

func upstreamAt(name, dialect, base, key string, models ...string) *route.Upstream {
	u, err := url.Parse(base)
	if err != nil {
		panic(err)
	}
	return &route.Upstream{Name: name, Dialect: dialect, BaseURL: u, Models: models, Key: secret.New(key)}
}

type gw struct {
	*gateway.Gateway
	url string
	log *lockedBuffer
}

// newGateway serves a gateway with the given verifier and providers, the
// production transport and the injected clock.
func newGateway(t *testing.T, v gateway.KeyVerifier, load func(context.Context) (*route.Table, error), ups ...*route.Upstream) *gw {
	t.Helper()
	return newGatewayWith(t, v, load, nil, ups...)
}

// newGatewayWith is newGateway with a chance to adjust the options.
func newGatewayWith(t *testing.T, v gateway.KeyVerifier, load func(context.Context) (*route.Table, error), edit func(*gateway.Options), ups ...*route.Upstream) *gw {
	t.Helper()
	buf := &lockedBuffer{}
	opts := gateway.Options{
		Keys:         v,
		Log:          slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})),
		MaxBodyBytes: 1 << 20,
		Transport:    gateway.NewTransport(gateway.TransportOptions{DialTimeout: 5 * time.Second, ResponseHeaderTimeout: 20 * time.Second, MaxIdleConnsPerHost: 4}),
		AccessLog:    true,
		LoadTable:    load,
		Now:          func() time.Time { return gatewayNow },
	}
	if edit != nil {
		edit(&opts)
	}
	g := gateway.New(opts, route.NewTable(ups))
	return &gw{Gateway: g, url: serve(t, g).URL, log: buf}
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

// send makes one request to the gateway; hdr holds name, value pairs and
// may repeat a name.
func send(t *testing.T, method, u, body string, hdr ...string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	return answer{resp.StatusCode, resp.Header, b}
}

const chatBody = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
const messagesBody = `{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`

// openAIError decodes an OpenAI-shaped error and checks its status.
func openAIError(t *testing.T, a answer, status int) (msg, code string) {
	t.Helper()
	var e struct {
		Error struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Code    *string `json:"code"`
		} `json:"error"`
	}
	if a.status != status || json.Unmarshal(a.body, &e) != nil || e.Error.Message == "" || e.Error.Type == "" {
		t.Fatalf("want an OpenAI error with status %d, got %d %s", status, a.status, a.body)
	}
	if e.Error.Code != nil {
		code = *e.Error.Code
	}
	return e.Error.Message, code
}

// anthropicError decodes an Anthropic-shaped error and checks its status.
func anthropicError(t *testing.T, a answer, status int) (msg, typ string) {
	t.Helper()
	var e struct {
		Type  string `json:"type"`
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if a.status != status || json.Unmarshal(a.body, &e) != nil || e.Type != "error" || e.Error.Message == "" || e.Error.Type == "" {
		t.Fatalf("want an Anthropic error with status %d, got %d %s", status, a.status, a.body)
	}
	return e.Error.Message, e.Error.Type
}

// TestClientCannotSmuggleOrForwardCredentials: whatever credential and
// forwarding headers a client sends, including ones it names in Connection
// to have them dropped, the upstream receives exactly the real key and none
// of the client's.
func TestClientCannotSmuggleOrForwardCredentials(t *testing.T) {
	ks := newKeys(t)
	key := ks.issue("app", nil)
	oa := newFake(t, "openai", fakeprovider.Options{})
	an := newFake(t, "anthropic", fakeprovider.Options{})
	g := newGateway(t, ks.verifier(), nil, oa.upstream("openai", "openai"), an.upstream("anthropic", "anthropic"))

	spoofed := []string{
		"Cookie", "session=client-cookie",
		"Api-Key", "client-azure-style-key",
		"X-Goog-Api-Key", "client-google-key",
		"Proxy-Authorization", "Basic Y2xpZW50OnByb3h5",
		"X-Forwarded-For", "203.0.113.7",
		"X-Forwarded-Host", "evil.example",
		"X-Forwarded-Proto", "https",
		"Forwarded", "for=203.0.113.7;host=evil.example",
	}
	mustNotReach := []string{"Cookie", "Api-Key", "X-Goog-Api-Key", "Proxy-Authorization",
		"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded", "Connection"}
	check := func(t *testing.T, seen fakeprovider.Seen, authHeader, want string, absent ...string) {
		t.Helper()
		if got := seen.Header.Values(authHeader); len(got) != 1 || got[0] != want {
			t.Fatalf("upstream %s: %q, want exactly the injected key", authHeader, got)
		}
		for _, h := range append(mustNotReach, absent...) {
			if v := seen.Header.Values(h); len(v) != 0 {
				t.Errorf("upstream received the client's %s: %q", h, v)
			}
		}
		for name, vals := range seen.Header {
			for _, v := range vals {
				if strings.Contains(v, key) || strings.Contains(v, "kg_live_") || strings.Contains(v, "client-") || strings.Contains(v, "203.0.113.7") {
					t.Errorf("upstream header %s carries a client value: %q", name, v)
				}
			}
		}
	}

	for _, conn := range []string{"Authorization, X-Api-Key", "close, Authorization", "Authorization, Cookie, Api-Key, Keep-Alive"} {
		t.Run("openai Connection: "+conn, func(t *testing.T) {
			oa.Reset()
			hdr := append([]string{"Authorization", "Bearer " + key, "Connection", conn}, spoofed...)
			a := send(t, "POST", g.url+"/v1/chat/completions", chatBody, hdr...)
			if a.status != http.StatusOK {
				t.Fatalf("status %d: %s", a.status, a.body)
			}
			seen := oa.Requests()
			if len(seen) != 1 {
				t.Fatalf("upstream saw %d requests", len(seen))
			}
			check(t, seen[0], "Authorization", "Bearer "+oa.key, "X-Api-Key")
		})
	}
	t.Run("anthropic Connection: X-Api-Key, Authorization, Anthropic-Version", func(t *testing.T) {
		an.Reset()
		hdr := append([]string{"X-Api-Key", key, "Authorization", "Bearer " + key,
			"Connection", "X-Api-Key, Authorization, Anthropic-Version", "Anthropic-Version", "2023-06-01"}, spoofed...)
		a := send(t, "POST", g.url+"/v1/messages", messagesBody, hdr...)
		if a.status != http.StatusOK {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
		seen := an.Requests()
		if len(seen) != 1 {
			t.Fatalf("upstream saw %d requests", len(seen))
		}
		check(t, seen[0], "X-Api-Key", an.key, "Authorization")
		if v := seen[0].Header.Get("Anthropic-Version"); v != "2023-06-01" {
			t.Errorf("anthropic-version %q", v)
		}
	})
}

// echoUpstream answers like a careless provider: it repeats the credential
// it received in response headers and sets a session cookie.
func echoUpstream(t *testing.T, status int, body func(auth string) []byte) *httptest.Server {
	return serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		auth := r.Header.Get("Authorization")
		h := w.Header()
		h.Set("X-Echo-Authorization", auth)
		h.Add("X-Debug", "first value")
		h.Add("X-Debug", "key="+strings.TrimPrefix(auth, "Bearer ")+"; again "+strings.TrimPrefix(auth, "Bearer "))
		h.Set("Set-Cookie", "upstream_session=abc123; Path=/; HttpOnly")
		h.Add("Set-Cookie", "tracking=xyz")
		h.Set("Content-Type", "application/json")
		b := body(auth)
		h.Set("Content-Length", strconv.Itoa(len(b)))
		w.WriteHeader(status)
		_, _ = w.Write(b)
	}))
}

// TestUpstreamEchoesAreScrubbed: the client never gets the upstream's
// cookies, and never the real key from a response header, on success or error.
func TestUpstreamEchoesAreScrubbed(t *testing.T) {
	ks := newKeys(t)
	key := ks.issue("app", nil)
	realKey := upstreamKey(t, "echo")
	for _, status := range []int{http.StatusOK, http.StatusUnauthorized} {
		up := echoUpstream(t, status, func(string) []byte { return []byte(`{"ok":true}`) })
		g := newGateway(t, ks.verifier(), nil, upstreamAt("echo", "openai", up.URL+"/v1", realKey))
		a := send(t, "POST", g.url+"/v1/chat/completions", chatBody, "Authorization", "Bearer "+key)
		if a.status != status {
			t.Fatalf("status %d, want the upstream's %d: %s", a.status, status, a.body)
		}
		if c := a.header.Values("Set-Cookie"); len(c) != 0 {
			t.Errorf("%d: the client received the upstream's cookies: %q", status, c)
		}
		for name, vals := range a.header {
			for _, v := range vals {
				if strings.Contains(v, realKey) {
					t.Errorf("%d: header %s carries the upstream key", status, name)
				}
			}
		}
		if got := a.header.Get("X-Echo-Authorization"); got != secret.Redacted {
			t.Errorf("%d: echoed header %q, want it scrubbed in place", status, got)
		}
		if got := a.header.Values("X-Debug"); len(got) != 2 || got[0] != "first value" || got[1] != "key=[REDACTED]; again [REDACTED]" {
			t.Errorf("%d: multi-valued header %q", status, got)
		}
		if string(a.body) != `{"ok":true}` {
			t.Errorf("%d: body %q", status, a.body)
		}
	}
}

// TestUpstreamErrorBodies: an error body that echoes the key is scrubbed
// and its Content-Length corrected; an error body larger than the 1 MiB
// scrub window arrives whole.
func TestUpstreamErrorBodies(t *testing.T) {
	ks := newKeys(t)
	key := ks.issue("app", nil)
	realKey := upstreamKey(t, "err")

	small := echoUpstream(t, http.StatusUnauthorized, func(auth string) []byte {
		return []byte(`{"error":{"message":"Incorrect API key provided: ` + strings.TrimPrefix(auth, "Bearer ") + `"}}`)
	})
	g := newGateway(t, ks.verifier(), nil, upstreamAt("small", "openai", small.URL+"/v1", realKey))
	a := send(t, "POST", g.url+"/v1/chat/completions", chatBody, "Authorization", "Bearer "+key)
	wantBody := `{"error":{"message":"Incorrect API key provided: ` + mask(realKey) + `"}}`
	if a.status != http.StatusUnauthorized || string(a.body) != wantBody {
		t.Fatalf("small error: %d %q", a.status, a.body)
	}
	if cl := a.header.Get("Content-Length"); cl != strconv.Itoa(len(wantBody)) {
		t.Fatalf("small error Content-Length %q, want %d", cl, len(wantBody))
	}

	for _, size := range []int{1 << 20, 3 << 20} {
		pad := strings.Repeat("0123456789abcdef", size/16)
		sent := []byte(`{"error":{"message":"upstream trouble","pad":"` + pad + `"},"end":"END"}`)
		big := echoUpstream(t, http.StatusBadGateway, func(string) []byte { return sent })
		g := newGateway(t, ks.verifier(), nil, upstreamAt("big", "openai", big.URL+"/v1", realKey))
		a := send(t, "POST", g.url+"/v1/chat/completions", chatBody, "Authorization", "Bearer "+key)
		if a.status != http.StatusBadGateway || !bytes.Equal(a.body, sent) {
			t.Fatalf("%d-byte error body: status %d, %d bytes arrived; tail %q",
				len(sent), a.status, len(a.body), a.body[max(0, len(a.body)-20):])
		}
		if cl := a.header.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(sent)) {
			t.Fatalf("Content-Length %s for a body of %d bytes", cl, len(sent))
		}
	}
}

// TestCompressedUpstreamErrorIsScrubbed: a client asking for gzip does not
// get the provider's compressed error body, which keygate could not scrub;
// it gets plain bytes with the key removed.
func TestCompressedUpstreamErrorIsScrubbed(t *testing.T) {
	ks := newKeys(t)
	key := ks.issue("app", nil)
	realKey := upstreamKey(t, "gzip")
	up := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		body := []byte(`{"error":{"message":"Incorrect API key provided: ` + strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ") + `"}}`)
		w.Header().Set("Content-Type", "application/json")
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			var zb bytes.Buffer
			zw := gzip.NewWriter(&zb)
			_, _ = zw.Write(body)
			_ = zw.Close()
			body = zb.Bytes()
			w.Header().Set("Content-Encoding", "gzip")
		}
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write(body)
	}))
	g := newGateway(t, ks.verifier(), nil, upstreamAt("gz", "openai", up.URL+"/v1", realKey))
	// Setting Accept-Encoding by hand stops the client from decoding, so
	// the test sees the bytes exactly as keygate sent them.
	a := send(t, "POST", g.url+"/v1/chat/completions", chatBody, "Authorization", "Bearer "+key, "Accept-Encoding", "gzip")
	want := `{"error":{"message":"Incorrect API key provided: ` + mask(realKey) + `"}}`
	if a.status != http.StatusUnauthorized || a.header.Get("Content-Encoding") != "" || string(a.body) != want {
		t.Fatalf("got %d, Content-Encoding %q, body %q; want plain %s", a.status, a.header.Get("Content-Encoding"), a.body, want)
	}
}

// TestCredentialCopiesNeverReachTheUpstream: a client that also sends its
// keygate key (or another keygate key, or its access token) in a query
// parameter or a header of its own does not hand it to the provider or a
// passthrough service; the rest of its query and headers pass.
func TestCredentialCopiesNeverReachTheUpstream(t *testing.T) {
	l := newLimited(t, fakeprovider.Options{}, nil)
	key := l.serviceKey(t, "app", adminapi.Limits{})
	other := l.key(t, "other", adminapi.Limits{})
	api := &recordingAPI{}
	g, _ := passthroughGateway(t, l, api, config.Service{Secret: "s", Auth: "bearer", AllowPrivate: true}, upstreamKey(t, "svc"))
	hdr := []string{"Authorization", "Bearer " + key, "X-Custom-Key", key, "X-Other", "token=" + other + ";", "X-Keep", "kept"}
	q := "?api_key=" + key + "&keep=1&k2=" + url.QueryEscape("Bearer "+other) + "&enc=" + url.QueryEscape(key)
	if a := send(t, "POST", g.url+"/v1/chat/completions"+q, chatBody, hdr...); a.status != 200 {
		t.Fatalf("chat: %d %s", a.status, a.body)
	}
	if a := send(t, "GET", g.url+"/proxy/svc/v1/items"+q, "", hdr...); a.status != 200 {
		t.Fatalf("passthrough: %d %s", a.status, a.body)
	}
	seen := l.up.Requests()
	check := func(where string, h http.Header, rawQuery string) {
		t.Helper()
		for name, vals := range h {
			for _, v := range vals {
				if strings.Contains(v, key) || strings.Contains(v, other) {
					t.Errorf("%s: header %s carries a keygate key", where, name)
				}
			}
		}
		if strings.Contains(rawQuery, "kg_") || strings.Contains(rawQuery, "api_key") || strings.Contains(rawQuery, "enc=") {
			t.Errorf("%s: query %q carries a keygate key", where, rawQuery)
		}
		if h.Get("X-Keep") != "kept" || !strings.Contains(rawQuery, "keep=1") {
			t.Errorf("%s: the client's other header and query were dropped: %v %q", where, h, rawQuery)
		}
	}
	check("provider", seen[len(seen)-1].Header, seen[len(seen)-1].RawQuery)
	check("service", api.seen[0].Header, api.seen[0].URL.RawQuery)
}

// mask is what replaces key in a scrubbed body: as many bytes.
func mask(key string) string {
	return secret.Redacted + strings.Repeat("*", len(key)-len(secret.Redacted))
}
