package console_test

import (
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/adminapi"
)

// TestFormsRefuseCrossSiteAndNoSession: every form that changes something
// is refused when another site posts it (even with the user's cookie) and
// when it comes without a session, and nothing changes.
func TestFormsRefuseCrossSiteAndNoSession(t *testing.T) {
	s := serve(t, "")
	withProvider(t, s)
	s.api(t, "POST", "/teams", map[string]any{"name": "alpha"}, &adminapi.Team{})
	var user adminapi.CreatedUser
	s.api(t, "POST", "/users", adminapi.CreateUserRequest{Name: "erin", Role: "developer", Team: "alpha"}, &user)
	var key adminapi.CreatedKey
	s.api(t, "POST", "/keys", adminapi.CreateKeyRequest{Name: "target", Team: "alpha"}, &key)
	var inv adminapi.CreatedInvitation
	s.api(t, "POST", "/teams/alpha/invitations", adminapi.CreateInvitationRequest{Email: "ivy@example.com", Role: "viewer"}, &inv)

	// A session for the owner, as the browser would hold it.
	req, _ := http.NewRequest("POST", s.admin+"/api/v1/auth/token-login", strings.NewReader(`{"token":"`+s.token+`"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "keygate_session" {
			session = c
		}
	}
	if session == nil {
		t.Fatalf("token-login set no session cookie (status %d)", resp.StatusCode)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	// Every form the pages offer the owner, with the key and user filled in.
	formAction := regexp.MustCompile(`<form method="post" action="([^"]+)"`)
	found := map[string]bool{}
	for _, page := range []string{"/", "/keys", "/keys/new", "/keys/" + key.Key.ID, "/providers", "/people", "/audit", "/alerts", "/vault",
		"/teams/alpha", "/invite", "/enrol"} {
		req, _ := http.NewRequest("GET", s.admin+page, nil)
		req.AddCookie(session)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d", page, resp.StatusCode)
		}
		for _, m := range formAction.FindAllStringSubmatch(string(body), -1) {
			found[m[1]] = true
		}
	}
	forms := []string{"/keys/new", "/keys/" + key.Key.ID + "/suspend", "/keys/" + key.Key.ID + "/step-up", "/keys/" + key.Key.ID + "/rotate",
		"/keys/" + key.Key.ID + "/revoke", "/keys/" + key.Key.ID + "/resume", "/providers/new", "/providers/openai/rotate", "/mcp/notes/revoke", "/users/erin/disable",
		"/alerts/alr_x/ack", "/alerts/alr_x/resolve", "/alerts/alr_x/suspend", "/approvals/apr_x/approve", "/approvals/apr_x/deny",
		"/vault/read", "/signout",
		"/teams/alpha/invite", "/invitations/" + inv.Invitation.ID + "/revoke", "/enrol/totp", "/enrol/confirm", "/invite/join"}
	// Forms that take no session: what they carry (a password, an
	// invitation) is the credential. They are refused from another site
	// all the same.
	public := []string{"/signin", "/signin/token", "/invite/accept", "/invite/sso"}
	for f := range found {
		if !slices.Contains(forms, f) && !slices.Contains(public, f) {
			t.Errorf("the page offers a form to %s that this test does not check: add it", f)
		}
	}
	body := "name=x&key=" + key.Key.ID + "&api_key=test-not-a-key&base_url=http://127.0.0.1:1&grace=1h" +
		"&email=mallory@example.com&role=viewer&token=" + inv.Token + "&password=a+long+enough+password&password2=a+long+enough+password&otp=123456"
	post := func(path string, cookie bool, site string) int {
		req, _ := http.NewRequest("POST", s.admin+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if site != "" {
			req.Header.Set("Sec-Fetch-Site", site)
		}
		if cookie {
			req.AddCookie(session)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, f := range append(forms, public...) {
		if got := post(f, true, "cross-site"); got != http.StatusForbidden {
			t.Errorf("POST %s from another site with the session: %d, want 403", f, got)
		}
		if slices.Contains(public, f) {
			continue // signing in is what a request without a session does
		}
		// 429 once the address has failed too often: refused all the same.
		if got := post(f, false, "same-origin"); got != http.StatusUnauthorized && got != http.StatusTooManyRequests {
			t.Errorf("POST %s without a session: %d, want 401 (or 429)", f, got)
		}
	}
	var k adminapi.Key
	s.api(t, "GET", "/keys/"+key.Key.ID, nil, &k)
	if k.Status != "active" || k.SuspendedAt != nil || k.StepUpUntil != nil {
		t.Fatalf("a refused form changed the key: %+v", k)
	}
	var u adminapi.User
	s.api(t, "GET", "/users/erin", nil, &u)
	if u.Status != "active" {
		t.Fatal("a refused form disabled the user")
	}
	var invs adminapi.InvitationList
	s.api(t, "GET", "/invitations?all=true", nil, &invs)
	if len(invs.Invitations) != 1 || invs.Invitations[0].Status != "pending" {
		t.Fatalf("a refused form changed the invitations: %+v", invs.Invitations)
	}
	if code := s.api(t, "GET", "/users/ivy@example.com", nil, nil); code != http.StatusNotFound {
		t.Fatalf("a refused form accepted the invitation: GET the user answered %d", code)
	}
	var keys adminapi.KeyList
	s.api(t, "GET", "/keys", nil, &keys)
	if len(keys.Keys) != 1 {
		t.Fatalf("a refused form created a key: %d keys", len(keys.Keys))
	}
}
