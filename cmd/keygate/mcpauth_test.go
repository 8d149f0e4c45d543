package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"github.com/pquerna/otp/totp"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/mcpgate"
	"github.com/keygate/keygate/internal/store/storetest"
)

// mcpBrowser is a person's browser: it keeps cookies, follows keygate's
// redirects and stops at the MCP client's redirect URI, as a browser
// hands the code to a client listening on loopback.
type mcpBrowser struct {
	t        *testing.T
	in       *instance
	c        *http.Client
	redirect string
	user     string
	password string
	secret   string // TOTP
	signedIn bool
}

func newMCPBrowser(t *testing.T, in *instance, redirect, user, secret string) *mcpBrowser {
	jar, _ := cookiejar.New(nil)
	b := &mcpBrowser{t: t, in: in, redirect: redirect, user: user, password: signInPassword, secret: secret}
	b.c = &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), b.redirect) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	return b
}

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)
var keyRE = regexp.MustCompile(`name="key" value="([^"]+)"`)

// authorize opens an authorization URL as the person would: signs in
// when sent to the sign-in page, then answers the consent page with
// decision. It returns the query keygate redirected to the client with,
// or nil and the page when keygate showed a page instead.
func (b *mcpBrowser) authorize(authURL, decision string) (url.Values, string) {
	b.t.Helper()
	resp, err := b.c.Get(authURL)
	if err != nil {
		b.t.Fatalf("open the authorization URL: %v", err)
	}
	for range 3 {
		if v, ok := b.redirected(resp); ok {
			return v, ""
		}
		body := readBody(b.t, resp)
		switch {
		case strings.Contains(body, `action="/signin"`):
			if b.signedIn {
				b.t.Fatalf("asked to sign in again: %s", body)
			}
			next := html.UnescapeString(regexp.MustCompile(`name="next" value="([^"]*)"`).FindStringSubmatch(body)[1])
			code := ""
			if b.secret != "" {
				code, _ = totp.GenerateCode(b.secret, time.Now().Add(30*time.Second))
			}
			resp, err = b.c.PostForm(b.in.addrs.Admin+"/signin", url.Values{"user": {b.user}, "password": {b.password}, "otp": {code}, "next": {next}})
			if err != nil {
				b.t.Fatal(err)
			}
			b.signedIn = true
		case strings.Contains(body, `action="/oauth/authorize"`):
			form := url.Values{"decision": {decision}}
			for _, m := range hiddenRE.FindAllStringSubmatch(body, -1) {
				form.Set(m[1], html.UnescapeString(m[2]))
			}
			if m := keyRE.FindStringSubmatch(body); m != nil {
				form.Set("key", m[1])
			}
			resp, err = b.c.PostForm(b.in.addrs.Admin+"/oauth/authorize", form)
			if err != nil {
				b.t.Fatal(err)
			}
		default:
			return nil, body
		}
	}
	b.t.Fatalf("the authorization did not end")
	return nil, ""
}

func (b *mcpBrowser) redirected(resp *http.Response) (url.Values, bool) {
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, b.redirect) {
		return nil, false
	}
	resp.Body.Close()
	u, err := url.Parse(loc)
	if err != nil {
		b.t.Fatal(err)
	}
	return u.Query(), true
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// pkce returns a verifier and its S256 challenge.
func pkce(t *testing.T) (string, string) {
	v := randHex(t, 32)
	sum := sha256.Sum256([]byte(v))
	return v, base64.RawURLEncoding.EncodeToString(sum[:])
}

// TestMCPSignInThroughKeygate: the official Go SDK's MCP client meets a 401
// at keygate's /mcp, discovers keygate as the authorization server,
// registers itself, sends the person through keygate's own sign-in
// (password and TOTP) and consent page, exchanges the code with PKCE and
// lists and calls a tool with the token. Then, driven by hand as any OAuth
// client would: PKCE is required and S256 only, a wrong verifier, a
// replayed code (its tokens revoked), a wrong redirect URI, a foreign
// resource, an unregistered client and a reused refresh token are refused;
// a token for /mcp/github is good nowhere else; the trail has it all.
func TestMCPSignInThroughKeygate(t *testing.T) {
	for name, dbURL := range databases(t) {
		t.Run(name, func(t *testing.T) {
			if name == "postgres" && os.Getenv(storetest.PostgresEnv) == "" {
				t.Skip("set " + storetest.PostgresEnv + " to run against PostgreSQL")
			}
			cfg := testConfig(t, t.TempDir())
			cfg.Database = dbURL(t)
			testMCPSignIn(t, cfg)
		})
	}
}

