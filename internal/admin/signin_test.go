package admin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/keygate/keygate/internal/admin"
	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/limit"
	"github.com/keygate/keygate/internal/otp"
	"github.com/keygate/keygate/internal/password"
	"github.com/keygate/keygate/internal/rbac"
	"github.com/keygate/keygate/internal/session"
	"github.com/keygate/keygate/internal/store"
)

// cheapPassword keeps the tests fast; the cost travels in the hash.
var cheapPassword = password.Params{Memory: 64, Time: 1, Threads: 1}

const testPassword = "a long test passphrase"

// signInHarness is the harness with sign-in on: sessions in its store on
// its clock, TOTP through the real verifier, a trail to read, and failed
// sign-ins throttled at max per 10 minutes.
func signInHarness(t *testing.T, max int64, mods ...func(*admin.SignIn)) (*harness, *eventLog) {
	t.Helper()
	trail := &eventLog{}
	h := newHarness(t, func(o *admin.Options) { o.Audit = trail })
	h.opts.SignIn = h.newSignIn(max, mods...)
	h.api = admin.New(h.opts)
	return h, trail
}

func (h *harness) newSignIn(max int64, mods ...func(*admin.SignIn)) *admin.SignIn {
	h.t.Helper()
	clock := func() time.Time { return h.now }
	sessions, err := session.New(h.st, h.hasher, session.Options{Now: clock})
	if err != nil {
		h.t.Fatal(err)
	}
	codes, err := otp.New(h.st, otp.Options{Now: clock})
	if err != nil {
		h.t.Fatal(err)
	}
	si := &admin.SignIn{Sessions: sessions, Store: h.st, OTP: codes, Password: cheapPassword,
		Failures: &admin.AuthFailureLimits{Limiter: limit.NewMemory(), Max: max, Window: 10 * time.Minute}}
	for _, m := range mods {
		m(si)
	}
	return si
}

// localUser stores a user with role and a password.
func (h *harness) localUser(name, role string) person {
	h.t.Helper()
	p := h.addPerson(name, store.UserPerson, role, nil, "")
	hash, err := password.Hash(testPassword, cheapPassword)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.st.SetUserPassword(context.Background(), p.id, hash, h.now); err != nil {
		h.t.Fatal(err)
	}
	return p
}

// send serves a request built by the caller, from addr (host:port).
func (h *harness) send(r *http.Request, addr string) *httptest.ResponseRecorder {
	if addr != "" {
		r.RemoteAddr = addr
	}
	w := httptest.NewRecorder()
	h.api.ServeHTTP(w, r)
	return w
}

func jsonRequest(method, path, body string) *http.Request {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	return r
}

// login signs name in with a password (and code) from addr.
func (h *harness) login(name, pw, code, addr string) *httptest.ResponseRecorder {
	b, _ := json.Marshal(adminapi.LoginRequest{User: name, Password: pw, OTP: code})
	return h.send(jsonRequest("POST", "/api/v1/auth/login", string(b)), addr)
}

func sessionToken(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("sign-in: %d %s", w.Code, w.Body)
	}
	var out adminapi.LoginResponse
	decode(t, w, &out)
	if !session.IsToken(out.Token) {
		t.Fatalf("sign-in answered no session token: %s", w.Body)
	}
	return out.Token
}

func withBearer(r *http.Request, tok string) *http.Request {
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}

