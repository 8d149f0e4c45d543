package main

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/keygate/keygate/internal/fakeprovider"
)

type tokenAnswer struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int    `json:"expires_in"`
	RefreshToken    string `json:"refresh_token"`
	Scope           string `json:"scope"`
	Error           string `json:"error"`
}

func postForm(t *testing.T, u string, form url.Values, bearer string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func exchange(t *testing.T, gw string, form url.Values) (int, tokenAnswer) {
	t.Helper()
	code, body := postForm(t, gw+"/oauth/token", form, "")
	var a tokenAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("token answer %d %s", code, body)
	}
	return code, a
}

// TestTokenExchange walks a key through the short-lived token flow: RFC
// 8693 exchange with a narrower scope, use at the gateway, refresh with
// rotation, reuse detection, revocation, introspection and the JWKS a
// resource server verifies with.
func TestTokenExchange(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	in := start(t, cfg, "")
	up := newUpstreams(t, fakeprovider.Options{}, fakeprovider.Options{})
	in.register(up)
	key := in.createKey("--name", "agent")
	gw := in.addrs.Gateway
	chat := func(model string) string {
		return `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}]}`
	}

	code, a := exchange(t, gw, url.Values{"grant_type": {grantTE}, "subject_token": {key}, "subject_token_type": {"urn:keygate:params:oauth:token-type:api-key"}, "scope": {"model:gpt-4o-mini"}})
	if code != 200 || a.TokenType != "Bearer" || a.IssuedTokenType != "urn:ietf:params:oauth:token-type:access_token" ||
		a.ExpiresIn != 900 || !strings.HasPrefix(a.RefreshToken, "kgr_") || a.Scope != "model:gpt-4o-mini" {
		t.Fatalf("exchange: %d %+v", code, a)
	}
	if c, body := postJSON(t, gw+"/v1/chat/completions", a.AccessToken, chat("gpt-4o-mini")); c != 200 {
		t.Fatalf("the access token at the gateway: %d %s", c, body)
	}
	reqs := up.openai.Requests()
	if reqs[len(reqs)-1].Header.Get("Authorization") != "Bearer "+up.openaiKey {
		t.Fatal("the upstream did not get the real key")
	}
	// The token is narrower than its key.
	if c, body := postJSON(t, gw+"/v1/chat/completions", a.AccessToken, chat("gpt-4o")); c != 403 || !strings.Contains(body, "model_not_allowed") {
		t.Fatalf("a model outside the token's scope: %d %s", c, body)
	}
	if c, _ := postJSON(t, gw+"/v1/chat/completions", key, chat("gpt-4o")); c != 200 {
		t.Fatalf("the key itself still may: %d", c)
	}

	// A token's own, lower limits count per token family, on top of its key's.
	_, lim := exchange(t, gw, url.Values{"grant_type": {grantTE}, "subject_token": {key}, "subject_token_type": {"urn:keygate:params:oauth:token-type:api-key"}, "scope": {"rpm:2"}})
	if lim.Scope != "rpm:2" {
		t.Fatalf("scope of a limited token: %q", lim.Scope)
	}
	for i, want := range []int{200, 200, 429} {
		if c, body := postJSON(t, gw+"/v1/chat/completions", lim.AccessToken, chat("gpt-4o-mini")); c != want {
			t.Fatalf("request %d with an rpm:2 token: %d, want %d: %s", i+1, c, want, body)
		}
	}
	if c, _ := postJSON(t, gw+"/v1/chat/completions", key, chat("gpt-4o-mini")); c != 200 {
		t.Fatalf("the key itself is not held to its token's limits: %d", c)
	}
	if c, a := exchange(t, gw, url.Values{"grant_type": {grantTE}, "subject_token": {key}, "subject_token_type": {"urn:keygate:params:oauth:token-type:api-key"}, "scope": {"rpm:-1"}}); c != 400 || a.Error != "invalid_scope" {
		t.Fatalf("a bad limit in the scope: %d %+v", c, a)
	}

	// Wrong inputs.
	if c, a := exchange(t, gw, url.Values{"grant_type": {grantTE}, "subject_token": {key}, "subject_token_type": {"urn:ietf:params:oauth:token-type:jwt"}}); c != 400 || a.Error != "invalid_request" {
		t.Fatalf("wrong subject_token_type: %d %+v", c, a)
	}
	if c, a := exchange(t, gw, url.Values{"grant_type": {grantTE}, "subject_token": {"kg_live_notakey"}, "subject_token_type": {"urn:keygate:params:oauth:token-type:api-key"}}); c != 401 || a.Error != "invalid_client" {
		t.Fatalf("bad key: %d %+v", c, a)
	}
	if c, a := exchange(t, gw, url.Values{"grant_type": {"password"}}); c != 400 || a.Error != "unsupported_grant_type" {
		t.Fatalf("password grant: %d %+v", c, a)
	}
	// alg none, made by hand from the real token's payload.
	parts := strings.Split(a.AccessToken, ".")
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt"}`)) + "." + parts[1] + "."
	if c, _ := postJSON(t, gw+"/v1/chat/completions", none, chat("gpt-4o-mini")); c != 401 {
		t.Fatalf("alg none: %d", c)
	}

	// A resource server verifies with the JWKS.
	resp, err := http.Get(gw + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil || len(set.Keys) == 0 {
		t.Fatalf("jwks: %v %+v", err, set)
	}
	resp.Body.Close()
	parsed, err := jwt.ParseSigned(a.AccessToken, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		t.Fatal(err)
	}
	var claims jwt.Claims
	if err := parsed.Claims(set.Key(parsed.Headers[0].KeyID)[0].Key, &claims); err != nil || claims.Subject == "" {
		t.Fatalf("verifying with the JWKS: %v", err)
	}

	// Introspection, by a resource server holding a keygate key.
	rs := in.createKey("--name", "resource-server")
	code, body := postForm(t, gw+"/oauth/introspect", url.Values{"token": {a.AccessToken}}, rs)
	var intro map[string]any
	_ = json.Unmarshal(body, &intro)
	if code != 200 || intro["active"] != true || intro["client_id"] != "agent" {
		t.Fatalf("introspection: %d %s", code, body)
	}
	if c, _ := postForm(t, gw+"/oauth/introspect", url.Values{"token": {a.AccessToken}}, ""); c != 401 {
		t.Fatalf("introspection without a credential: %d", c)
	}

	// Refresh rotates; the spent refresh token presented again revokes the
	// family, and with it the newer access token, within a second.
	code, b := exchange(t, gw, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {a.RefreshToken}})
	if code != 200 || b.RefreshToken == a.RefreshToken || b.Scope != "model:gpt-4o-mini" {
		t.Fatalf("refresh: %d %+v", code, b)
	}
	if c, _ := postJSON(t, gw+"/v1/chat/completions", b.AccessToken, chat("gpt-4o-mini")); c != 200 {
		t.Fatalf("the refreshed token: %d", c)
	}
	if c, r := exchange(t, gw, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {a.RefreshToken}}); c != 400 || r.Error != "invalid_grant" {
		t.Fatalf("reused refresh token: %d %+v", c, r)
	}
	deadline := time.Now().Add(time.Second)
	for {
		c, _ := postJSON(t, gw+"/v1/chat/completions", b.AccessToken, chat("gpt-4o-mini"))
		if c == 401 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the family's access token still works a second after reuse was detected (%d)", c)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c, _ := exchange(t, gw, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {b.RefreshToken}}); c != 400 {
		t.Fatalf("the family's newest refresh token after reuse: %d", c)
	}
	// The log is written in batches: the family is refused before the
	// warning reaches it.
	for deadline := time.Now().Add(2 * time.Second); !strings.Contains(in.stderr.String(), "spent refresh token was presented again"); {
		if time.Now().After(deadline) {
			t.Fatal("refresh token reuse was not recorded")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// RFC 7009 revocation of an access token, then of the key itself.
	_, c2 := exchange(t, gw, url.Values{"grant_type": {grantTE}, "subject_token": {key}, "subject_token_type": {"urn:keygate:params:oauth:token-type:api-key"}})
	if c, _ := postForm(t, gw+"/oauth/revoke", url.Values{"token": {c2.AccessToken}}, ""); c != 200 {
		t.Fatalf("revoke: %d", c)
	}
	if c, _ := postJSON(t, gw+"/v1/chat/completions", c2.AccessToken, chat("gpt-4o-mini")); c != 401 {
		t.Fatalf("a revoked access token: %d", c)
	}
	code, body = postForm(t, gw+"/oauth/introspect", url.Values{"token": {c2.AccessToken}}, rs)
	intro = nil
	_ = json.Unmarshal(body, &intro)
	if intro["active"] != false {
		t.Fatalf("introspecting a revoked token: %d %s", code, body)
	}
	_, c3 := exchange(t, gw, url.Values{"grant_type": {grantTE}, "subject_token": {key}, "subject_token_type": {"urn:keygate:params:oauth:token-type:api-key"}})
	in.mustCLI(nil, "", "key", "revoke", "agent")
	if c, _ := postJSON(t, gw+"/v1/chat/completions", c3.AccessToken, chat("gpt-4o-mini")); c != 401 {
		t.Fatalf("a token of a revoked key: %d", c)
	}
	if c, _ := exchange(t, gw, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {c3.RefreshToken}}); c != 400 {
		t.Fatalf("refreshing a token of a revoked key: %d", c)
	}
	for _, secret := range []string{a.AccessToken, a.RefreshToken, b.RefreshToken} {
		if strings.Contains(in.stderr.String(), secret) {
			t.Fatal("a token reached the log")
		}
	}
	// Issuing, reuse and revocation are on the audit trail (written in
	// batches), without the tokens.
	var trail string
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		trail = in.mustCLI(nil, "", "--json", "audit", "search", "--since", "1h")
		if strings.Contains(trail, `"token.revoked"`) || time.Now().After(deadline) {
			break
		}
	}
	for _, typ := range []string{`"token.issued"`, `"token.refresh_reuse"`, `"token.revoked"`} {
		if !strings.Contains(trail, typ) {
			t.Errorf("no %s event on the audit trail", typ)
		}
	}
	if strings.Contains(trail, a.AccessToken) || strings.Contains(trail, a.RefreshToken) {
		t.Fatal("a token reached the audit trail")
	}
}

