package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/ssotest"
	"github.com/keygate/keygate/internal/store/storetest"
)

const signInPassword = "a long passphrase for tests"

var sessionRE = regexp.MustCompile(`kg_session_[0-9A-Za-z]+`)

// asPerson runs CLI commands as a person with a home directory of their
// own (where keygate login saves the session when there is no keychain)
// and no admin token in the environment.
func (in *instance) asPerson(home, stdin string, args ...string) (string, string, error) {
	return in.cli(map[string]string{"KEYGATE_ADMIN_TOKEN": "", "HOME": home}, stdin, args...)
}

// TestPasswordAndTOTPThroughTheBinary: an admin sets a user's password
// from standard input; the user signs in with keygate login --user, is
// held to enrolling a second factor (the role needs one), enrols TOTP with
// keygate user totp, and from then on signs in with password and code; the
// saved session works for ordinary commands, whoami shows how it signed
// in, a used code is refused, and keygate logout ends the session at the
// server. Every sign-in is on the audit trail.
func TestPasswordAndTOTPThroughTheBinary(t *testing.T) {
	for name, dbURL := range databases(t) {
		t.Run(name, func(t *testing.T) {
			if name == "postgres" && os.Getenv(storetest.PostgresEnv) == "" {
				t.Skip("set " + storetest.PostgresEnv + " to run against PostgreSQL")
			}
			cfg := testConfig(t, t.TempDir())
			cfg.Database = dbURL(t)
			in := start(t, cfg, "")
			in.addUser("alice", "--role", "admin")
			home := t.TempDir()

			// The password never goes on the command line.
			in.mustCLI(nil, signInPassword+"\n", "user", "password", "alice")
			if _, errb, err := in.asPerson(home, "not the password\n", "login", "--user", "alice"); err == nil || !strings.Contains(err.Error(), "wrong user name or password") {
				t.Fatalf("login with a wrong password: %v %s", err, errb)
			}
			out, errb, err := in.asPerson(home, signInPassword+"\n", "login", "--user", "alice")
			if err != nil {
				t.Fatalf("login: %v %s", err, errb)
			}
			if !strings.Contains(out, "Signed in to") || !strings.Contains(errb, "second factor") {
				t.Fatalf("login said %q / %q", out, errb)
			}
			saved := savedSession(t, home)
			if !strings.HasPrefix(saved, "kg_session_") {
				t.Fatalf("login saved %q, not a session token", saved)
			}
			if _, _, err := in.asPerson(home, "", "key", "list"); err == nil || !strings.Contains(err.Error(), "second factor") {
				t.Fatalf("key list before enrolling a second factor: %v", err)
			}

			// Enrol: the secret is printed, the code typed back.
			secret := in.enrolTOTP(home)
			out, errb, err = in.asPerson(home, "", "--json", "whoami")
			if err != nil {
				t.Fatalf("whoami: %v %s", err, errb)
			}
			var who adminapi.WhoAmI
			decodeJSON(t, out, &who)
			if who.Name != "alice" || who.Via != "session (password+totp)" { // the enrolment completed the session
				t.Fatalf("whoami with the saved session: %+v", who)
			}
			in.mustCLI(map[string]string{"KEYGATE_ADMIN_TOKEN": "", "HOME": home}, "", "key", "list")

			// Sign in again: password, then the code. The code used to
			// confirm is refused: as used already while its step is in the
			// window, as expired once the clock has moved past it.
			_, _, err = in.asPerson(home, signInPassword+"\n"+in.lastTOTP.code+"\n", "login", "--user", "alice")
			sameStep := time.Now().Unix()/30 == in.lastTOTP.at.Unix()/30
			if err == nil || (sameStep && !strings.Contains(err.Error(), "used already")) {
				t.Fatalf("login with the code used to confirm: %v", err)
			}
			code, _ := totp.GenerateCode(secret, time.Now().Add(30*time.Second))
			if _, errb, err := in.asPerson(home, signInPassword+"\n"+code+"\n", "login", "--user", "alice"); err != nil {
				t.Fatalf("login with password and code: %v %s", err, errb)
			}
			decodeJSON(t, in.mustCLI(map[string]string{"KEYGATE_ADMIN_TOKEN": "", "HOME": home}, "", "--json", "whoami"), &who)
			if who.Via != "session (password+totp)" {
				t.Fatalf("whoami after password and code: %+v", who)
			}
			session := savedSession(t, home)
			_, errb, err = in.asPerson(home, "", "logout")
			if err != nil || !strings.Contains(errb, "Ended the session") {
				t.Fatalf("logout: %v %s", err, errb)
			}
			req, _ := http.NewRequest("GET", in.addrs.Admin+"/api/v1/whoami", nil)
			req.Header.Set("Authorization", "Bearer "+session)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("the session after logout: %d", resp.StatusCode)
			}

			// The trail is written in batches: wait for the last sign-in.
			var seen []string
			for deadline := time.Now().Add(15 * time.Second); ; {
				var evs struct {
					Events []struct {
						Type, Decision, Client string
						Fields                 map[string]string
					} `json:"events"`
				}
				decodeJSON(t, in.mustCLI(nil, "", "--json", "audit", "search", "--type", "admin.signin"), &evs)
				seen = seen[:0]
				for _, ev := range evs.Events {
					seen = append(seen, ev.Decision+":"+ev.Fields["reason"]+":"+ev.Fields["mfa"])
					if ev.Client != "127.0.0.1" {
						t.Fatalf("sign-in event from %q", ev.Client)
					}
				}
				if strings.Contains(strings.Join(seen, " "), "allow::totp") || time.Now().After(deadline) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			// The confirm code, tried again, is refused as used while its
			// step lasts and as a wrong code once the clock has moved on.
			reused := "deny:otp_reused:"
			if !sameStep {
				reused = "deny:bad_otp:"
			}
			for _, want := range []string{"deny:bad_password:", "allow:mfa_enrolment_required:", reused, "allow::totp"} {
				if !strings.Contains(strings.Join(seen, " "), want) {
					t.Fatalf("audit sign-ins %v lack %s", seen, want)
				}
			}
		})
	}
}

