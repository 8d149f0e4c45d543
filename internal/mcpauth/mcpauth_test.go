package mcpauth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/limit"
	"github.com/keygate/keygate/internal/store/storetest"
)

func TestValidRedirect(t *testing.T) {
	for uri, ok := range map[string]bool{
		"https://app.example/cb":                           true,
		"http://127.0.0.1:3000/callback":                   true,
		"http://127.9.9.9/cb":                              true,
		"http://[::1]:80/cb":                               true,
		"http://localhost:8080/cb":                         true,
		"http://app.example/cb":                            false,
		"http://10.0.0.1/cb":                               false,
		"https://app.example/cb#x":                         false,
		"https://user@app.example/cb":                      false,
		"javascript:alert(1)":                              false,
		"cursor://callback":                                false,
		"/relative":                                        false,
		"https://a.example/" + strings.Repeat("x", maxURI): false,
	} {
		if err := validRedirect(uri); (err == nil) != ok {
			t.Errorf("validRedirect(%q) = %v, want ok %v", uri, err, ok)
		}
	}
}

func TestValidRegistration(t *testing.T) {
	six := make([]string, MaxRedirectURIs+1)
	for i := range six {
		six[i] = "https://app.example/cb"
	}
	for name, tc := range map[string]struct {
		req registration
		ok  bool
	}{
		"minimal":               {registration{RedirectURIs: []string{"http://127.0.0.1/cb"}}, true},
		"no redirect":           {registration{}, false},
		"too many redirects":    {registration{RedirectURIs: six}, false},
		"long name":             {registration{RedirectURIs: []string{"https://a.example/cb"}, ClientName: strings.Repeat("n", maxName+1)}, false},
		"control in name":       {registration{RedirectURIs: []string{"https://a.example/cb"}, ClientName: "a\x07b"}, false},
		"implicit grant":        {registration{RedirectURIs: []string{"https://a.example/cb"}, GrantTypes: []string{"implicit"}}, false},
		"token response":        {registration{RedirectURIs: []string{"https://a.example/cb"}, ResponseTypes: []string{"token"}}, false},
		"confidential client":   {registration{RedirectURIs: []string{"https://a.example/cb"}, TokenEndpointAuthMethod: "client_secret_basic"}, false},
		"javascript client_uri": {registration{RedirectURIs: []string{"https://a.example/cb"}, ClientURI: "javascript:alert(1)"}, false},
	} {
		if err := validRegistration(&tc.req); (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok %v", name, err, tc.ok)
		}
	}
}

func TestMCPResource(t *testing.T) {
	for raw, ok := range map[string]bool{
		"https://kg.example/mcp":       true,
		"http://127.0.0.1:8787/mcp/gh": true,
		"https://kg.example/mcp/":      false,
		"https://kg.example/mcp/a/b":   false,
		"https://kg.example/mcp?x=1":   false,
		"https://kg.example/mcp#f":     false,
		"https://kg.example/v1/chat":   false,
		"https://u@kg.example/mcp":     false,
		"ftp://kg.example/mcp":         false,
		"https://kg.example/mcp/a%2Fb": false,
		"https://kg.example/mcpx":      false,
		"":                             false,
	} {
		if _, got := MCPResource(raw); got != ok {
			t.Errorf("MCPResource(%q) = %v, want %v", raw, got, ok)
		}
	}
}

func TestVerifierMatches(t *testing.T) {
	v := strings.Repeat("a", 43)
	sum := sha256.Sum256([]byte(v))
	ch := base64.RawURLEncoding.EncodeToString(sum[:])
	if !verifierMatches(v, ch) {
		t.Fatal("the right verifier does not match")
	}
	for _, bad := range []string{v + "b", strings.Repeat("a", 42), v[:42] + "!", strings.Repeat("a", 129), ch} {
		if verifierMatches(bad, ch) {
			t.Errorf("verifier %q matches", bad)
		}
	}
}