const grantTE = "urn:ietf:params:oauth:grant-type:token-exchange"

// TestTokenExchangeThroughADatabaseOutage: while keygate's database does
// not answer, a key keygate has lately seen is still exchanged for an
// access token that works, without a refresh token (one that cannot be
// recorded could not be checked for reuse); a refresh is refused as
// temporarily_unavailable with Retry-After, and works again once the
// database is back.
func TestTokenExchangeThroughADatabaseOutage(t *testing.T) {
	_, through, link := postgresThroughLink(t)
	cfg := testConfig(t, t.TempDir())
	cfg.Database = through
	in := start(t, cfg, "")
	up := newUpstreams(t, fakeprovider.Options{}, fakeprovider.Options{})
	in.register(up)
	key := in.createKey("--name", "outage-agent")
	gw := in.addrs.Gateway
	form := url.Values{"grant_type": {grantTE}, "subject_token": {key}, "subject_token_type": {"urn:keygate:params:oauth:token-type:api-key"}}
	code, before := exchange(t, gw, form)
	if code != 200 || before.RefreshToken == "" {
		t.Fatalf("exchange with the database up: %d %+v", code, before)
	}
	chat := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`

	link.Cut(true)
	code, during := exchange(t, gw, form)
	if code != 200 || during.AccessToken == "" || during.RefreshToken != "" {
		t.Fatalf("exchange with the database down: %d %+v, want an access token and no refresh token", code, during)
	}
	if c, body := postJSON(t, gw+"/v1/chat/completions", during.AccessToken, chat); c != 200 {
		t.Fatalf("the access token issued during the outage: %d %s", c, body)
	}
	c, body := postForm(t, gw+"/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {before.RefreshToken}}, "")
	if c != 503 || !strings.Contains(string(body), "temporarily_unavailable") {
		t.Fatalf("refresh with the database down: %d %s", c, body)
	}
	if c, a := exchange(t, gw, url.Values{"grant_type": {grantTE}, "subject_token": {"kg_test_notakeyatall"}, "subject_token_type": {"urn:keygate:params:oauth:token-type:api-key"}}); c == 200 || a.AccessToken != "" {
		t.Fatalf("a key keygate never issued, with the database down: %d %+v", c, a)
	}

	link.Cut(false)
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, after := exchange(t, gw, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {before.RefreshToken}})
		if code == 200 && after.AccessToken != "" && after.RefreshToken != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("refresh once the database is back: %d %+v", code, after)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestRotationPolicyFromTheCLI sets and removes an automatic rotation.
func TestRotationPolicyFromTheCLI(t *testing.T) {
	in := start(t, testConfig(t, t.TempDir()), "")
	in.createKey("--name", "bot", "--rotate-every", "30d", "--rotate-grace", "12h", "--deliver-to", "secret:agents/bot-key")
	var k struct {
		Rotation *struct {
			Every, Grace, DeliverTo string
			Next                    *time.Time
		} `json:"rotation"`
	}
	decodeJSON(t, in.mustCLI(nil, "", "--json", "key", "show", "bot"), &k)
	if k.Rotation == nil || k.Rotation.Every != "30d" || k.Rotation.Grace != "12h0m0s" || k.Rotation.Next == nil {
		t.Fatalf("rotation %+v", k.Rotation)
	}
	if _, _, err := in.cli(nil, "", "key", "create", "--name", "x", "--rotate-every", "30d"); err == nil {
		t.Fatal("a rotation without a destination was accepted")
	}
	in.mustCLI(nil, "", "key", "update", "bot", "--no-rotation")
	k.Rotation = nil
	decodeJSON(t, in.mustCLI(nil, "", "--json", "key", "show", "bot"), &k)
	if k.Rotation != nil {
		t.Fatalf("rotation after --no-rotation: %+v", k.Rotation)
	}
}