// TestPasswordSignIn: a local user signs in with a password, uses the
// session as a bearer credential, sees it described, signs out; a wrong
// password and an unknown user get the same answer; all of it is on the
// trail with the method and the address.
func TestPasswordSignIn(t *testing.T) {
	h, trail := signInHarness(t, 100)
	h.localUser("alice", rbac.Viewer)

	tok := sessionToken(t, h.login("alice", testPassword, "", "198.51.100.7:4000"))
	w := h.send(withBearer(jsonRequest("GET", "/api/v1/whoami", ""), tok), "")
	var who adminapi.WhoAmI
	decode(t, w, &who)
	if who.Name != "alice" || who.Role != rbac.Viewer || who.Via != "session (password)" || !strings.HasPrefix(who.TokenID, "ses_") {
		t.Fatalf("whoami with a session: %+v", who)
	}
	var info adminapi.SessionInfo
	decode(t, h.send(withBearer(jsonRequest("GET", "/api/v1/auth/session", ""), tok), ""), &info)
	if info.Name != "alice" || info.Method != "password" || info.MFA != "" || !info.ExpiresAt.Equal(h.now.Add(12*time.Hour)) ||
		!info.IdleExpiresAt.Equal(h.now.Add(30*time.Minute)) || info.ID != who.TokenID {
		t.Fatalf("session info: %+v", info)
	}
	if stored, _ := h.st.GetSession(context.Background(), info.ID); strings.Contains(string(stored.Hash), tok) || len(stored.Hash) != 32 {
		t.Fatal("the session token is not stored as its keyed hash")
	}

	wrong := h.login("alice", "not the password at all", "", "198.51.100.7:4000")
	wantError(t, wrong, http.StatusUnauthorized, "unauthorized", "wrong user name or password")
	nobody := h.login("nobody", testPassword, "", "198.51.100.7:4000")
	wantError(t, nobody, http.StatusUnauthorized, "unauthorized", "wrong user name or password")
	if wrong.Body.String() != nobody.Body.String() {
		t.Fatalf("a wrong password and an unknown user are told apart: %s / %s", wrong.Body, nobody.Body)
	}

	w = h.send(withBearer(jsonRequest("POST", "/api/v1/auth/logout", ""), tok), "")
	if w.Code != http.StatusNoContent {
		t.Fatalf("logout: %d %s", w.Code, w.Body)
	}
	wantError(t, h.send(withBearer(jsonRequest("GET", "/api/v1/whoami", ""), tok), ""), http.StatusUnauthorized, "unauthorized", "sign in again")

	evs := trail.find("admin.signin")
	if len(evs) != 3 {
		t.Fatalf("%d sign-in events, want 3: %+v", len(evs), evs)
	}
	if ev := evs[0]; ev.Decision != "allow" || ev.Fields["method"] != "password" || ev.Client != "198.51.100.7" || ev.Actor != "usr_alice" {
		t.Fatalf("success event: %+v", ev)
	}
	if ev := evs[1]; ev.Decision != "deny" || ev.Fields["reason"] != "bad_password" || ev.Fields["user"] != "alice" {
		t.Fatalf("failure event: %+v", ev)
	}
	if ev := evs[2]; ev.Decision != "deny" || ev.Fields["reason"] != "unknown_user" {
		t.Fatalf("unknown user event: %+v", ev)
	}
	for _, ev := range trail.events {
		if b, _ := json.Marshal(ev); strings.Contains(string(b), testPassword) || strings.Contains(string(b), tok) {
			t.Fatalf("a password or session token reached the trail: %s", b)
		}
	}
}