// enrolTOTP runs keygate user totp as the person, reading the printed
// secret and typing back the code for the step before now (each code is
// used once; sign-ins then use later ones).
func (in *instance) enrolTOTP(home string) string {
	in.t.Helper()
	stdinR, stdinW := io.Pipe()
	out := &syncBuffer{}
	errb := &syncBuffer{}
	env := map[string]string{"KEYGATE_ADMIN_URL": in.addrs.Admin, "KEYGATE_ADMIN_TOKEN": "", "HOME": home}
	done := make(chan error, 1)
	go func() {
		done <- run(context.Background(), []string{"user", "totp"}, func(k string) string { return env[k] }, stdinR, out, errb)
	}()
	deadline := time.Now().Add(20 * time.Second)
	var secret string
	for secret == "" && time.Now().Before(deadline) {
		if m := regexp.MustCompile(`Secret: ([A-Z2-7]+)`).FindStringSubmatch(out.String()); m != nil {
			secret = m[1]
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if secret == "" {
		in.t.Fatalf("user totp printed no secret: %s %s", out, errb)
	}
	now := time.Now()
	code, err := totp.GenerateCode(secret, now.Add(-30*time.Second))
	if err != nil {
		in.t.Fatal(err)
	}
	in.lastTOTP.code, in.lastTOTP.at = code, now
	fmt.Fprintln(stdinW, code)
	_ = stdinW.Close()
	if err := <-done; err != nil {
		in.t.Fatalf("user totp: %v %s", err, errb)
	}
	return secret
}

// savedSession reads the credential login saved in home's fallback file.
func savedSession(t *testing.T, home string) string {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join(home, "*", "keygate", "admin-credentials.json"))
	if len(matches) == 0 {
		t.Skip("keygate login saved to an OS keychain here; this test reads the fallback file")
	}
	var f struct {
		Credentials map[string]string `json:"credentials"`
	}
	b, err := os.ReadFile(matches[0])
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(matches[0]); fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file mode %v, want 0600", fi.Mode().Perm())
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	for _, v := range f.Credentials {
		return v
	}
	t.Fatal("no credential saved")
	return ""
}

// TestTokenLoginCookieThroughTheBinary: a browser exchanges an admin token
// for a session cookie (HttpOnly, SameSite=Strict), reads with it, is
// refused a change sent from another origin, makes one from the console's
// own, and signs out.
func TestTokenLoginCookieThroughTheBinary(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	in := start(t, cfg, "")
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	base := in.addrs.Admin + "/api/v1"
	form := func(path string, v url.Values, headers ...string) *http.Response {
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(v.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	// A wrong token gets no session.
	if resp := form("/auth/token-login", url.Values{"token": {"kg_admin_wrong"}}, "Sec-Fetch-Site", "same-origin"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("token-login with a wrong token: %d", resp.StatusCode)
	}
	resp := form("/auth/token-login", url.Values{"token": {in.admin}}, "Sec-Fetch-Site", "same-origin")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("token-login form: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	sc := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"keygate_session=kg_session_", "HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(sc, want) {
			t.Fatalf("Set-Cookie %q lacks %s", sc, want)
		}
	}
	if strings.Contains(sc, "Secure") {
		t.Fatalf("Set-Cookie %q is Secure on a plain-HTTP listener, so the browser would never send it", sc)
	}
	get, err := browser.Get(base + "/auth/session")
	if err != nil {
		t.Fatal(err)
	}
	var info adminapi.SessionInfo
	if err := json.NewDecoder(get.Body).Decode(&info); err != nil || get.StatusCode != 200 {
		t.Fatalf("session with the cookie: %d %v", get.StatusCode, err)
	}
	get.Body.Close()
	if info.Method != "token" || info.Role != "owner" {
		t.Fatalf("session %+v", info)
	}
	post := func(path, body string, headers ...string) int {
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("/keys", `{"name":"csrf"}`, "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"); code != http.StatusForbidden {
		t.Fatalf("a cross-site change with the cookie: %d", code)
	}
	if code := post("/keys", `{"name":"console"}`, "Sec-Fetch-Site", "same-origin"); code != http.StatusCreated {
		t.Fatalf("a same-origin change with the cookie: %d", code)
	}
	if code := post("/auth/logout", "", "Sec-Fetch-Site", "same-origin"); code != http.StatusNoContent {
		t.Fatalf("logout: %d", code)
	}
	if get, _ := browser.Get(base + "/auth/session"); get.StatusCode != http.StatusUnauthorized {
		t.Fatalf("after logout: %d", get.StatusCode)
	}
}

// TestDeviceSignInThroughTheBinary: on a machine without a browser,
// keygate login --sso --device prints a code and where to enter it; the
// person approves at the provider (a real OpenID provider, its own device
// pages) from anywhere, the command finishes by itself, and the saved
// session is the user's, signed in by single sign-on.
func TestDeviceSignInThroughTheBinary(t *testing.T) {
	pw := "provider-password-" + t.Name()
	op := ssotest.Start(t, ssotest.User{Name: "dana", Password: pw})
	cfg := testConfig(t, t.TempDir())
	cfg.SignIn.OIDC = config.OIDC{Issuer: op.Issuer, ClientID: op.ClientID, ClientSecret: op.ClientSecret,
		RedirectURL: "http://127.0.0.1:8788/api/v1/auth/oidc/callback"}
	in := start(t, cfg, "")
	in.addUser("dana", "--role", "viewer")
	home := t.TempDir()

	env := map[string]string{"KEYGATE_ADMIN_URL": in.addrs.Admin, "HOME": home}
	var out bytes.Buffer
	errb := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(context.Background(), []string{"login", "--sso", "--device"}, func(k string) string { return env[k] }, strings.NewReader(""), &out, errb)
	}()
	codeRE := regexp.MustCompile(`enter the code\s+(\S+)`)
	var code string
	for deadline := time.Now().Add(20 * time.Second); code == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := codeRE.FindStringSubmatch(errb.String()); m != nil {
			code = m[1]
		}
	}
	if code == "" || !strings.Contains(errb.String(), op.Issuer+"/device") {
		t.Fatalf("login --sso --device showed no code and place to enter it:\n%s", errb.String())
	}
	if err := op.Approve(code, "dana", pw); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("login --sso --device: %v\n%s", err, errb.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("login --sso --device did not finish after approval:\n%s", errb.String())
	}
	whoOut, whoErr, err := in.asPerson(home, "", "--json", "whoami")
	if err != nil {
		t.Fatalf("whoami with the saved session: %v %s", err, whoErr)
	}
	var who adminapi.WhoAmI
	if err := json.Unmarshal([]byte(whoOut), &who); err != nil || who.Name != "dana" || who.Via != "session (oidc)" {
		t.Fatalf("whoami after a device sign-in: %v %s", err, whoOut)
	}
	if strings.Contains(errb.String(), "kg_session_") || strings.Contains(out.String(), "kg_session_") {
		t.Fatal("the session token was printed")
	}
}