type nobody struct{}

func (nobody) SignedIn(*http.Request) (Person, error) { return Person{}, ErrNotSignedIn }

type noKeys struct{}

func (noKeys) OwnedKeys(context.Context, string, time.Time) ([]Key, error) { return nil, nil }

func newServer(t *testing.T, perHour int64) *Server {
	t.Helper()
	h, err := apikey.NewHasher([]byte(strings.Repeat("p", 32)))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Store: storetest.Open(t, storetest.SQLiteURL(t)), People: nobody{}, Keys: noKeys{}, Codes: h,
		CSRFKey: []byte(strings.Repeat("k", 32)), AuthorizeURL: "http://127.0.0.1:8788/oauth/authorize",
		Limiter: limit.NewMemory(), RegistrationsPerHour: perHour})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRegisterAndAuthorizeRequests: a registration is stored and
// throttled per address; an authorization request is refused on a page
// for an unknown client or redirect URI, sent back to the client for a
// missing or plain PKCE challenge or a foreign resource, and otherwise
// sends a person who is not signed in to the sign-in page and back.
func TestRegisterAndAuthorizeRequests(t *testing.T) {
	s := newServer(t, 2)
	register := func(body string) (int, map[string]any) {
		w := httptest.NewRecorder()
		s.ServeRegister(w, httptest.NewRequest("POST", RegisterPath, strings.NewReader(body)))
		var m map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &m)
		return w.Code, m
	}
	code, m := register(`{"redirect_uris":["http://127.0.0.1:4000/cb"],"client_name":"Inspector","logo_uri":"https://x.example/l.png","scope":"x"}`)
	if code != http.StatusCreated || m["token_endpoint_auth_method"] != "none" || !strings.HasPrefix(m["client_id"].(string), "mcp_") {
		t.Fatalf("register: %d %v", code, m)
	}
	id := m["client_id"].(string)
	if c, err := s.o.Store.GetOAuthClient(context.Background(), id); err != nil || c.Name != "Inspector" {
		t.Fatalf("stored client: %+v %v", c, err)
	}
	if code, m := register(`{"redirect_uris":["http://127.0.0.1:4000/cb"]}`); code != http.StatusCreated {
		t.Fatalf("second registration: %d %v", code, m)
	}
	if code, m := register(`{"redirect_uris":["http://127.0.0.1:4000/cb"]}`); code != http.StatusTooManyRequests || m["error"] == nil {
		t.Fatalf("third registration in an hour: %d %v", code, m)
	}

	ch := base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	base := url.Values{"response_type": {"code"}, "client_id": {id}, "redirect_uri": {"http://127.0.0.1:4000/cb"}, "state": {"s1"},
		"code_challenge": {ch}, "code_challenge_method": {"S256"}, "resource": {"http://127.0.0.1:8787/mcp"}}
	get := func(mod func(url.Values)) *httptest.ResponseRecorder {
		q := url.Values{}
		for k, v := range base {
			q[k] = append([]string(nil), v...)
		}
		mod(q)
		w := httptest.NewRecorder()
		s.ServeAuthorize(w, httptest.NewRequest("GET", AuthorizePath+"?"+q.Encode(), nil))
		return w
	}
	for name, tc := range map[string]struct {
		mod      func(url.Values)
		status   int
		location string // prefix, or "" for a page
	}{
		"unknown client":     {func(q url.Values) { q.Set("client_id", "mcp_x") }, http.StatusBadRequest, ""},
		"unknown redirect":   {func(q url.Values) { q.Set("redirect_uri", "https://evil.example/cb") }, http.StatusBadRequest, ""},
		"no PKCE":            {func(q url.Values) { q.Del("code_challenge") }, http.StatusSeeOther, "http://127.0.0.1:4000/cb?error=invalid_request"},
		"plain PKCE":         {func(q url.Values) { q.Set("code_challenge_method", "plain") }, http.StatusSeeOther, "http://127.0.0.1:4000/cb?error=invalid_request"},
		"implicit":           {func(q url.Values) { q.Set("response_type", "token") }, http.StatusSeeOther, "http://127.0.0.1:4000/cb?error=unsupported_response_type"},
		"no resource":        {func(q url.Values) { q.Del("resource") }, http.StatusSeeOther, "http://127.0.0.1:4000/cb?error=invalid_target"},
		"model resource":     {func(q url.Values) { q.Set("resource", "http://127.0.0.1:8787/v1/chat/completions") }, http.StatusSeeOther, "http://127.0.0.1:4000/cb?error=invalid_target"},
		"bad scope":          {func(q url.Values) { q.Set("scope", "admin") }, http.StatusSeeOther, "http://127.0.0.1:4000/cb?error=invalid_scope"},
		"not signed in":      {func(url.Values) {}, http.StatusSeeOther, "/signin?next=%2Foauth%2Fauthorize%3F"},
		"offline_access too": {func(q url.Values) { q.Set("scope", "offline_access tool:gh/*") }, http.StatusSeeOther, "/signin?next="},
	} {
		w := get(tc.mod)
		loc := w.Header().Get("Location")
		if w.Code != tc.status || !strings.HasPrefix(loc, tc.location) || (tc.location == "" && loc != "") {
			t.Errorf("%s: %d %q, want %d %q", name, w.Code, loc, tc.status, tc.location)
		}
		if strings.HasPrefix(loc, "http://127.0.0.1:4000/cb") && (!strings.Contains(loc, "state=s1") || !strings.Contains(loc, "iss=")) {
			t.Errorf("%s: the error redirect %q lacks state or iss", name, loc)
		}
	}

	// Redeeming: an unknown code is invalid_grant, an unknown client invalid_client.
	_, err := s.Redeem(context.Background(), url.Values{"code": {"kgc_x"}, "client_id": {id}, "code_verifier": {strings.Repeat("a", 43)}}, "http://127.0.0.1:8787")
	var te *TokenError
	if !errors.As(err, &te) || te.Code != "invalid_grant" {
		t.Fatalf("an unknown code: %v", err)
	}
	_, err = s.Redeem(context.Background(), url.Values{"code": {"kgc_x"}, "client_id": {"mcp_x"}, "code_verifier": {strings.Repeat("a", 43)}}, "http://127.0.0.1:8787")
	if !errors.As(err, &te) || te.Code != "invalid_client" || te.Status != http.StatusUnauthorized {
		t.Fatalf("an unknown client: %v", err)
	}
	_, err = s.Redeem(context.Background(), url.Values{"code": {"kgc_x"}, "client_id": {id}}, "http://127.0.0.1:8787")
	if !errors.As(err, &te) || te.Code != "invalid_request" {
		t.Fatalf("no verifier: %v", err)
	}
}

