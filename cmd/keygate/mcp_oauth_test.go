package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/mcpgate"
	"github.com/keygate/keygate/internal/store"
)

// fakeAS is an OAuth authorization server speaking the wire format an MCP
// client meets: RFC 8414 metadata, RFC 7591 registration, the
// authorization endpoint (its user is whoever its own cookie says, and it
// consents at once) and the token endpoint (authorization_code with PKCE
// S256 and the resource parameter checked; refresh_token, rotating the
// refresh token and ending the access token it replaces).
type fakeAS struct {
	t   testing.TB
	srv *httptest.Server
	// ttl is the lifetime of the access tokens it issues.
	ttl      time.Duration
	resource string // the resource every request must name

	mu        sync.Mutex
	clients   map[string]fakeClient
	codes     map[string]fakeCode
	access    map[string]fakeToken
	refresh   map[string]string // refresh token -> subject
	refreshed int               // refresh_token grants honoured
	granted   int               // client_credentials grants honoured
	issued    []string          // every access and refresh token, for the canary check
}

type fakeClient struct {
	secret   string
	redirect string
}

type fakeCode struct {
	client, redirect, challenge, subject, resource string
}

type fakeToken struct {
	subject string
	expires time.Time
}

func newFakeAS(t testing.TB) *fakeAS {
	a := &fakeAS{t: t, ttl: time.Hour, clients: map[string]fakeClient{}, codes: map[string]fakeCode{}, access: map[string]fakeToken{}, refresh: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		writeJSONBody(w, http.StatusOK, map[string]any{
			"issuer": a.srv.URL, "authorization_endpoint": a.srv.URL + "/authorize", "token_endpoint": a.srv.URL + "/token",
			"registration_endpoint": a.srv.URL + "/register", "response_types_supported": []string{"code"},
			"grant_types_supported": []string{"authorization_code", "refresh_token"}, "code_challenge_methods_supported": []string{"S256"},
			"token_endpoint_auth_methods_supported": []string{"client_secret_basic"}, "scopes_supported": []string{"notes"},
		})
	})
	mux.HandleFunc("POST /register", func(w http.ResponseWriter, r *http.Request) {
		var m struct {
			RedirectURIs []string `json:"redirect_uris"`
		}
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil || len(m.RedirectURIs) != 1 {
			writeJSONBody(w, http.StatusBadRequest, map[string]string{"error": "invalid_redirect_uri"})
			return
		}
		id, sec := "client-"+randHex(t, 8), "secret-"+randHex(t, 16)
		a.mu.Lock()
		a.clients[id] = fakeClient{secret: sec, redirect: m.RedirectURIs[0]}
		a.issued = append(a.issued, sec)
		a.mu.Unlock()
		writeJSONBody(w, http.StatusCreated, map[string]any{"client_id": id, "client_secret": sec, "redirect_uris": m.RedirectURIs,
			"token_endpoint_auth_method": "client_secret_basic", "grant_types": []string{"authorization_code", "refresh_token"}})
	})
	mux.HandleFunc("GET /authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		a.mu.Lock()
		c, ok := a.clients[q.Get("client_id")]
		a.mu.Unlock()
		user, err := r.Cookie("as_user")
		switch {
		case !ok || q.Get("redirect_uri") != c.redirect:
			http.Error(w, "unknown client or redirect_uri", http.StatusBadRequest)
			return
		case q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43:
			http.Error(w, "response_type code with a PKCE S256 challenge is required", http.StatusBadRequest)
			return
		case q.Get("resource") != a.resource:
			http.Error(w, "resource must be "+a.resource+", not "+q.Get("resource"), http.StatusBadRequest)
			return
		case err != nil:
			http.Error(w, "not signed in at the authorization server", http.StatusUnauthorized)
			return
		}
		code := "code-" + randHex(t, 16)
		a.mu.Lock()
		a.codes[code] = fakeCode{client: q.Get("client_id"), redirect: c.redirect, challenge: q.Get("code_challenge"), subject: user.Value, resource: q.Get("resource")}
		a.mu.Unlock()
		http.Redirect(w, r, c.redirect+"?"+url.Values{"code": {code}, "state": {q.Get("state")}}.Encode(), http.StatusFound)
	})
	mux.HandleFunc("POST /token", a.token)
	a.srv = httptest.NewServer(mux)
	t.Cleanup(a.srv.Close)
	return a
}