// TestSessionCookie: a browser's session is an HttpOnly, SameSite=Strict
// cookie for the whole origin, not in the body; a change sent with it
// from another origin is refused, from the console's own origin it goes
// through.
func TestSessionCookie(t *testing.T) {
	h, _ := signInHarness(t, 100)
	h.localUser("bob", rbac.Viewer)
	w := h.send(jsonRequest("POST", "/api/v1/auth/login", `{"user":"bob","password":"`+testPassword+`","cookie":true}`), "")
	if w.Code != http.StatusOK {
		t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	var out adminapi.LoginResponse
	decode(t, w, &out)
	if out.Token != "" {
		t.Fatal("a cookie sign-in also put the token in the body, where a script can read it")
	}
	cs := w.Result().Cookies()
	if len(cs) != 1 || cs[0].Name != "keygate_session" || !cs[0].HttpOnly || cs[0].SameSite != http.SameSiteStrictMode || cs[0].Path != "/" || cs[0].Secure {
		t.Fatalf("session cookie %+v", cs)
	}
	c := cs[0]
	get := httptest.NewRequest("GET", "/api/v1/whoami", nil)
	get.AddCookie(c)
	if w := h.send(get, ""); w.Code != http.StatusOK {
		t.Fatalf("whoami with the cookie: %d %s", w.Code, w.Body)
	}
	for _, hdr := range [][2]string{{"Sec-Fetch-Site", "cross-site"}, {"Origin", "https://evil.example"}} {
		r := jsonRequest("POST", "/api/v1/auth/logout", "")
		r.AddCookie(c)
		r.Header.Set(hdr[0], hdr[1])
		wantError(t, h.send(r, ""), http.StatusForbidden, "forbidden", "cross-origin")
	}
	r := jsonRequest("POST", "/api/v1/auth/logout", "")
	r.AddCookie(c)
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	w = h.send(r, "")
	if w.Code != http.StatusNoContent {
		t.Fatalf("same-origin logout: %d %s", w.Code, w.Body)
	}
	if cs := w.Result().Cookies(); len(cs) != 1 || cs[0].MaxAge >= 0 {
		t.Fatalf("logout did not clear the cookie: %+v", cs)
	}
	// A cross-site page cannot sign the browser in as someone else.
	login := jsonRequest("POST", "/api/v1/auth/login", `{"user":"bob","password":"`+testPassword+`","cookie":true}`)
	login.Header.Set("Sec-Fetch-Site", "cross-site")
	wantError(t, h.send(login, ""), http.StatusForbidden, "forbidden", "cross-origin")

	// Secure on a TLS listener.
	h.opts.SignIn.TLS = true
	h.api = admin.New(h.opts)
	w = h.send(jsonRequest("POST", "/api/v1/auth/login", `{"user":"bob","password":"`+testPassword+`","cookie":true}`), "")
	if cs := w.Result().Cookies(); len(cs) != 1 || !cs[0].Secure {
		t.Fatalf("cookie on TLS: %+v", cs)
	}
}

// TestSessionTimeouts: a session ends when idle past its idle timeout,
// lives on while used, and ends at its absolute end whatever its use.
func TestSessionTimeouts(t *testing.T) {
	h, _ := signInHarness(t, 100)
	h.localUser("carol", rbac.Viewer)
	use := func(tok string) *httptest.ResponseRecorder {
		return h.send(withBearer(jsonRequest("GET", "/api/v1/whoami", ""), tok), "")
	}
	idle := sessionToken(t, h.login("carol", testPassword, "", ""))
	busy := sessionToken(t, h.login("carol", testPassword, "", ""))
	start := h.now
	for h.now.Add(20 * time.Minute).Before(start.Add(12 * time.Hour)) {
		h.now = h.now.Add(20 * time.Minute)
		if w := use(busy); w.Code != http.StatusOK {
			t.Fatalf("a session used every 20 minutes ended after %s: %s", h.now.Sub(start), w.Body)
		}
	}
	wantError(t, use(idle), http.StatusUnauthorized, "unauthorized", "expired")
	h.now = start.Add(12 * time.Hour)
	wantError(t, use(busy), http.StatusUnauthorized, "unauthorized", "expired")
}

// TestSessionStops: a session is bound to the admin URL it was made for,
// and stops on every node at the next request when its user is disabled.
func TestSessionStops(t *testing.T) {
	h, _ := signInHarness(t, 100)
	h.localUser("dave", rbac.Viewer)
	tok := sessionToken(t, h.login("dave", testPassword, "", ""))
	other := withBearer(jsonRequest("GET", "/api/v1/whoami", ""), tok)
	other.Host = "keygate.other.example"
	wantError(t, h.send(other, ""), http.StatusUnauthorized, "unauthorized", "another admin URL")

	// A second node over the same database.
	node2 := newHarness(t)
	node2.st, node2.opts.Store, node2.opts.People, node2.opts.Credentials = h.st, h.st, h.st, h.st
	node2.opts.Hasher, node2.opts.Now = h.hasher, h.opts.Now
	node2.opts.SignIn = h.newSignIn(100)
	node2.api = admin.New(node2.opts)
	if w := node2.send(withBearer(jsonRequest("GET", "/api/v1/whoami", ""), tok), ""); w.Code != http.StatusOK {
		t.Fatalf("the session on the second node: %d %s", w.Code, w.Body)
	}
	h.mustStatus(h.do("POST", "/api/v1/users/dave/disable", ""), http.StatusOK)
	wantError(t, node2.send(withBearer(jsonRequest("GET", "/api/v1/whoami", ""), tok), ""), http.StatusUnauthorized, "unauthorized")
	h.mustStatus(h.do("POST", "/api/v1/users/dave/enable", ""), http.StatusOK)
	wantError(t, node2.send(withBearer(jsonRequest("GET", "/api/v1/whoami", ""), tok), ""), http.StatusUnauthorized, "unauthorized")
}

// TestTokenSignIn: an admin token is exchanged for a browser session
// that stands for the same principal and stops when the token is revoked.
func TestTokenSignIn(t *testing.T) {
	h, trail := signInHarness(t, 100)
	p := h.addPerson("erin", store.UserPerson, rbac.Admin, nil, rbac.Auditor)
	w := h.send(jsonRequest("POST", "/api/v1/auth/token-login", `{"token":"`+p.token+`"}`), "")
	if w.Code != http.StatusOK {
		t.Fatalf("token-login: %d %s", w.Code, w.Body)
	}
	cs := w.Result().Cookies()
	if len(cs) != 1 || cs[0].Name != "keygate_session" {
		t.Fatalf("token-login cookies %+v", cs)
	}
	get := httptest.NewRequest("GET", "/api/v1/whoami", nil)
	get.AddCookie(cs[0])
	var who adminapi.WhoAmI
	decode(t, h.send(get, ""), &who)
	if who.Name != "erin" || who.CredentialRole != rbac.Auditor || who.Via != "session (token)" {
		t.Fatalf("whoami after token-login: %+v (the session must be no stronger than the token)", who)
	}
	// The bootstrap token, sent as a bearer, for the body.
	w = h.send(withBearer(jsonRequest("POST", "/api/v1/auth/token-login", `{"cookie":false}`), h.token), "")
	boot := sessionToken(t, w)
	decode(t, h.send(withBearer(jsonRequest("GET", "/api/v1/whoami", ""), boot), ""), &who)
	if who.Role != rbac.Owner || who.Kind != "token" {
		t.Fatalf("whoami with the bootstrap token's session: %+v", who)
	}
	wantError(t, h.send(jsonRequest("POST", "/api/v1/auth/token-login", `{"token":"kg_admin_notarealtoken"}`), ""), http.StatusUnauthorized, "unauthorized")

	h.mustStatus(h.do("POST", "/api/v1/admin-tokens/"+p.tokenID+"/revoke", ""), http.StatusOK)
	get = httptest.NewRequest("GET", "/api/v1/whoami", nil)
	get.AddCookie(cs[0])
	wantError(t, h.send(get, ""), http.StatusUnauthorized, "unauthorized", "no longer valid")
	evs := trail.find("admin.signin")
	if len(evs) != 3 || evs[0].Fields["method"] != "token" || evs[2].Decision != "deny" {
		t.Fatalf("token sign-in events: %+v", evs)
	}
}

// TestMFAEnrolmentRequired: a role that can change keys needs a second
// factor; signed in with a password alone, such a user may enrol one and
// nothing else. A role configured without MFA signs in fully.
func TestMFAEnrolmentRequired(t *testing.T) {
	h, _ := signInHarness(t, 100)
	h.localUser("frank", rbac.Admin)
	tok := sessionToken(t, h.login("frank", testPassword, "", ""))
	wantError(t, h.send(withBearer(jsonRequest("GET", "/api/v1/keys", ""), tok), ""), http.StatusForbidden, "mfa_enrolment_required")
	var info adminapi.SessionInfo
	decode(t, h.send(withBearer(jsonRequest("GET", "/api/v1/auth/session", ""), tok), ""), &info)
	if !info.MFAEnrolmentRequired {
		t.Fatalf("session info does not say a second factor is owed: %+v", info)
	}
	h.opts.SignIn.MFARoles = []string{}
	h.api = admin.New(h.opts)
	tok = sessionToken(t, h.login("frank", testPassword, "", ""))
	if w := h.send(withBearer(jsonRequest("GET", "/api/v1/keys", ""), tok), ""); w.Code != http.StatusOK {
		t.Fatalf("with mfa_roles empty: %d %s", w.Code, w.Body)
	}
	table, _ := rbac.NewTable(nil)
	if roles := admin.DefaultMFARoles(table); strings.Join(roles, ",") != "owner,admin,security,operator,team-admin,developer" {
		t.Fatalf("default MFA roles %v", roles)
	}
}

// TestSignInThrottle: failed sign-ins are throttled per address (a
// blocked address is refused even the right password) and per user, but
// a user someone is guessing at still signs in from a clean address.
func TestSignInThrottle(t *testing.T) {
	h, trail := signInHarness(t, 3)
	h.localUser("gina", rbac.Viewer)
	h.localUser("hal", rbac.Viewer)
	const attacker = "203.0.113.9:1111"
	for range 4 {
		h.login("gina", "wrong guess number one", "", attacker)
	}
	w := h.login("hal", testPassword, "", attacker)
	wantError(t, w, http.StatusTooManyRequests, "too_many_auth_failures", "this address")
	if w.Header().Get("Retry-After") == "" {
		t.Fatal("a throttled sign-in has no Retry-After")
	}
	// gina, from her own address, is not locked out.
	sessionToken(t, h.login("gina", testPassword, "", "192.0.2.50:2222"))

	// Guessing at hal from several addresses: each address that failed
	// for hal is refused once hal's own allowance is spent, a clean one is not.
	for i, a := range []string{"203.0.113.10:1", "203.0.113.11:1", "203.0.113.12:1", "203.0.113.13:1"} {
		_ = i
		h.login("hal", "another wrong guess", "", a)
	}
	wantError(t, h.login("hal", testPassword, "", "203.0.113.13:1"), http.StatusTooManyRequests, "too_many_auth_failures", "this user")
	sessionToken(t, h.login("hal", testPassword, "", "192.0.2.77:3333"))
	throttled := 0
	for _, ev := range trail.find("admin.signin") {
		if ev.Fields["reason"] == "throttled" {
			throttled++
		}
	}
	if throttled != 2 {
		t.Fatalf("%d throttled sign-ins on the trail, want 2", throttled)
	}
}

// TestSignInMethods: anyone may ask how to sign in; nothing else is public.
func TestSignInMethods(t *testing.T) {
	h, _ := signInHarness(t, 100)
	var m adminapi.SignInMethods
	decode(t, h.send(jsonRequest("GET", "/api/v1/auth/methods", ""), ""), &m)
	if !m.Password || !m.Token || m.OIDC != nil || !m.WebAuthn {
		t.Fatalf("methods %+v", m)
	}
	off, _ := signInHarness(t, 100, func(si *admin.SignIn) { si.WebAuthn.Disabled = true })
	decode(t, off.send(jsonRequest("GET", "/api/v1/auth/methods", ""), ""), &m)
	if m.WebAuthn {
		t.Fatalf("passkeys turned off, yet methods say %+v", m)
	}
	wantError(t, off.send(jsonRequest("POST", "/api/v1/auth/passkey/begin", `{"user":"x"}`), ""), http.StatusNotImplemented, "not_implemented")
	wantError(t, h.send(jsonRequest("GET", "/api/v1/auth/session", ""), ""), http.StatusUnauthorized, "unauthorized")
	wantError(t, h.send(jsonRequest("GET", "/api/v1/keys", ""), ""), http.StatusUnauthorized, "unauthorized")
	// Without sign-in configured the routes say so.
	plain := newHarness(t)
	wantError(t, plain.send(jsonRequest("POST", "/api/v1/auth/login", `{"user":"x","password":"y"}`), ""), http.StatusNotImplemented, "not_implemented")
}

// TestPasswordAndTOTP: an admin sets a user's password; the user, whose
// role needs a second factor, signs in, may only enrol TOTP, confirms it
// (the session is then whole), and signs in next with password and code;
// a code is used once, and a wrong one refused.
func TestPasswordAndTOTP(t *testing.T) {
	h, trail := signInHarness(t, 100)
	h.addPerson("ivy", store.UserPerson, rbac.Admin, nil, "")
	wantError(t, h.do("PUT", "/api/v1/users/ivy/password", `{"password":"short"}`), http.StatusBadRequest, "bad_request", "at least 12")
	h.mustStatus(h.do("PUT", "/api/v1/users/ivy/password", `{"password":"`+testPassword+`"}`), http.StatusNoContent)
	if hash, _ := h.st.GetUserPassword(context.Background(), "usr_ivy"); !strings.HasPrefix(hash, "$argon2id$") {
		t.Fatalf("stored password %q", hash)
	}
	tok := sessionToken(t, h.login("ivy", testPassword, "", ""))
	wantError(t, h.send(withBearer(jsonRequest("GET", "/api/v1/keys", ""), tok), ""), http.StatusForbidden, "mfa_enrolment_required")
	w := h.send(withBearer(jsonRequest("POST", "/api/v1/me/totp", ""), tok), "")
	var enr adminapi.UserTOTPEnrollment
	if w.Code != http.StatusCreated {
		t.Fatalf("enrol: %d %s", w.Code, w.Body)
	}
	decode(t, w, &enr)
	if !strings.HasPrefix(enr.URL, "otpauth://totp/keygate:ivy") {
		t.Fatalf("enrolment URL %q", enr.URL)
	}
	wantError(t, h.send(withBearer(jsonRequest("POST", "/api/v1/me/totp/confirm", `{"otp":"000000"}`), tok), ""), http.StatusUnauthorized, "unauthorized", "wrong")
	code, err := totp.GenerateCode(enr.Secret, h.now)
	if err != nil {
		t.Fatal(err)
	}
	if w := h.send(withBearer(jsonRequest("POST", "/api/v1/me/totp/confirm", `{"otp":"`+code+`"}`), tok), ""); w.Code != http.StatusNoContent {
		t.Fatalf("confirm: %d %s", w.Code, w.Body)
	}
	if w := h.send(withBearer(jsonRequest("GET", "/api/v1/keys", ""), tok), ""); w.Code != http.StatusOK {
		t.Fatalf("after enrolling, the session is still held back: %d %s", w.Code, w.Body)
	}

	// The next sign-in needs the code; the one just used is refused.
	wantError(t, h.login("ivy", testPassword, "", ""), http.StatusUnauthorized, "otp_required")
	wantError(t, h.login("ivy", testPassword, code, ""), http.StatusUnauthorized, "unauthorized", "used already")
	h.now = h.now.Add(30 * time.Second)
	code, _ = totp.GenerateCode(enr.Secret, h.now)
	w = h.login("ivy", testPassword, code, "")
	tok = sessionToken(t, w)
	var info adminapi.SessionInfo
	decode(t, h.send(withBearer(jsonRequest("GET", "/api/v1/auth/session", ""), tok), ""), &info)
	if info.MFA != "totp" || info.MFAEnrolmentRequired {
		t.Fatalf("session after password and code: %+v", info)
	}
	// Replacing the factor needs a current code.
	wantError(t, h.send(withBearer(jsonRequest("POST", "/api/v1/me/totp", ""), tok), ""), http.StatusBadRequest, "otp_required")
	var last = trail.find("admin.signin")
	if ev := last[len(last)-1]; ev.Decision != "allow" || ev.Fields["mfa"] != "totp" {
		t.Fatalf("sign-in with TOTP on the trail: %+v", ev)
	}
	// Changing one's own password needs the current one.
	wantError(t, h.send(withBearer(jsonRequest("PUT", "/api/v1/me/password", `{"current":"wrong wrong wrong","password":"another long passphrase"}`), tok), ""), http.StatusForbidden, "forbidden", "current password")
	if w := h.send(withBearer(jsonRequest("PUT", "/api/v1/me/password", `{"current":"`+testPassword+`","password":"another long passphrase"}`), tok), ""); w.Code != http.StatusNoContent {
		t.Fatalf("own password change: %d %s", w.Code, w.Body)
	}
	// An admin's reset ends the user's sessions.
	h.mustStatus(h.do("PUT", "/api/v1/users/ivy/password", `{"password":"`+testPassword+`"}`), http.StatusNoContent)
	wantError(t, h.send(withBearer(jsonRequest("GET", "/api/v1/whoami", ""), tok), ""), http.StatusUnauthorized, "unauthorized")
}
