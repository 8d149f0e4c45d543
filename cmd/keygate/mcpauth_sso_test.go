package main

import (
	"html"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/mcpgate"
	"github.com/keygate/keygate/internal/ssotest"
)

// freeAddr is a loopback address with a port free right now, for a
// listener whose address must be known before it opens (an OpenID
// provider's registered redirect URI).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestMCPSignInWithSSOReturnsToConsent: a person not signed in, sent by
// an MCP client to keygate's authorization endpoint, signs in with single
// sign-on (a real OpenID provider, its own login page, through a real
// browser-like client that follows every redirect) and lands on the
// consent page of that same request: client, state, PKCE challenge and
// resource intact; the code redeems. A sign-in started with a return
// address that is not the authorization endpoint ends on the console's
// home instead.
func TestMCPSignInWithSSOReturnsToConsent(t *testing.T) {
	pw := "provider-password-" + t.Name()
	adminAddr := freeAddr(t)
	op := ssotest.StartWeb(t, "http://"+adminAddr+"/api/v1/auth/oidc/callback", ssotest.User{Name: "dana", Password: pw})
	cfg := testConfig(t, t.TempDir())
	cfg.AdminListen = adminAddr
	cfg.SignIn.OIDC = config.OIDC{Issuer: op.Issuer, ClientID: op.ClientID, ClientSecret: op.ClientSecret,
		RedirectURL: "http://" + adminAddr + "/api/v1/auth/oidc/callback"}
	up := newFakeToolServer(t)
	in := start(t, cfg, "")
	in.mustCLI(nil, up.token, "secret", "put", "gh-token", "--stdin")
	in.mustCLI(nil, "", "mcp", "add", "github", "--url", up.url, "--secret", "gh-token", "--allow-private")
	in.mustCLI(nil, "", "team", "add", "tools")
	dana := in.addUser("dana", "--role", "developer", "--team", "tools")
	in.keyAs(dana, "dana-agent")
	in.mustCLI(nil, "", "key", "update", "dana-agent", "--allow-tool", "github/*")

	const redirect = "http://127.0.0.1:39128/callback"
	resp, err := http.Post(in.addrs.Gateway+"/oauth/register", "application/json", strings.NewReader(`{"redirect_uris":["`+redirect+`"],"client_name":"sso-agent"}`))
	if err != nil {
		t.Fatal(err)
	}
	var reg struct {
		ClientID string `json:"client_id"`
	}
	decodeJSON(t, readBody(t, resp), &reg)

	// A browser: keeps cookies, follows redirects, stops at the client.
	newBrowser := func() *http.Client {
		jar, _ := cookiejar.New(nil)
		return &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if strings.HasPrefix(req.URL.String(), redirect) {
				return http.ErrUseLastResponse
			}
			return nil
		}}
	}
	// signInAt opens u and signs in at the provider when the sign-in page
	// offers it, returning the page the browser lands on.
	signInAt := func(b *http.Client, u string) *http.Response {
		t.Helper()
		resp, err := b.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Request.URL.Path == "/signin" {
			body := readBody(t, resp)
			m := regexp.MustCompile(`href="(/api/v1/auth/oidc/start[^"]*)"`).FindStringSubmatch(body)
			if m == nil {
				t.Fatalf("the sign-in page offers no single sign-on: %s", body)
			}
			if resp, err = b.Get(in.addrs.Admin + html.UnescapeString(m[1])); err != nil {
				t.Fatal(err)
			}
		}
		resp, err = op.SignIn(b, resp, "dana", pw)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	verifier, challenge := pkce(t)
	resource := in.addrs.Gateway + mcpgate.Path
	q := url.Values{"response_type": {"code"}, "client_id": {reg.ClientID}, "redirect_uri": {redirect}, "state": {"st-" + randHex(t, 4)},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "resource": {resource}, "scope": {"tool:github/echo"}}
	browser := newBrowser()
	resp = signInAt(browser, in.addrs.Admin+"/oauth/authorize?"+q.Encode())
	page := readBody(t, resp)
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/oauth/authorize" || !strings.Contains(page, `action="/oauth/authorize"`) {
		t.Fatalf("after single sign-on the browser is at %s (%d), not the consent page: %s", resp.Request.URL.Redacted(), resp.StatusCode, page)
	}
	form := url.Values{"decision": {"allow"}}
	for _, m := range hiddenRE.FindAllStringSubmatch(page, -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	for _, k := range []string{"client_id", "redirect_uri", "state", "code_challenge", "resource", "scope"} {
		if form.Get(k) != q.Get(k) {
			t.Fatalf("the consent page answers another request: %s is %q, want %q", k, form.Get(k), q.Get(k))
		}
	}
	m := keyRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("the consent page offers no key: %s", page)
	}
	form.Set("key", m[1])
	resp, err = browser.PostForm(in.addrs.Admin+"/oauth/authorize", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || loc == nil || loc.Query().Get("code") == "" || loc.Query().Get("state") != q.Get("state") {
		t.Fatalf("allow: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	st, tok := exchange(t, in.addrs.Gateway, url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "client_id": {reg.ClientID},
		"redirect_uri": {redirect}, "code_verifier": {verifier}, "resource": {resource}})
	if st != http.StatusOK || tok.AccessToken == "" || tok.Scope != "tool:github/echo" {
		t.Fatalf("redeem the code: %d %+v", st, tok)
	}
	if amr := jwtClaim(t, tok.AccessToken, "amr"); !strings.Contains(amr, `"fed"`) {
		t.Fatalf("the token's amr %s does not say single sign-on", amr)
	}

	// A return address other than the authorization endpoint is not
	// followed: the sign-in ends on the console's home.
	for _, next := range []string{"https://evil.example/oauth/authorize", "//evil.example/oauth/authorize", "/keys", "/oauth/authorize/../../keys"} {
		b := newBrowser()
		resp := signInAt(b, in.addrs.Admin+"/api/v1/auth/oidc/start?"+url.Values{"next": {next}}.Encode())
		body := readBody(t, resp)
		if resp.Request.URL.Host != adminAddr || resp.Request.URL.Path != "/" {
			t.Fatalf("a sign-in told to return to %q ended at %s (%d): %.300s", next, resp.Request.URL.Redacted(), resp.StatusCode, body)
		}
	}
}