type alice struct{ session string }

func (a alice) SignedIn(*http.Request) (Person, error) {
	return Person{ID: "usr_a", Name: "alice", AMR: []string{"password", "totp"}, Session: a.session}, nil
}

type aliceKeys struct{}

func (aliceKeys) OwnedKeys(_ context.Context, userID string, _ time.Time) ([]Key, error) {
	if userID != "usr_a" {
		return nil, nil
	}
	return []Key{{ID: "key_a", Name: "alice-agent", Tools: []string{"github/*", "!github/delete_*"}}}, nil
}

// TestConsentForm: the consent page names the client, where it goes back
// to and the tools; its form is good only with the CSRF token minted for
// that session and request, and only for a key the person may use.
func TestConsentForm(t *testing.T) {
	s := newServer(t, 10)
	s.o.People, s.o.Keys = alice{session: "ses_1"}, aliceKeys{}
	w := httptest.NewRecorder()
	s.ServeRegister(w, httptest.NewRequest("POST", RegisterPath, strings.NewReader(`{"redirect_uris":["http://127.0.0.1:4000/cb"],"client_name":"<b>Inspector</b>"}`)))
	var reg struct {
		ClientID string `json:"client_id"`
	}
	_ = json.Unmarshal(w.Body.Bytes(), &reg)
	q := url.Values{"response_type": {"code"}, "client_id": {reg.ClientID}, "redirect_uri": {"http://127.0.0.1:4000/cb"}, "state": {"s"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(make([]byte, 32))}, "code_challenge_method": {"S256"},
		"resource": {"http://127.0.0.1:8787/mcp"}, "scope": {"tool:github/echo"}}
	w = httptest.NewRecorder()
	s.ServeAuthorize(w, httptest.NewRequest("GET", AuthorizePath+"?"+q.Encode(), nil))
	page := w.Body.String()
	if w.Code != http.StatusOK || !strings.Contains(page, "&lt;b&gt;Inspector&lt;/b&gt;") || !strings.Contains(page, "127.0.0.1:4000") ||
		!strings.Contains(page, "tool:github/echo") || !strings.Contains(page, "alice-agent") || strings.Contains(page, "<b>Inspector") {
		t.Fatalf("consent page %d: %s", w.Code, page)
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "form-action 'self' http://127.0.0.1:4000") {
		t.Fatalf("consent page CSP %q", csp)
	}
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if csrf == nil {
		t.Fatal("the consent form carries no CSRF token")
	}
	post := func(mod func(url.Values)) *httptest.ResponseRecorder {
		f := url.Values{"decision": {"allow"}, "key": {"key_a"}, "csrf": {csrf[1]}}
		for k, v := range q {
			f[k] = v
		}
		mod(f)
		r := httptest.NewRequest("POST", AuthorizePath, strings.NewReader(f.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		s.ServeAuthorize(w, r)
		return w
	}
	if w := post(func(f url.Values) { f.Del("csrf") }); w.Code != http.StatusForbidden {
		t.Fatalf("no CSRF token: %d", w.Code)
	}
	if w := post(func(f url.Values) { f.Set("scope", "tool:github/*") }); w.Code != http.StatusForbidden {
		t.Fatalf("the token of another request (a wider scope): %d", w.Code)
	}
	s.o.People = alice{session: "ses_2"}
	if w := post(func(url.Values) {}); w.Code != http.StatusForbidden {
		t.Fatalf("the token of another session: %d", w.Code)
	}
	s.o.People = alice{session: "ses_1"}
	if w := post(func(f url.Values) { f.Set("key", "key_someone_else") }); w.Code != http.StatusBadRequest {
		t.Fatalf("a key not the person's: %d", w.Code)
	}
	w = post(func(url.Values) {})
	loc, _ := url.Parse(w.Header().Get("Location"))
	if w.Code != http.StatusSeeOther || loc.Host != "127.0.0.1:4000" || !strings.HasPrefix(loc.Query().Get("code"), "kgc_") || loc.Query().Get("state") != "s" ||
		loc.Query().Get("iss") != "http://127.0.0.1:8787" {
		t.Fatalf("allow: %d %s", w.Code, loc)
	}
	// The code is stored as an HMAC, bound to what it was asked for.
	h := s.o.Codes.Hash(loc.Query().Get("code"))
	c, err := s.o.Store.UseOAuthCode(context.Background(), h[:], "fam_t", time.Now())
	if err != nil || c.KeyID != "key_a" || c.UserID != "usr_a" || c.Resource != "http://127.0.0.1:8787/mcp" || c.ClientID != reg.ClientID ||
		!strings.Contains(string(c.Scope), `"tools":["github/echo"]`) || c.ExpiresAt.Sub(c.CreatedAt) > CodeLifetime {
		t.Fatalf("stored code %+v %v", c, err)
	}
}

// TestClientIDMetadataDocument: a client whose client_id is the https URL
// of its metadata document needs no registration; the document must name
// itself and list the redirect URI; the consent page names its host; its
// code redeems with that client_id.
func TestClientIDMetadataDocument(t *testing.T) {
	var docs map[string]string
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, ok := docs[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(d))
	}))
	t.Cleanup(ts.Close)
	good := ts.URL + "/client.json"
	docs = map[string]string{
		"/client.json": `{"client_id":"` + good + `","client_name":"Doc Agent","redirect_uris":["http://127.0.0.1:4100/cb"],"token_endpoint_auth_method":"none"}`,
		"/other.json":  `{"client_id":"https://elsewhere.example/c.json","redirect_uris":["http://127.0.0.1:4100/cb"]}`,
		"/evil.json":   `{"client_id":"` + ts.URL + `/evil.json","redirect_uris":["http://evil.example/cb"]}`,
	}
	s := newServer(t, 10)
	s.o.People, s.o.Keys, s.o.Documents = alice{session: "ses_1"}, aliceKeys{}, ts.Client()

	w := httptest.NewRecorder()
	s.ServeMetadata(w, httptest.NewRequest("GET", MetadataPath, nil))
	var md map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &md); err != nil || md["client_id_metadata_document_supported"] != true {
		t.Fatalf("metadata: %v %s", err, w.Body)
	}
	verifier := strings.Repeat("v", 43)
	sum := sha256.Sum256([]byte(verifier))
	q := func(id string) url.Values {
		return url.Values{"response_type": {"code"}, "client_id": {id}, "redirect_uri": {"http://127.0.0.1:4100/cb"}, "state": {"s"},
			"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}, "resource": {"http://127.0.0.1:8787/mcp"}}
	}
	for name, id := range map[string]string{"not its own client_id": ts.URL + "/other.json", "a plain-http redirect": ts.URL + "/evil.json", "no document": ts.URL + "/none.json"} {
		w := httptest.NewRecorder()
		s.ServeAuthorize(w, httptest.NewRequest("GET", AuthorizePath+"?"+q(id).Encode(), nil))
		if w.Code != http.StatusBadRequest || w.Header().Get("Location") != "" || !strings.Contains(w.Body.String(), "metadata document") {
			t.Errorf("%s: %d %q %s", name, w.Code, w.Header().Get("Location"), w.Body)
		}
	}
	w = httptest.NewRecorder()
	s.ServeAuthorize(w, httptest.NewRequest("GET", AuthorizePath+"?"+q(good).Encode(), nil))
	page := w.Body.String()
	host := strings.TrimPrefix(ts.URL, "https://")
	if w.Code != http.StatusOK || !strings.Contains(page, "Doc Agent") || !strings.Contains(page, "describes itself from <strong>"+host) {
		t.Fatalf("consent page %d: %s", w.Code, page)
	}
	f := q(good)
	f.Set("decision", "allow")
	f.Set("key", "key_a")
	f.Set("csrf", regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)[1])
	r := httptest.NewRequest("POST", AuthorizePath, strings.NewReader(f.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w = httptest.NewRecorder()
	s.ServeAuthorize(w, r)
	loc, _ := url.Parse(w.Header().Get("Location"))
	code := loc.Query().Get("code")
	if code == "" {
		t.Fatalf("allow: %d %s", w.Code, loc)
	}
	g, err := s.Redeem(context.Background(), url.Values{"code": {code}, "client_id": {good}, "redirect_uri": {"http://127.0.0.1:4100/cb"},
		"code_verifier": {verifier}, "resource": {"http://127.0.0.1:8787/mcp"}}, "http://127.0.0.1:8787")
	if err != nil || g.KeyID != "key_a" || g.ClientID != good || g.Scope.Resource != "http://127.0.0.1:8787/mcp" {
		t.Fatalf("redeem: %+v %v", g, err)
	}
}