func testMCPSignIn(t *testing.T, cfg config.Config) {
	up := newFakeToolServer(t)
	in := start(t, cfg, "")
	in.mustCLI(nil, up.token, "secret", "put", "gh-token", "--stdin")
	in.mustCLI(nil, "", "mcp", "add", "github", "--url", up.url, "--secret", "gh-token", "--allow-private")
	in.mustCLI(nil, "", "team", "add", "tools")
	dev := in.addUser("dev", "--role", "developer", "--team", "tools")
	in.keyAs(dev, "dev-agent") // the developer's own key...
	in.mustCLI(nil, "", "key", "update", "dev-agent", "--allow-tool", "github/*", "--allow-tool", "!github/delete_*")
	in.mustCLI(nil, signInPassword+"\n", "user", "password", "dev")
	home := t.TempDir()
	if _, errb, err := in.asPerson(home, signInPassword+"\n", "login", "--user", "dev"); err != nil {
		t.Fatalf("login: %v %s", err, errb)
	}
	const redirect = "http://127.0.0.1:39127/callback"
	// Before the second factor developers must use, the consent page is
	// not reached: the person is told to enrol it first.
	resp, err := http.Post(in.addrs.Gateway+"/oauth/register", "application/json", strings.NewReader(`{"redirect_uris":["`+redirect+`"],"client_name":"early"}`))
	if err != nil {
		t.Fatal(err)
	}
	var early struct {
		ClientID string `json:"client_id"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&early)
	resp.Body.Close()
	_, ch := pkce(t)
	pending := newMCPBrowser(t, in, redirect, "dev", "")
	if q, page := pending.authorize(in.addrs.Admin+"/oauth/authorize?"+url.Values{"response_type": {"code"}, "client_id": {early.ClientID}, "redirect_uri": {redirect},
		"code_challenge": {ch}, "code_challenge_method": {"S256"}, "resource": {in.addrs.Gateway + mcpgate.Path}}.Encode(), "allow"); q != nil || !strings.Contains(page, "second factor") {
		t.Fatalf("a person without the second factor their role needs: %v %s", q, page)
	}
	secret := in.enrolTOTP(home) // ...and the second factor

	browser := newMCPBrowser(t, in, redirect, "dev", secret)
	var authURLs []string
	h, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
			ClientName: "sdk-agent", RedirectURIs: []string{redirect}, GrantTypes: []string{"authorization_code", "refresh_token"}}},
		AuthorizationCodeFetcher: func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
			authURLs = append(authURLs, args.URL)
			q, page := browser.authorize(args.URL, "allow")
			if q == nil {
				return nil, errors.New("keygate showed a page instead of redirecting: " + page)
			}
			if q.Get("code") == "" {
				return nil, errors.New("keygate answered " + q.Encode())
			}
			return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	c := mcp.NewClient(&mcp.Implementation{Name: "sdk-agent", Version: "1.0.0"}, nil)
	cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: in.addrs.Gateway + mcpgate.Path, OAuthHandler: h, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatalf("connect with sign-in through keygate: %v", err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	if names := toolNames(t, cs); strings.Join(names, ",") != "github__echo,github__fetch_page,github__read_config,github__whoami" {
		t.Fatalf("tools/list = %v", names)
	}
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "github__echo", Arguments: map[string]any{"text": "signed-in-through-keygate"}})
	if err != nil || resultText(res) != "signed-in-through-keygate" {
		t.Fatalf("echo: %v %+v", err, res)
	}
	if len(authURLs) != 1 {
		t.Fatalf("the client authorized %d times", len(authURLs))
	}
	sdkAuth, _ := url.Parse(authURLs[0])
	clientID := sdkAuth.Query().Get("client_id")
	resource := in.addrs.Gateway + mcpgate.Path
	if sdkAuth.Query().Get("resource") != resource || sdkAuth.Query().Get("code_challenge_method") != "S256" {
		t.Fatalf("the SDK asked %s", authURLs[0])
	}

	// By hand, as an OAuth library would.
	authURL := func(mod func(url.Values)) (string, string) {
		v, ch := pkce(t)
		q := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirect}, "state": {"st-" + randHex(t, 4)},
			"code_challenge": {ch}, "code_challenge_method": {"S256"}, "resource": {resource}}
		if mod != nil {
			mod(q)
		}
		return in.addrs.Admin + "/oauth/authorize?" + q.Encode(), v
	}
	codeFor := func(mod func(url.Values)) (string, string) {
		t.Helper()
		u, v := authURL(mod)
		q, page := browser.authorize(u, "allow")
		if q == nil || q.Get("code") == "" || (mod == nil && q.Get("iss") != in.addrs.Gateway) {
			t.Fatalf("no code: %v %s", q, page)
		}
		return q.Get("code"), v
	}
	redeem := func(code, verifier string, mod func(url.Values)) (int, tokenAnswer) {
		f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {clientID}, "redirect_uri": {redirect},
			"code_verifier": {verifier}, "resource": {resource}}
		if mod != nil {
			mod(f)
		}
		return exchange(t, in.addrs.Gateway, f)
	}
	refuses := func(what string, mod func(url.Values), wantErr string) {
		t.Helper()
		u, _ := authURL(mod)
		q, page := browser.authorize(u, "allow")
		if q == nil || q.Get("error") != wantErr || q.Get("code") != "" {
			t.Fatalf("%s: %v %s, want error %s", what, q, page, wantErr)
		}
	}
	refuses("no PKCE", func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }, "invalid_request")
	refuses("plain PKCE", func(q url.Values) { q.Set("code_challenge_method", "plain") }, "invalid_request")
	refuses("a foreign resource", func(q url.Values) { q.Set("resource", "https://elsewhere.example/api") }, "invalid_target")
	// A scope wider than every key of the person's: no key to choose, no code.
	wide, _ := authURL(func(q url.Values) { q.Set("scope", "tool:github/delete_repo") })
	if q, page := browser.authorize(wide, "allow"); q != nil || !strings.Contains(page, "Choose one of your keys") {
		t.Fatalf("a scope wider than the key: %v %s", q, page)
	}
	refuses("a model scope", func(q url.Values) { q.Set("scope", "model:*") }, "invalid_scope")
	if q, page := browser.authorize(in.addrs.Admin+"/oauth/authorize?"+url.Values{"client_id": {"mcp_unregistered"}, "redirect_uri": {redirect}}.Encode(), "allow"); q != nil || !strings.Contains(page, "not registered") {
		t.Fatalf("an unregistered client: %v %s", q, page)
	}
	if q, page := browser.authorize(strings.Replace(must1(authURL(nil)), url.QueryEscape(redirect), url.QueryEscape("https://evil.example/cb"), 1), "allow"); q != nil || !strings.Contains(page, "redirect URI") {
		t.Fatalf("an unregistered redirect URI: %v %s", q, page)
	}
	u, _ := authURL(nil)
	if q, _ := browser.authorize(u, "deny"); q == nil || q.Get("error") != "access_denied" {
		t.Fatalf("a denial: %v", q)
	}

	code, verifier := codeFor(nil)
	if st, a := redeem(code, verifier+"x", nil); st != http.StatusBadRequest || a.Error != "invalid_grant" {
		t.Fatalf("a wrong verifier: %d %+v", st, a)
	}
	code, verifier = codeFor(nil)
	if st, a := redeem(code, verifier, func(f url.Values) { f.Set("redirect_uri", "http://127.0.0.1:1/other") }); st != http.StatusBadRequest || a.Error != "invalid_grant" {
		t.Fatalf("a wrong redirect_uri: %d %+v", st, a)
	}
	code, verifier = codeFor(nil)
	if st, a := redeem(code, verifier, func(f url.Values) { f.Set("client_id", "mcp_unregistered") }); st != http.StatusUnauthorized || a.Error != "invalid_client" {
		t.Fatalf("an unregistered client at the token endpoint: %d %+v", st, a)
	}
	code, verifier = codeFor(func(q url.Values) { q.Set("resource", "http://other.example:8787/mcp") })
	if st, a := redeem(code, verifier, func(f url.Values) { f.Set("resource", "http://other.example:8787/mcp") }); st != http.StatusBadRequest || a.Error != "invalid_target" {
		t.Fatalf("a code for another server's resource: %d %+v", st, a)
	}

	// A code works once; presented again, it revokes what it granted.
	code, verifier = codeFor(nil)
	st, first := redeem(code, verifier, nil)
	if st != http.StatusOK || first.AccessToken == "" || first.RefreshToken == "" || first.Scope != "" {
		t.Fatalf("redeem: %d %+v", st, first)
	}
	if amr := jwtClaim(t, first.AccessToken, "amr"); amr != `["pwd","mfa"]` {
		t.Fatalf("the token's amr is %s, want the person's password and second factor", amr)
	}
	if aud := jwtClaim(t, first.AccessToken, "aud"); !strings.Contains(aud, `"`+resource+`"`) {
		t.Fatalf("the token's aud %s does not name its resource %s", aud, resource)
	}
	if names := toolNames(t, connectMCP(t, resource, first.AccessToken)); len(names) != 4 {
		t.Fatalf("the redeemed token sees %v", names)
	}
	if st, a := redeem(code, verifier, nil); st != http.StatusBadRequest || a.Error != "invalid_grant" {
		t.Fatalf("a replayed code: %d %+v", st, a)
	}
	if st := mcpStatus(t, resource, first.AccessToken); st != http.StatusUnauthorized {
		t.Fatalf("the token of a replayed code: %d, want 401", st)
	}
	if st, a := exchange(t, in.addrs.Gateway, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.RefreshToken}}); st != http.StatusBadRequest {
		t.Fatalf("the refresh token of a replayed code: %d %+v", st, a)
	}

	// Refresh rotates; a spent refresh token revokes the family.
	code, verifier = codeFor(nil)
	_, t1 := redeem(code, verifier, nil)
	st, t2 := exchange(t, in.addrs.Gateway, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {t1.RefreshToken}})
	if st != http.StatusOK || t2.RefreshToken == "" || t2.RefreshToken == t1.RefreshToken {
		t.Fatalf("refresh: %d %+v", st, t2)
	}
	if st := mcpStatus(t, resource, t2.AccessToken); st != http.StatusOK {
		t.Fatalf("a refreshed token at its resource: %d", st)
	}
	if st, _ := exchange(t, in.addrs.Gateway, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {t1.RefreshToken}}); st != http.StatusBadRequest {
		t.Fatalf("a reused refresh token: %d", st)
	}
	if st := mcpStatus(t, resource, t2.AccessToken); st != http.StatusUnauthorized {
		t.Fatalf("the family's token after reuse: %d, want 401", st)
	}

	// A token for /mcp/github is good there alone.
	one := in.addrs.Gateway + mcpgate.PathPrefix + "github"
	code, verifier = codeFor(func(q url.Values) { q.Set("resource", one); q.Set("scope", "tool:github/echo") })
	st, gh := redeem(code, verifier, func(f url.Values) { f.Set("resource", one) })
	if st != http.StatusOK || gh.Scope != "tool:github/echo" {
		t.Fatalf("a code for /mcp/github: %d %+v", st, gh)
	}
	if names := toolNames(t, connectMCP(t, one, gh.AccessToken)); strings.Join(names, ",") != "echo" {
		t.Fatalf("/mcp/github with its token: %v", names)
	}
	if st := mcpStatus(t, resource, gh.AccessToken); st != http.StatusUnauthorized {
		t.Fatalf("a /mcp/github token at /mcp: %d, want 401", st)
	}
	if st, body := postJSON(t, in.addrs.Gateway+"/v1/chat/completions", gh.AccessToken, `{"model":"gpt-4o-mini","messages":[]}`); st != http.StatusUnauthorized || !strings.Contains(body, "bound to another resource") {
		t.Fatalf("an MCP token at a model endpoint: %d %s", st, body)
	}
	// A refresh that names no resource keeps the grant's (RFC 8707 §2.2);
	// one that names another is invalid_target, and leaves the refresh
	// token unspent.
	st, ghr := exchange(t, in.addrs.Gateway, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {gh.RefreshToken}})
	if st != http.StatusOK || ghr.Scope != "tool:github/echo" {
		t.Fatalf("a refresh without resource: %d %+v", st, ghr)
	}
	if aud := jwtClaim(t, ghr.AccessToken, "aud"); !strings.Contains(aud, `"`+one+`"`) || strings.Contains(aud, `"`+resource+`"`) {
		t.Fatalf("the refreshed token's aud %s, want %s alone", aud, one)
	}
	if st := mcpStatus(t, one, ghr.AccessToken); st != http.StatusOK {
		t.Fatalf("the refreshed token at its resource: %d", st)
	}
	if st := mcpStatus(t, resource, ghr.AccessToken); st != http.StatusUnauthorized {
		t.Fatalf("the refreshed /mcp/github token at /mcp: %d, want 401", st)
	}
	for _, other := range []string{resource, "https://elsewhere.example/mcp"} {
		st, a := exchange(t, in.addrs.Gateway, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {ghr.RefreshToken}, "resource": {other}})
		if st != http.StatusBadRequest || a.Error != "invalid_target" || a.AccessToken != "" {
			t.Fatalf("a refresh naming resource %s: %d %+v", other, st, a)
		}
	}
	st, ghr = exchange(t, in.addrs.Gateway, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {ghr.RefreshToken}, "resource": {one}})
	if st != http.StatusOK || ghr.AccessToken == "" {
		t.Fatalf("a refresh naming its own resource, after refused ones: %d %+v", st, ghr)
	}
	if st := mcpStatus(t, one, ghr.AccessToken); st != http.StatusOK {
		t.Fatalf("the token of a refresh naming its resource: %d", st)
	}

	// Registration takes https and loopback redirect URIs only.
	for _, bad := range []string{`{"redirect_uris":["http://evil.example/cb"]}`, `{"redirect_uris":[]}`, `{"redirect_uris":["https://a.example/cb#frag"]}`} {
		resp, err := http.Post(in.addrs.Gateway+"/oauth/register", "application/json", strings.NewReader(bad))
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Error string }
		_ = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || e.Error != "invalid_redirect_uri" {
			t.Fatalf("registering %s: %d %+v", bad, resp.StatusCode, e)
		}
	}

	// A person disabled (or no longer owning the key) ends their clients'
	// refreshes.
	code, verifier = codeFor(nil)
	_, late := redeem(code, verifier, nil)
	if st, a := exchange(t, in.addrs.Gateway, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {late.RefreshToken}}); st != http.StatusOK {
		t.Fatalf("refresh before the person is disabled: %d %+v", st, a)
	} else {
		late = a
	}
	in.mustCLI(nil, "", "user", "disable", "dev")
	if st, a := exchange(t, in.addrs.Gateway, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {late.RefreshToken}}); st != http.StatusBadRequest || a.Error != "invalid_grant" {
		t.Fatalf("refresh after the person was disabled: %d %+v", st, a)
	}

	// MCP clients in a browser (MCP Inspector) may read the public endpoints.
	for _, p := range []string{"/.well-known/oauth-authorization-server", "/oauth/register", "/oauth/token", "/.well-known/oauth-protected-resource/mcp"} {
		req, _ := http.NewRequest("OPTIONS", in.addrs.Gateway+p, nil)
		req.Header.Set("Origin", "http://localhost:6274")
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type, mcp-protocol-version")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("preflight of %s: %d %v", p, resp.StatusCode, resp.Header)
		}
	}

	// The trail has the registration, the authorizations, the tokens, the
	// replay and the reuse.
	want := map[string]bool{"oauth.client_registered/allow": false, "oauth.authorize/allow": false, "oauth.authorize/deny": false,
		"token.issued/authorization_code": false, "oauth.code_replay/": false, "token.refresh_reuse/": false}
	for deadline := time.Now().Add(10 * time.Second); ; {
		var all adminapi.AuditEvents
		decodeJSON(t, in.mustCLI(nil, "", "--json", "audit", "search", "--since", "1h"), &all)
		for _, raw := range all.Events {
			var ev struct {
				Type, Decision string
				Fields         map[string]string
			}
			_ = json.Unmarshal(raw, &ev)
			if strings.Contains(string(raw), verifier) || strings.Contains(string(raw), code) {
				t.Fatalf("an audit event holds a code or verifier: %s", raw)
			}
			switch ev.Type {
			case "oauth.client_registered", "oauth.authorize":
				want[ev.Type+"/"+ev.Decision] = true
			case "token.issued":
				want[ev.Type+"/"+ev.Fields["grant"]] = true
			case "oauth.code_replay", "token.refresh_reuse":
				want[ev.Type+"/"] = true
			}
		}
		missing := ""
		for k, ok := range want {
			if !ok {
				missing += " " + k
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the trail lacks%s", missing)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func must1(s, _ string) string { return s }

// mcpStatus is the HTTP status of an MCP initialize at u with token.
func mcpStatus(t *testing.T, u, token string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"probe","version":"1"}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// jwtClaim returns one claim of a JWT's payload, as JSON.
func jwtClaim(t *testing.T, raw, name string) string {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]json.RawMessage
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatal(err)
	}
	return string(claims[name])
}