func writeJSONBody(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (a *fakeAS) token(w http.ResponseWriter, r *http.Request) {
	fail := func(code string) { writeJSONBody(w, http.StatusBadRequest, map[string]string{"error": code}) }
	id, sec, ok := r.BasicAuth()
	a.mu.Lock()
	defer a.mu.Unlock()
	if c, known := a.clients[id]; !ok || !known || c.secret != sec {
		writeJSONBody(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	var subject string
	switch r.PostFormValue("grant_type") {
	case "authorization_code":
		c, found := a.codes[r.PostFormValue("code")]
		delete(a.codes, r.PostFormValue("code"))
		sum := sha256.Sum256([]byte(r.PostFormValue("code_verifier")))
		switch {
		case !found || c.client != id || c.redirect != r.PostFormValue("redirect_uri"):
			fail("invalid_grant")
			return
		case base64.RawURLEncoding.EncodeToString(sum[:]) != c.challenge:
			fail("invalid_grant") // PKCE
			return
		case r.PostFormValue("resource") != a.resource:
			fail("invalid_target")
			return
		}
		subject = c.subject
	case "client_credentials":
		if r.PostFormValue("resource") != a.resource {
			fail("invalid_target")
			return
		}
		subject = "client:" + id
		a.granted++
		at := "at-" + randHex(a.t, 20)
		a.access[at] = fakeToken{subject: subject, expires: time.Now().Add(a.ttl)}
		a.issued = append(a.issued, at)
		writeJSONBody(w, http.StatusOK, map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": int(a.ttl.Seconds())})
		return
	case "refresh_token":
		s, found := a.refresh[r.PostFormValue("refresh_token")]
		if !found {
			fail("invalid_grant")
			return
		}
		delete(a.refresh, r.PostFormValue("refresh_token"))
		// The access tokens it replaces end now.
		for tok, at := range a.access {
			if at.subject == s {
				delete(a.access, tok)
			}
		}
		subject = s
		a.refreshed++
	default:
		fail("unsupported_grant_type")
		return
	}
	at, rt := "at-"+randHex(a.t, 20), "rt-"+randHex(a.t, 20)
	a.access[at] = fakeToken{subject: subject, expires: time.Now().Add(a.ttl)}
	a.refresh[rt] = subject
	a.issued = append(a.issued, at, rt)
	writeJSONBody(w, http.StatusOK, map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": int(a.ttl.Seconds()), "refresh_token": rt})
}

// revokeAccess ends every access token of subject before its expiry, as
// a person revoking a session at the server would; with refresh, its
// refresh tokens too, as a person withdrawing keygate's access would.
func (a *fakeAS) revokeAccess(subject string, refresh bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for tok, at := range a.access {
		if at.subject == subject {
			delete(a.access, tok)
		}
	}
	for rt, s := range a.refresh {
		if refresh && s == subject {
			delete(a.refresh, rt)
		}
	}
}

// subject returns who an access token was issued to, if it is valid.
func (a *fakeAS) subject(tok string) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.access[tok]
	if !ok || time.Now().After(t.expires) {
		return "", false
	}
	return t.subject, true
}

// fakeOAuthMCP is an MCP server built with the official Go SDK behind a
// bearer check against the fake authorization server, publishing its
// protected resource metadata (RFC 9728) and naming it in its 401s.
type fakeOAuthMCP struct {
	url  string
	mu   sync.Mutex
	auth []string // every Authorization header it received
}

func newFakeOAuthMCP(t testing.TB, as *fakeAS, issuer string) *fakeOAuthMCP {
	f := &fakeOAuthMCP{}
	srv := mcp.NewServer(&mcp.Implementation{Name: "fake-notes", Version: "1.0.0"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "whoami", Description: "says who the token is for"}, func(_ context.Context, req *mcp.CallToolRequest, _ noIn) (*mcp.CallToolResult, any, error) {
		tok := strings.TrimPrefix(req.Extra.Header.Get("Authorization"), "Bearer ")
		sub, _ := as.subject(tok)
		sum := sha256.Sum256([]byte(tok))
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "subject=" + sub + " token#" + fmt.Sprintf("%x", sum[:8])}}}, nil, nil
	})
	// leak_auth hands back the credential it was called with, as a
	// careless server might: keygate scrubs it.
	mcp.AddTool(srv, &mcp.Tool{Name: "leak_auth", Description: "echoes its Authorization header"}, func(_ context.Context, req *mcp.CallToolRequest, _ noIn) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "called with " + req.Extra.Header.Get("Authorization")}}}, nil, nil
	})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	mux := http.NewServeMux()
	var base string
	mux.HandleFunc("GET /.well-known/oauth-protected-resource/mcp", func(w http.ResponseWriter, r *http.Request) {
		writeJSONBody(w, http.StatusOK, map[string]any{"resource": base + "/mcp", "authorization_servers": []string{issuer},
			"scopes_supported": []string{"notes"}, "bearer_methods_supported": []string{"header"}})
	})
	mux.HandleFunc("/mcp", func(w http.ResponseWriter, r *http.Request) {
		a := r.Header.Get("Authorization")
		f.mu.Lock()
		f.auth = append(f.auth, a)
		f.mu.Unlock()
		if _, ok := as.subject(strings.TrimPrefix(a, "Bearer ")); !ok {
			w.Header().Set("WWW-Authenticate", `Bearer resource_metadata="`+base+`/.well-known/oauth-protected-resource/mcp", scope="notes"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	base = ts.URL
	f.url = ts.URL + "/mcp"
	return f
}

func (f *fakeOAuthMCP) headers() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.auth...)
}

// browser is a user's browser: a cookie jar, following no redirect on its
// own so the test sees each hop.
type browser struct {
	t  *testing.T
	hc *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, hc: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// signIn starts a console session with an admin credential.
func (b *browser) signIn(admin, token string) {
	req, _ := http.NewRequest("POST", admin+"/api/v1/auth/token-login", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp := b.do(req)
	if resp.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("token-login: %d", resp.StatusCode)
	}
}

func (b *browser) do(req *http.Request) *http.Response {
	b.t.Helper()
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(strings.NewReader(string(body)))
	return resp
}

func (b *browser) get(u string) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	resp := b.do(req)
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// TestMCPOAuthPerUser: an OAuth-protected MCP server (the official SDK's,
// behind a bearer check) with a real-wire authorization server. A signed-in
// user authorizes keygate through discovery, dynamic registration and the
// authorization-code flow with PKCE and the resource parameter; an
// official-SDK client with the user's keygate key then calls a tool
// through keygate, and the server sees the user's access token, never the
// keygate key; after expiry keygate refreshes it; another user who has not
// authorized is told how to; the tokens are not in clear on disk; the
// state cannot be replayed, used without the browser's cookie, or used by
// another user; discovered URLs pass the egress guard; --revoke ends it.
func TestMCPOAuthPerUser(t *testing.T) {
	as := newFakeAS(t)
	up := newFakeOAuthMCP(t, as, as.srv.URL)
	as.resource = up.url
	dir := t.TempDir()
	in := start(t, testConfig(t, dir), "")

	in.mustCLI(nil, "", "mcp", "add", "notes", "--url", up.url, "--auth", "oauth", "--allow-private")
	alice := in.addUser("alice", "--role", "admin")
	bob := in.addUser("bob", "--role", "admin")
	aliceKey := in.keyAs(alice, "alice-agent", "--allow-tool", "notes/*")
	bobKey := in.keyAs(bob, "bob-agent", "--allow-tool", "notes/*")

	// Before authorizing, alice's key is told how to.
	cs := connectMCP(t, in.addrs.Gateway+mcpgate.PathPrefix+"notes", aliceKey)
	_, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}})
	if rpcCode(err) != mcpgate.CodeForbidden || !strings.Contains(err.Error(), "keygate mcp auth notes") {
		t.Fatalf("a call before authorizing: %v", err)
	}

	// An authorization is a person's own: a credential of no user (the
	// bootstrap one) is refused.
	if _, _, err := in.cli(nil, "", "mcp", "auth", "notes", "--no-browser"); err == nil || !strings.Contains(err.Error(), "a person's own") {
		t.Fatalf("mcp auth with a credential of no user: %v", err)
	}
	// keygate mcp auth prints the keygate URL that starts it.
	out := in.mustAs(alice, "mcp", "auth", "notes", "--no-browser")
	startURL := in.addrs.Admin + "/api/v1/me/mcp/notes/oauth/start"
	if !strings.Contains(out, startURL) {
		t.Fatalf("mcp auth printed %q, want %s", out, startURL)
	}

	// Alice's browser: signed in to keygate, and at the authorization
	// server as alice-upstream.
	ab := newBrowser(t)
	ab.signIn(in.addrs.Admin, alice)
	asURL, _ := url.Parse(as.srv.URL)
	ab.hc.Jar.SetCookies(asURL, []*http.Cookie{{Name: "as_user", Value: "alice-upstream", Path: "/authorize"}})
	// The console's providers page offers her the same start, as a link.
	if resp, body := ab.get(in.addrs.Admin + "/providers"); resp.StatusCode != http.StatusOK || !strings.Contains(body, `data-mcp="notes"`) ||
		!strings.Contains(body, `<a href="/api/v1/me/mcp/notes/oauth/start" data-testid="mcp-authorize">Authorize</a>`) {
		t.Fatalf("the console's providers page: %d %s", resp.StatusCode, body)
	}
	resp, body := ab.get(startURL)
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), as.srv.URL+"/authorize?") {
		t.Fatalf("start: %d %s %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	authz, _ := url.Parse(resp.Header.Get("Location"))
	if q := authz.Query(); q.Get("code_challenge_method") != "S256" || q.Get("resource") != up.url || q.Get("state") == "" {
		t.Fatalf("authorization request %s", authz.RawQuery)
	}
	resp, body = ab.get(authz.String())
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize: %d %s", resp.StatusCode, body)
	}
	callback := resp.Header.Get("Location")
	if !strings.HasPrefix(callback, in.addrs.Admin+"/api/v1/auth/mcp/callback?") {
		t.Fatalf("the authorization server sent the browser to %s", callback)
	}
	resp, body = ab.get(callback)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "notes") {
		t.Fatalf("callback: %d %s", resp.StatusCode, body)
	}

	if _, body := ab.get(in.addrs.Admin + "/providers"); !strings.Contains(body, "Authorize again") {
		t.Fatalf("after authorizing, the console's providers page says %s", body)
	}

	// The same callback again: the state was single use.
	adminURL, _ := url.Parse(in.addrs.Admin + "/api/v1/auth/mcp/")
	state := authz.Query().Get("state")
	ab.hc.Jar.SetCookies(adminURL, []*http.Cookie{{Name: "keygate_mcp_oauth", Value: state, Path: "/api/v1/auth/mcp/"}})
	if resp, body := ab.get(callback); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "state_unknown") {
		t.Fatalf("a replayed callback: %d %s", resp.StatusCode, body)
	}

	// Alice's key now reaches the server as alice-upstream, with her
	// OAuth access token; the server never sees a keygate key.
	whoami := func(cs *mcp.ClientSession) string {
		t.Helper()
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}})
		if err != nil {
			t.Fatalf("whoami: %v", err)
		}
		return resultText(res)
	}
	got := whoami(cs)
	if !strings.HasPrefix(got, "subject=alice-upstream token#") {
		t.Fatalf("the server saw %q", got)
	}
	firstToken := strings.TrimPrefix(got, "subject=alice-upstream token#")
	// A server echoing the token gets it scrubbed.
	if res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "leak_auth", Arguments: map[string]any{}}); err != nil || strings.Contains(resultText(res), "at-") {
		t.Fatalf("leak_auth: %v %v", err, res)
	}

	// The server stops taking alice's token before its expiry: keygate
	// refreshes it on the 401 and the call goes through.
	as.revokeAccess("alice-upstream", false)
	if got := whoami(cs); !strings.HasPrefix(got, "subject=alice-upstream token#") || strings.HasSuffix(got, firstToken) {
		t.Fatalf("after the server revoked the token it saw %q", got)
	}
	as.mu.Lock()
	refreshedBefore := as.refreshed
	as.mu.Unlock()
	if refreshedBefore != 1 {
		t.Fatalf("a token refused before its expiry led to %d refreshes, want 1", refreshedBefore)
	}

	// Bob has not authorized: his key is told how to, and nothing of his
	// reaches the server.
	bcs := connectMCP(t, in.addrs.Gateway+mcpgate.Path, bobKey)
	_, err = bcs.CallTool(context.Background(), &mcp.CallToolParams{Name: "notes__whoami", Arguments: map[string]any{}})
	if rpcCode(err) != mcpgate.CodeForbidden || !strings.Contains(err.Error(), "keygate mcp auth notes") {
		t.Fatalf("bob's call without authorizing: %v", err)
	}

	// A state started by alice, finished in bob's browser (with the
	// cookie copied over), is refused and leaves nothing under bob.
	ab2 := newBrowser(t)
	ab2.signIn(in.addrs.Admin, alice)
	resp, _ = ab2.get(startURL)
	stolen, _ := url.Parse(resp.Header.Get("Location"))
	bb := newBrowser(t)
	bb.signIn(in.addrs.Admin, bob)
	bb.hc.Jar.SetCookies(adminURL, []*http.Cookie{{Name: "keygate_mcp_oauth", Value: stolen.Query().Get("state"), Path: "/api/v1/auth/mcp/"}})
	if resp, body := bb.get(in.addrs.Admin + "/api/v1/auth/mcp/callback?" + url.Values{"code": {"x"}, "state": {stolen.Query().Get("state")}}.Encode()); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "wrong_user") {
		t.Fatalf("alice's state in bob's browser: %d %s", resp.StatusCode, body)
	}
	// A state without the browser cookie that goes with it is refused.
	resp, _ = ab2.get(startURL)
	loose, _ := url.Parse(resp.Header.Get("Location"))
	if resp, body := newBrowser(t).get(in.addrs.Admin + "/api/v1/auth/mcp/callback?" + url.Values{"code": {"x"}, "state": {loose.Query().Get("state")}}.Encode()); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "state_mismatch") {
		t.Fatalf("a state without its cookie: %d %s", resp.StatusCode, body)
	}

	// Refresh: the authorization server issues short-lived tokens; once
	// alice's is near expiry keygate refreshes it (the old one ends
	// there), and the call goes on with the new one.
	as.mu.Lock()
	as.ttl = 65 * time.Second // keygate refreshes a minute before expiry
	as.mu.Unlock()
	in.mustAs(alice, "mcp", "auth", "notes", "--revoke")
	_, err = cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}})
	if rpcCode(err) != mcpgate.CodeForbidden || !strings.Contains(err.Error(), "keygate mcp auth notes") {
		t.Fatalf("a call after --revoke: %v", err)
	}
	resp, _ = ab.get(startURL)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	resp, _ = ab.get(loc.String())
	issuedAt := time.Now()
	if resp, body := ab.get(resp.Header.Get("Location")); resp.StatusCode != http.StatusOK {
		t.Fatalf("authorizing again: %d %s", resp.StatusCode, body)
	}
	second := strings.TrimPrefix(whoami(cs), "subject=alice-upstream token#")
	if second == firstToken {
		t.Fatal("after authorizing again keygate still sends the first token")
	}
	time.Sleep(time.Until(issuedAt.Add(6 * time.Second)))
	third := whoami(cs)
	if res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "leak_auth", Arguments: map[string]any{}}); err != nil || strings.Contains(resultText(res), "at-") {
		t.Fatalf("leak_auth after the refresh: %v %v", err, res)
	}
	if !strings.HasPrefix(third, "subject=alice-upstream token#") || strings.HasSuffix(third, second) {
		t.Fatalf("after expiry the server saw %q (the token before: %s)", third, second)
	}
	as.mu.Lock()
	refreshed := as.refreshed
	as.mu.Unlock()
	if refreshed != refreshedBefore+1 {
		t.Fatalf("the authorization server honoured %d refreshes near expiry, want 1", refreshed-refreshedBefore)
	}

	// Alice withdraws keygate's access at the authorization server: the
	// next call finds its token refused and its refresh too, and she is
	// told to authorize again.
	as.revokeAccess("alice-upstream", true)
	_, err = cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}})
	if rpcCode(err) != mcpgate.CodeForbidden || !strings.Contains(err.Error(), "has ended") || !strings.Contains(err.Error(), "keygate mcp auth notes") {
		t.Fatalf("a call after the authorization was withdrawn upstream: %v", err)
	}

	// Nothing the server received was a keygate credential.
	for _, h := range up.headers() {
		if strings.Contains(h, "kg_") {
			t.Fatalf("the MCP server received a keygate credential: %q", h)
		}
	}
	// Every callback is on the audit trail, the refused ones with why.
	var evs adminapi.AuditEvents
	decodeJSON(t, in.mustCLI(nil, "", "--json", "audit", "search", "--type", "mcp.oauth.callback", "--since", "1h"), &evs)
	seen := map[string]bool{}
	for _, raw := range evs.Events {
		if strings.Contains(string(raw), "at-") || strings.Contains(string(raw), "rt-") || strings.Contains(string(raw), "code-") {
			t.Fatalf("an audit event carries a token or code: %s", raw)
		}
		var ev struct {
			Decision string   `json:"decision"`
			Reasons  []string `json:"reasons"`
		}
		_ = json.Unmarshal(raw, &ev)
		seen[ev.Decision+":"+strings.Join(ev.Reasons, ",")] = true
	}
	for _, want := range []string{"allow:", "deny:state_unknown", "deny:wrong_user", "deny:state_mismatch"} {
		if !seen[want] {
			t.Errorf("no %s callback on the audit trail; saw %v", want, seen)
		}
	}

	// A key of no user (made with the bootstrap admin credential) acts
	// for no one there.
	nobody := in.createKey("--name", "shared", "--allow-tool", "notes/*")
	_, err = connectMCP(t, in.addrs.Gateway+mcpgate.PathPrefix+"notes", nobody).CallTool(context.Background(), &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}})
	if rpcCode(err) != mcpgate.CodeForbidden || !strings.Contains(err.Error(), "acts for no one") {
		t.Fatalf("a key of no user: %v", err)
	}

	// The console's Revoke does what --revoke does.
	req, _ := http.NewRequest("POST", in.addrs.Admin+"/mcp/notes/revoke", nil)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if resp := ab.do(req); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the console's Revoke: %d", resp.StatusCode)
	}
	var st adminapi.MCPAuthorization
	decodeJSON(t, in.mustAs(alice, "--json", "mcp", "auth", "notes", "--no-browser"), &st)
	if st.Authorized {
		t.Fatal("after the console's Revoke alice is still authorized")
	}

	// Removing the server destroys what its users granted.
	var shown adminapi.MCPServer
	decodeJSON(t, in.mustCLI(nil, "", "--json", "mcp", "show", "notes"), &shown)
	in.mustCLI(nil, "", "mcp", "remove", "notes")

	// No token, refresh token or client secret is on disk in clear.
	in.stop()
	disk := string(filesUnder(t, dir))
	as.mu.Lock()
	defer as.mu.Unlock()
	for _, s := range as.issued {
		if strings.Contains(disk, s) {
			t.Fatalf("a token or client secret the authorization server issued is on disk in clear: %s...", s[:6])
		}
	}
	cfg := testConfig(t, dir)
	db, err := store.Open(context.Background(), cfg.DatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n, err := db.DeleteSecretRecords(context.Background(), "mcp-oauth/"+shown.ID+"/"); err != nil || n != 0 {
		t.Fatalf("after mcp remove, %d sealed records of the server's grants were left (%v)", n, err)
	}
}

// TestMCPOAuthDiscoveryEgress: URLs keygate discovers from a server's
// metadata go through the egress guard. The server is registered with
// allow_private (its own host may be private), but the authorization
// server its metadata names is on another host that is not: keygate
// refuses to reach it.
func TestMCPOAuthDiscoveryEgress(t *testing.T) {
	as := newFakeAS(t)
	elsewhere := strings.Replace(as.srv.URL, "127.0.0.1", "localhost", 1)
	up := newFakeOAuthMCP(t, as, elsewhere)
	in := start(t, testConfig(t, t.TempDir()), "")
	in.mustCLI(nil, "", "mcp", "add", "notes", "--url", up.url, "--auth", "oauth", "--allow-private")
	alice := in.addUser("alice", "--role", "admin")
	ab := newBrowser(t)
	ab.signIn(in.addrs.Admin, alice)
	resp, body := ab.get(in.addrs.Admin + "/api/v1/me/mcp/notes/oauth/start")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "egress") {
		t.Fatalf("start with an authorization server on a private address: %d %s", resp.StatusCode, body)
	}
	as.mu.Lock()
	defer as.mu.Unlock()
	if len(as.clients) != 0 {
		t.Fatal("keygate registered at an authorization server the egress guard refuses")
	}
}

// TestMCPClientCredentials: a server that takes keygate's own OAuth token:
// keygate gets it with the client credentials grant (its client secret in
// the vault, the server named as resource), puts it on its calls, and
// gets a new one as it expires.
func TestMCPClientCredentials(t *testing.T) {
	as := newFakeAS(t)
	up := newFakeOAuthMCP(t, as, as.srv.URL)
	as.resource = up.url
	as.ttl = 13 * time.Second // golang.org/x/oauth2 renews 10s before expiry
	sec := "cc-secret-" + randHex(t, 16)
	as.clients["keygate-cc"] = fakeClient{secret: sec}
	in := start(t, testConfig(t, t.TempDir()), "")
	in.mustCLI(nil, sec, "secret", "put", "search-client", "--stdin")
	in.mustCLI(nil, "", "mcp", "add", "search", "--url", up.url, "--auth", "client-credentials", "--token-url", as.srv.URL+"/token",
		"--client-id", "keygate-cc", "--client-secret-secret", "search-client", "--allow-private")
	if out := in.mustCLI(nil, "", "mcp", "show", "search"); !strings.Contains(out, "keygate-cc") || strings.Contains(out, sec) {
		t.Fatalf("mcp show: %s", out)
	}
	key := in.createKey("--name", "agent", "--allow-tool", "search/*")
	cs := connectMCP(t, in.addrs.Gateway+mcpgate.PathPrefix+"search", key)
	whoami := func() string {
		t.Helper()
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}})
		if err != nil {
			t.Fatalf("whoami: %v", err)
		}
		return resultText(res)
	}
	first := whoami()
	if !strings.HasPrefix(first, "subject=client:keygate-cc token#") {
		t.Fatalf("the server saw %q", first)
	}
	if res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "leak_auth", Arguments: map[string]any{}}); err != nil || strings.Contains(resultText(res), "at-") {
		t.Fatalf("leak_auth: %v %v", err, res)
	}
	if again := whoami(); again != first {
		t.Fatalf("a second call within the token's life used another token: %q then %q", first, again)
	}
	time.Sleep(4 * time.Second)
	if next := whoami(); next == first || !strings.HasPrefix(next, "subject=client:keygate-cc token#") {
		t.Fatalf("after the token neared expiry the server saw %q (before: %q)", next, first)
	}
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.granted != 2 {
		t.Fatalf("keygate asked for %d tokens, want 2", as.granted)
	}
	for _, h := range up.headers() {
		if strings.Contains(h, "kg_") || strings.Contains(h, sec) {
			t.Fatalf("the MCP server received a keygate key or the client secret: %q", h)
		}
	}
}

// TestMCPOAuthConfiguredClient: at an authorization server where keygate
// is registered already (--client-id, its secret in the vault), keygate
// registers nothing and authorizes as that client.
func TestMCPOAuthConfiguredClient(t *testing.T) {
	as := newFakeAS(t)
	up := newFakeOAuthMCP(t, as, as.srv.URL)
	as.resource = up.url
	in := start(t, testConfig(t, t.TempDir()), "")
	sec := "pre-secret-" + randHex(t, 16)
	as.mu.Lock()
	as.clients["keygate-pre"] = fakeClient{secret: sec, redirect: in.addrs.Admin + "/api/v1/auth/mcp/callback"}
	as.mu.Unlock()
	in.mustCLI(nil, sec, "secret", "put", "notes-client", "--stdin")
	in.mustCLI(nil, "", "mcp", "add", "notes", "--url", up.url, "--auth", "oauth", "--client-id", "keygate-pre", "--client-secret-secret", "notes-client", "--allow-private")
	alice := in.addUser("alice", "--role", "admin")
	key := in.keyAs(alice, "alice-agent", "--allow-tool", "notes/*")

	ab := newBrowser(t)
	ab.signIn(in.addrs.Admin, alice)
	asURL, _ := url.Parse(as.srv.URL)
	ab.hc.Jar.SetCookies(asURL, []*http.Cookie{{Name: "as_user", Value: "alice-upstream", Path: "/authorize"}})
	resp, body := ab.get(in.addrs.Admin + "/api/v1/me/mcp/notes/oauth/start")
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc.Query().Get("client_id") != "keygate-pre" {
		t.Fatalf("start: %d %s %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	resp, _ = ab.get(loc.String())
	if resp, body := ab.get(resp.Header.Get("Location")); resp.StatusCode != http.StatusOK {
		t.Fatalf("callback: %d %s", resp.StatusCode, body)
	}
	res, err := connectMCP(t, in.addrs.Gateway+mcpgate.PathPrefix+"notes", key).CallTool(context.Background(), &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}})
	if err != nil || !strings.HasPrefix(resultText(res), "subject=alice-upstream token#") {
		t.Fatalf("whoami: %v %v", err, res)
	}
	as.mu.Lock()
	defer as.mu.Unlock()
	if len(as.clients) != 1 {
		t.Fatalf("keygate registered itself although it had a client: %d clients", len(as.clients))
	}
}
