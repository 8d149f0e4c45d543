package admin_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/keygate/keygate/internal/admin"
	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/rbac"
	"github.com/keygate/keygate/internal/sso"
)

// oidcRig is keygate's admin API served over HTTP, signing people in with
// a real OpenID provider (mockoidc: discovery, JWKS, authorization code
// with PKCE, signed ID tokens) also served over HTTP in the test.
type oidcRig struct {
	h        *harness
	trail    *eventLog
	op       *mockoidc.MockOIDC
	srv      *httptest.Server
	audience atomic.Value // when set, the provider issues ID tokens for this client instead
}

func newOIDCRig(t *testing.T, pol admin.SSOPolicy) *oidcRig {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	op, err := mockoidc.NewServer(key)
	if err != nil {
		t.Fatal(err)
	}
	rig := &oidcRig{op: op}
	// A token request can be answered for another client, to see a
	// wrong audience refused: the provider then signs for that one.
	if err := op.AddMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			other, _ := rig.audience.Load().(string)
			if r.URL.Path != mockoidc.TokenEndpoint || other == "" {
				next.ServeHTTP(w, r)
				return
			}
			body, _ := io.ReadAll(r.Body)
			form, _ := url.ParseQuery(string(body))
			own := op.ClientID
			form.Set("client_id", other)
			op.ClientID = other
			defer func() { op.ClientID = own }()
			enc := form.Encode()
			r.Body, r.ContentLength = io.NopCloser(strings.NewReader(enc)), int64(len(enc))
			next.ServeHTTP(w, r)
		})
	}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := op.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = op.Shutdown() })

	rig.h, rig.trail = signInHarness(t, 100)
	rig.h.opts.Now = time.Now // ID tokens carry real times
	rig.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { rig.h.api.ServeHTTP(w, r) }))
	t.Cleanup(rig.srv.Close)
	p, err := sso.New(context.Background(), sso.Config{Name: "Test IdP", Issuer: op.Issuer(), ClientID: op.ClientID, ClientSecret: op.ClientSecret,
		RedirectURL: rig.srv.URL + "/api/v1/auth/oidc/callback"})
	if err != nil {
		t.Fatal(err)
	}
	si := rig.h.newSignIn(100)
	si.SSO, si.SSOPolicy = p, pol
	rig.h.opts.SignIn = si
	rig.h.api = admin.New(rig.h.opts)
	return rig
}

// browser follows the sign-in's redirects through the provider and back,
// stopping at keygate's final redirect.
func (rig *oidcRig) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Path == "/" || req.URL.Host != via[0].URL.Host && !strings.HasPrefix(req.URL.String(), rig.op.Issuer()) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
}

// signIn runs the browser flow as user and returns the last answer.
func (rig *oidcRig) signIn(t *testing.T, c *http.Client, user *mockoidc.MockUser) *http.Response {
	t.Helper()
	rig.op.QueueUser(user)
	resp, err := c.Get(rig.srv.URL + "/api/v1/auth/oidc/start")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func (rig *oidcRig) whoami(t *testing.T, c *http.Client) (int, adminapi.WhoAmI) {
	t.Helper()
	resp, err := c.Get(rig.srv.URL + "/api/v1/whoami")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var who adminapi.WhoAmI
	if resp.StatusCode == 200 {
		b, _ := io.ReadAll(resp.Body)
		w := httptest.NewRecorder()
		w.Body = bytes.NewBuffer(b)
		w.Code = 200
		decode(t, w, &who)
	}
	return resp.StatusCode, who
}

var groupPolicy = admin.SSOPolicy{CreateUsers: true, Mapping: sso.Mapping{
	Groups: map[string]sso.GroupMapping{
		"platform-admins": {Role: rbac.Admin},
		"team-payments":   {Team: "payments", TeamRole: rbac.Developer},
	},
	RolePrecedence: []string{rbac.Owner, rbac.Admin, rbac.Developer},
}}

// TestOIDCSignIn: a person signs in through the provider (PKCE, nonce,
// verified ID token), is created just in time with the role and team
// their groups map to, and gets a session cookie; signing in again finds
// the same user; someone whose groups map to nothing is refused and not
// created.
func TestOIDCSignIn(t *testing.T) {
	rig := newOIDCRig(t, groupPolicy)
	rig.h.addTeam("payments", "")
	c := rig.browser()
	resp := rig.signIn(t, c, &mockoidc.MockUser{Subject: "sub-ann", PreferredUsername: "ann", Email: "ann@example.test", Groups: []string{"team-payments", "platform-admins"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("callback answered %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	code, who := rig.whoami(t, c)
	if code != 200 || who.Name != "ann" || who.Role != rbac.Admin || who.Via != "session (oidc)" || len(who.Teams) != 1 || who.Teams[0].Team != "payments" || who.Teams[0].Role != rbac.Developer {
		t.Fatalf("whoami after single sign-on: %d %+v", code, who)
	}
	users, _ := rig.h.st.ListUsers(context.Background())
	rig.signIn(t, rig.browser(), &mockoidc.MockUser{Subject: "sub-ann", PreferredUsername: "ann", Groups: []string{"platform-admins"}})
	if again, _ := rig.h.st.ListUsers(context.Background()); len(again) != len(users) {
		t.Fatal("a second sign-in of the same identity created another user")
	}

	resp = rig.signIn(t, rig.browser(), &mockoidc.MockUser{Subject: "sub-zed", PreferredUsername: "zed", Groups: []string{"marketing"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("someone whose groups map to nothing: %d", resp.StatusCode)
	}
	if _, err := rig.h.st.GetUserByName(context.Background(), "zed"); err == nil {
		t.Fatal("a refused sign-in created its user")
	}
	var reasons []string
	for _, ev := range rig.trail.find("admin.signin") {
		reasons = append(reasons, ev.Decision+":"+ev.Fields["method"]+":"+ev.Fields["reason"])
	}
	if strings.Join(reasons, " ") != "allow:oidc: allow:oidc: deny:oidc:no_mapping" {
		t.Fatalf("sign-ins on the trail: %v", reasons)
	}
}

// TestOIDCRefusals: a state is used once; a callback from a browser that
// did not start the sign-in, an ID token for another client, an expired
// one, and one carrying another sign-in's nonce are refused, and no
// session comes of them.
func TestOIDCRefusals(t *testing.T) {
	rig := newOIDCRig(t, admin.SSOPolicy{CreateUsers: true, Mapping: sso.Mapping{DefaultRole: rbac.Viewer}})
	user := func() *mockoidc.MockUser { return &mockoidc.MockUser{Subject: "sub-bo", PreferredUsername: "bo"} }

	// Capture a real callback URL, then replay it.
	rig.op.QueueUser(user())
	c := rig.browser()
	var callback string
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if strings.HasSuffix(req.URL.Path, "/auth/oidc/callback") && callback == "" {
			callback = req.URL.String()
		}
		if req.URL.Path == "/" {
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, err := c.Get(rig.srv.URL + "/api/v1/auth/oidc/start")
	if err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("first sign-in: %v %v", err, resp)
	}
	resp.Body.Close()
	// The same browser replays the callback: the state was taken.
	u, _ := url.Parse(rig.srv.URL)
	c.Jar.SetCookies(u, []*http.Cookie{{Name: "keygate_sso", Value: mustQuery(t, callback, "state"), Path: "/api/v1/auth/oidc/"}})
	if resp := get(t, c, callback); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("replayed state: %d", resp.StatusCode)
	}
	// Another browser (no state cookie) cannot finish someone's sign-in.
	rig.op.QueueUser(user())
	stranger := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	start := get(t, rig.browserNoFollow(), rig.srv.URL+"/api/v1/auth/oidc/start")
	authz := get(t, stranger, start.Header.Get("Location"))
	if resp := get(t, stranger, authz.Header.Get("Location")); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a callback in a browser that did not start the sign-in: %d", resp.StatusCode)
	}

	// Wrong audience.
	rig.audience.Store("another-client")
	if resp := rig.signIn(t, rig.browser(), user()); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("ID token for another client: %d", resp.StatusCode)
	}
	rig.audience.Store("")
	// Expired: the provider's clock is two hours behind.
	rig.op.FastForward(-2 * time.Hour)
	if resp := rig.signIn(t, rig.browser(), user()); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("expired ID token: %d", resp.StatusCode)
	}
	rig.op.FastForward(2 * time.Hour)

	// Another sign-in's nonce: the browser goes to the provider with the
	// state keygate gave it but a nonce of the attacker's choosing.
	rig.op.QueueUser(user())
	b := rig.browserNoFollow()
	start = get(t, b, rig.srv.URL+"/api/v1/auth/oidc/start")
	loc, _ := url.Parse(start.Header.Get("Location"))
	q := loc.Query()
	q.Set("nonce", "a-nonce-from-another-sign-in")
	q.Del("code_challenge")
	q.Del("code_challenge_method")
	loc.RawQuery = q.Encode()
	authz = get(t, b, loc.String())
	if resp := get(t, b, authz.Header.Get("Location")); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("ID token with another sign-in's nonce: %d", resp.StatusCode)
	}

	var reasons []string
	for _, ev := range rig.trail.find("admin.signin") {
		reasons = append(reasons, ev.Decision+":"+ev.Fields["reason"])
	}
	if got := strings.Join(reasons, " "); got != "allow: deny:state_unknown deny:state_mismatch deny:id_token_refused deny:id_token_refused deny:id_token_refused" {
		t.Fatalf("sign-ins on the trail: %s", got)
	}
}

// TestOIDCForTheCLI: the CLI's loopback flow hands back a one-time code,
// which only the holder of the CLI's verifier trades for a session, once.
func TestOIDCForTheCLI(t *testing.T) {
	rig := newOIDCRig(t, admin.SSOPolicy{CreateUsers: true, Mapping: sso.Mapping{DefaultRole: rbac.Viewer}})
	loop := httptest.NewServer(http.NotFoundHandler())
	defer loop.Close()
	verifier := "a-verifier-the-cli-made-with-at-least-43-characters"
	q := url.Values{"cli_redirect": {loop.URL + "/callback"}, "cli_challenge": {sso.S256(verifier)}}
	if resp := get(t, rig.browserNoFollow(), rig.srv.URL+"/api/v1/auth/oidc/start?"+url.Values{"cli_redirect": {"https://evil.example/cb"}, "cli_challenge": {sso.S256(verifier)}}.Encode()); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a CLI redirect off this machine: %d", resp.StatusCode)
	}
	rig.op.QueueUser(&mockoidc.MockUser{Subject: "sub-cy", PreferredUsername: "cy"})
	c := rig.browser()
	var code string
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Host == strings.TrimPrefix(loop.URL, "http://") {
			code = req.URL.Query().Get("code")
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, err := c.Get(rig.srv.URL + "/api/v1/auth/oidc/start?" + q.Encode())
	if err != nil || code == "" {
		t.Fatalf("no code reached the CLI's listener: %v %v", err, resp)
	}
	resp.Body.Close()
	post := func(body string) *http.Response {
		resp, err := http.Post(rig.srv.URL+"/api/v1/auth/oidc/exchange", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if resp := post(`{"code":"` + code + `","verifier":"not-the-verifier"}`); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("exchange with a wrong verifier: %d", resp.StatusCode)
	}
	// The wrong try used the code up: a stolen code is worth one guess.
	if resp := post(`{"code":"` + code + `","verifier":"` + verifier + `"}`); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("exchange after a wrong try: %d", resp.StatusCode)
	}

	rig.op.QueueUser(&mockoidc.MockUser{Subject: "sub-cy", PreferredUsername: "cy"})
	code = ""
	resp, _ = c.Get(rig.srv.URL + "/api/v1/auth/oidc/start?" + q.Encode())
	resp.Body.Close()
	resp = post(`{"code":"` + code + `","verifier":"` + verifier + `"}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("exchange: %d", resp.StatusCode)
	}
	var out adminapi.LoginResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || !strings.HasPrefix(out.Token, "kg_session_") || out.Session.Method != "oidc" || out.Session.Name != "cy" {
		t.Fatalf("exchange answered %+v (%v)", out, err)
	}
}

func (rig *oidcRig) browserNoFollow() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u string) *http.Response {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func mustQuery(t *testing.T, raw, name string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Query().Get(name) == "" {
		t.Fatalf("no %s in %q", name, raw)
	}
	return u.Query().Get(name)
}

// amrUser is a provider user whose ID token says how they authenticated
// (the amr claim, RFC 8176), as Okta, Entra ID and Keycloak send it.
type amrUser struct {
	*mockoidc.MockUser
	amr []string
}

func (u amrUser) Claims(scope []string, base *mockoidc.IDTokenClaims) (jwt.Claims, error) {
	c, err := u.MockUser.Claims(scope, base)
	if err != nil {
		return nil, err
	}
	raw, _ := json.Marshal(c)
	var m jwt.MapClaims
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	m["amr"] = u.amr
	return m, nil
}

// TestOIDCProviderMFA: with require_provider_mfa, a person whose role
// needs a second factor signs in only when the provider's ID token says
// one was used; the session records it. A role that needs none signs in
// with a password at the provider.
func TestOIDCProviderMFA(t *testing.T) {
	pol := groupPolicy
	pol.RequireProviderMFA = true
	pol.Mapping.Groups = map[string]sso.GroupMapping{"platform-admins": {Role: rbac.Admin}, "readers": {Role: rbac.Viewer}}
	pol.Mapping.RolePrecedence = append(pol.Mapping.RolePrecedence, rbac.Viewer)
	rig := newOIDCRig(t, pol)
	admins := func(amr ...string) mockoidc.User {
		return amrUser{&mockoidc.MockUser{Subject: "sub-ann", PreferredUsername: "ann", Groups: []string{"platform-admins"}}, amr}
	}

	c := rig.browser()
	rig.op.QueueUser(admins("pwd"))
	resp, err := c.Get(rig.srv.URL + "/api/v1/auth/oidc/start")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "second factor") {
		t.Fatalf("an admin who signed in with a password only: %d %s", resp.StatusCode, body)
	}
	if code, _ := rig.whoami(t, c); code != http.StatusUnauthorized {
		t.Fatalf("refused sign-in left a session: whoami %d", code)
	}

	c = rig.browser()
	rig.op.QueueUser(admins("pwd", "otp"))
	if resp, err = c.Get(rig.srv.URL + "/api/v1/auth/oidc/start"); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code, who := rig.whoami(t, c); code != 200 || who.Name != "ann" || who.Via != "session (oidc+provider)" {
		t.Fatalf("an admin with a second factor at the provider: %d %+v", code, who)
	}

	// A viewer (read-only: no MFA role by default) needs no second factor.
	c = rig.browser()
	rig.op.QueueUser(amrUser{&mockoidc.MockUser{Subject: "sub-vi", PreferredUsername: "vi", Groups: []string{"readers"}}, []string{"pwd"}})
	if resp, err = c.Get(rig.srv.URL + "/api/v1/auth/oidc/start"); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code, who := rig.whoami(t, c); code != 200 || who.Name != "vi" || who.Via != "session (oidc)" {
		t.Fatalf("a viewer with a password at the provider: %d %+v", code, who)
	}
	var reasons []string
	for _, ev := range rig.trail.find("admin.signin") {
		reasons = append(reasons, ev.Decision+":"+ev.Fields["reason"]+":"+ev.Fields["mfa"])
	}
	if strings.Join(reasons, " ") != "deny:mfa_missing: allow::provider allow::" {
		t.Fatalf("sign-ins on the trail: %v", reasons)
	}
}
