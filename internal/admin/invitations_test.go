package admin_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/admin"
	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/rbac"
	"github.com/keygate/keygate/internal/store"
)

// invitationHarness is a harness with sign-in, two teams, a team-admin of
// each and a developer of payments, and a custom team role (otp-admin)
// holding a grant no team-admin has.
func invitationHarness(t *testing.T) (*harness, *eventLog, person, person, person) {
	t.Helper()
	h, trail := signInHarness(t, 1000)
	roles, err := rbac.NewTable(map[string][]string{"otp-admin": {"keys.read", "keys.enroll_otp"}})
	if err != nil {
		t.Fatal(err)
	}
	h.opts.Roles = roles
	h.api = admin.New(h.opts)
	h.addTeam("payments", "")
	h.addTeam("search", "")
	pat := h.addPerson("pat", store.UserPerson, rbac.TeamAdmin, map[string]string{"payments": rbac.TeamAdmin}, "")
	sam := h.addPerson("sam", store.UserPerson, rbac.TeamAdmin, map[string]string{"search": rbac.TeamAdmin}, "")
	dev := h.addPerson("dev", store.UserPerson, rbac.Developer, map[string]string{"payments": rbac.Developer}, "")
	return h, trail, pat, sam, dev
}

// invite creates an invitation as p ("" for the owner) and returns it.
func (h *harness) invite(p *person, team, email, role, ttl string) adminapi.CreatedInvitation {
	h.t.Helper()
	body := mustJSON(adminapi.CreateInvitationRequest{Email: email, Role: role, TTL: ttl})
	var w *httptest.ResponseRecorder
	if p == nil {
		w = h.do("POST", "/api/v1/teams/"+team+"/invitations", body)
	} else {
		w = h.as(*p, "POST", "/api/v1/teams/"+team+"/invitations", body)
	}
	if w.Code != http.StatusCreated {
		h.t.Fatalf("invite %s to %s as %s: %d %s", email, team, role, w.Code, w.Body)
	}
	var out adminapi.CreatedInvitation
	decode(h.t, w, &out)
	return out
}

// accept accepts an invitation with a password, from a browser's origin.
func (h *harness) accept(token, pw string) *httptest.ResponseRecorder {
	return h.send(jsonRequest("POST", "/api/v1/auth/invitations/accept", mustJSON(adminapi.AcceptInvitationRequest{Token: token, Password: pw})), "")
}

// TestInvitations: an owner and a team-admin invite people to their team;
// the link is shown once and only listed by id; the invitee accepts it
// with a password and is signed in as a member of the team with the role;
// the invitation then works no more. Every step is on the trail, and no
// token is in the log or the trail.
func TestInvitations(t *testing.T) {
	h, trail, pat, sam, _ := invitationHarness(t)

	created := h.invite(nil, "payments", " Ann@Example.com ", rbac.Developer, "")
	inv := created.Invitation
	if !strings.HasPrefix(created.Token, "kg_invite_") || created.Link != "http://example.com/invite#"+created.Token {
		t.Fatalf("token %q, link %q", created.Token, created.Link)
	}
	if inv.Email != "ann@example.com" || inv.Team != "payments" || inv.Role != rbac.Developer || inv.Status != adminapi.InvitationPending ||
		inv.InvitedBy != "bootstrap" || !inv.ExpiresAt.Equal(h.now.Add(admin.DefaultInvitationTTL)) || !strings.HasPrefix(inv.ID, "inv_") {
		t.Fatalf("invitation %+v", inv)
	}
	h.now = h.now.Add(time.Minute)
	byPat := h.invite(&pat, "payments", "bo@example.com", rbac.Viewer, "2d")
	if !byPat.Invitation.ExpiresAt.Equal(h.now.Add(48*time.Hour)) || byPat.Invitation.InvitedBy != "pat" {
		t.Fatalf("pat's invitation %+v", byPat.Invitation)
	}

	// Listed by the team's admins and the owner, never with a token; sam,
	// admin of another team, sees none and is told payments does not exist.
	w := h.as(pat, "GET", "/api/v1/teams/payments/invitations", "")
	var list adminapi.InvitationList
	decode(t, w, &list)
	if len(list.Invitations) != 2 || list.Invitations[0].Email != "bo@example.com" || strings.Contains(w.Body.String(), "kg_invite_") {
		t.Fatalf("payments' invitations: %s", w.Body)
	}
	decode(t, h.as(sam, "GET", "/api/v1/invitations", ""), &list)
	if len(list.Invitations) != 0 {
		t.Fatalf("another team's admin lists %+v", list.Invitations)
	}
	wantError(t, h.as(sam, "GET", "/api/v1/teams/payments/invitations", ""), http.StatusNotFound, "not_found")
	wantError(t, h.as(sam, "POST", "/api/v1/invitations/"+inv.ID+"/revoke", ""), http.StatusNotFound, "not_found")

	// The holder of the link learns what it is for, then accepts it.
	w = h.send(jsonRequest("POST", "/api/v1/auth/invitations/lookup", mustJSON(adminapi.InvitationToken{Token: created.Token})), "")
	var info adminapi.InvitationInfo
	decode(t, w, &info)
	if info.Email != "ann@example.com" || info.Team != "payments" || info.Role != rbac.Developer || info.InvitedBy != "bootstrap" {
		t.Fatalf("lookup: %+v", info)
	}
	w = h.accept(created.Token, "short")
	wantError(t, w, http.StatusBadRequest, "bad_request")
	w = h.accept(created.Token, testPassword)
	var login adminapi.LoginResponse
	decode(t, w, &login)
	if login.Session.Name != "ann@example.com" || len(login.Session.Teams) != 1 || login.Session.Teams[0] != (adminapi.Membership{Team: "payments", Role: rbac.Developer}) {
		t.Fatalf("the new member's session: %+v", login.Session)
	}
	// A developer needs a second factor: the session may only enrol one.
	if !login.Session.MFAEnrolmentRequired {
		t.Fatal("a developer's first session does not ask for a second factor")
	}
	wantError(t, h.send(withBearer(jsonRequest("GET", "/api/v1/keys", ""), login.Token), ""), http.StatusForbidden, "mfa_enrolment_required")
	// The password works for signing in from now on.
	if w := h.login("ann@example.com", testPassword, "", ""); w.Code != http.StatusOK {
		t.Fatalf("sign in with the password set on acceptance: %d %s", w.Code, w.Body)
	}

	// Once only: the same link again is refused, and makes nothing.
	wantError(t, h.accept(created.Token, testPassword+"2"), http.StatusGone, "invitation_used", "accepted already")
	wantError(t, h.send(jsonRequest("POST", "/api/v1/auth/invitations/lookup", mustJSON(adminapi.InvitationToken{Token: created.Token})), ""), http.StatusGone, "invitation_used")
	decode(t, h.do("GET", "/api/v1/teams/payments/invitations?all=true", ""), &list)
	if len(list.Invitations) != 2 || list.Invitations[1].Status != adminapi.InvitationAccepted || list.Invitations[1].User != "ann@example.com" {
		t.Fatalf("every invitation of payments: %+v", list.Invitations)
	}
	decode(t, h.do("GET", "/api/v1/teams/payments/invitations", ""), &list)
	if len(list.Invitations) != 1 || list.Invitations[0].Email != "bo@example.com" {
		t.Fatalf("pending invitations of payments after one was accepted: %+v", list.Invitations)
	}

	// A viewer needs no second factor: signed in at once, it sees its team.
	w = h.accept(byPat.Token, testPassword)
	login = adminapi.LoginResponse{}
	decode(t, w, &login)
	if login.Session.MFAEnrolmentRequired || login.Session.Teams[0].Role != rbac.Viewer {
		t.Fatalf("the viewer's session: %+v", login.Session)
	}
	if w := h.send(withBearer(jsonRequest("GET", "/api/v1/teams/payments", ""), login.Token), ""); w.Code != http.StatusOK {
		t.Fatalf("the new viewer reads its team: %d %s", w.Code, w.Body)
	}
	if w := h.send(withBearer(jsonRequest("GET", "/api/v1/teams/search", ""), login.Token), ""); w.Code != http.StatusNotFound {
		t.Fatalf("the new viewer reads another team: %d %s", w.Code, w.Body)
	}

	// On the trail: created twice, accepted twice, refused twice; the
	// trail and the log hold no token.
	counts := map[string]int{}
	for _, ev := range trail.find("admin.invitation") {
		counts[ev.Fields["action"]+"/"+ev.Decision]++
		b, _ := json.Marshal(ev)
		if strings.Contains(string(b), "kg_invite_") {
			t.Fatalf("an audit event carries an invitation token: %s", b)
		}
	}
	if counts["created/allow"] != 2 || counts["accepted/allow"] != 2 || counts["refused/deny"] != 2 {
		t.Fatalf("invitation events: %v", counts)
	}
	for _, ev := range trail.find("admin.invitation") {
		if ev.Fields["action"] == "accepted" && (ev.Actor == "" || ev.Fields["team"] != "payments") {
			t.Fatalf("an acceptance on the trail names no actor or team: %+v", ev)
		}
	}
	if strings.Contains(h.log.String(), "kg_invite_") {
		t.Fatal("the log carries an invitation token")
	}
}

// TestInvitationRefusals: expired, revoked, unknown and malformed links,
// a link whose inviter has since lost the role, an invitation for more
// than the inviter holds, and callers without the permission or without
// credentials are all refused, and refusals change nothing.
func TestInvitationRefusals(t *testing.T) {
	h, trail, pat, _, dev := invitationHarness(t)

	// Nobody invites to more than they hold.
	wantError(t, h.as(pat, "POST", "/api/v1/teams/payments/invitations", mustJSON(adminapi.CreateInvitationRequest{Email: "x@example.com", Role: "otp-admin"})),
		http.StatusForbidden, "forbidden", "keys.enroll_otp", "nobody gives more than they hold")
	wantError(t, h.as(pat, "POST", "/api/v1/teams/payments/invitations", mustJSON(adminapi.CreateInvitationRequest{Email: "x@example.com", Role: rbac.Admin})),
		http.StatusBadRequest, "bad_request", "applies everywhere")
	wantError(t, h.as(pat, "POST", "/api/v1/teams/search/invitations", mustJSON(adminapi.CreateInvitationRequest{Email: "x@example.com", Role: rbac.Viewer})),
		http.StatusNotFound, "not_found")
	// Without the permission, or without credentials.
	wantError(t, h.as(dev, "POST", "/api/v1/teams/payments/invitations", mustJSON(adminapi.CreateInvitationRequest{Email: "x@example.com", Role: rbac.Viewer})),
		http.StatusForbidden, "forbidden", "invitations.manage")
	wantError(t, h.as(dev, "GET", "/api/v1/teams/payments/invitations", ""), http.StatusForbidden, "forbidden", "invitations.read")
	if w := h.call("POST", "/api/v1/teams/payments/invitations", mustJSON(adminapi.CreateInvitationRequest{Email: "x@example.com", Role: rbac.Viewer}), ""); w.Code != http.StatusUnauthorized {
		t.Fatalf("invite without a credential: %d %s", w.Code, w.Body)
	}
	if w := h.call("GET", "/api/v1/invitations", "", ""); w.Code != http.StatusUnauthorized {
		t.Fatalf("list invitations without a credential: %d %s", w.Code, w.Body)
	}
	// Bad input: not an address, an unknown role, a life too long, a user
	// who exists already, a second pending invitation.
	for body, words := range map[string]string{
		mustJSON(adminapi.CreateInvitationRequest{Email: "not an address", Role: rbac.Viewer}):                 "plain e-mail address",
		mustJSON(adminapi.CreateInvitationRequest{Email: "Ann <ann@example.com>", Role: rbac.Viewer}):          "plain e-mail address",
		mustJSON(adminapi.CreateInvitationRequest{Email: "x@example.com", Role: "wizard"}):                     "unknown role",
		mustJSON(adminapi.CreateInvitationRequest{Email: "x@example.com", Role: rbac.Viewer, TTL: "31d"}):      "up to 30d",
		mustJSON(adminapi.CreateInvitationRequest{Email: "x@example.com", Role: rbac.Viewer, TTL: "tomorrow"}): "ttl",
	} {
		wantError(t, h.do("POST", "/api/v1/teams/payments/invitations", body), http.StatusBadRequest, "bad_request", words)
	}
	h.addPerson("eve@example.com", store.UserPerson, rbac.Viewer, map[string]string{"payments": rbac.Viewer}, "")
	wantError(t, h.do("POST", "/api/v1/teams/payments/invitations", mustJSON(adminapi.CreateInvitationRequest{Email: "eve@example.com", Role: rbac.Developer})),
		http.StatusConflict, "conflict", "member of team payments already", "keygate team member add")
	h.addPerson("ci@example.com", store.UserService, rbac.Viewer, nil, "")
	wantError(t, h.do("POST", "/api/v1/teams/payments/invitations", mustJSON(adminapi.CreateInvitationRequest{Email: "ci@example.com", Role: rbac.Viewer})),
		http.StatusConflict, "conflict", "cannot sign in")
	h.invite(&pat, "payments", "twice@example.com", rbac.Viewer, "")
	wantError(t, h.as(pat, "POST", "/api/v1/teams/payments/invitations", mustJSON(adminapi.CreateInvitationRequest{Email: "twice@example.com", Role: rbac.Viewer})),
		http.StatusConflict, "conflict", "pending invitation")

	// Expired: an hour's link after two hours.
	short := h.invite(&pat, "payments", "late@example.com", rbac.Viewer, "1h")
	// Revoked by the team-admin; revoking it twice is a conflict.
	revoked := h.invite(&pat, "payments", "gone@example.com", rbac.Viewer, "")
	w := h.as(pat, "POST", "/api/v1/invitations/"+revoked.Invitation.ID+"/revoke", "")
	var rv adminapi.Invitation
	decode(t, w, &rv)
	if rv.Status != adminapi.InvitationRevoked || rv.RevokedAt == nil {
		t.Fatalf("revoked invitation %+v", rv)
	}
	wantError(t, h.as(pat, "POST", "/api/v1/invitations/"+revoked.Invitation.ID+"/revoke", ""), http.StatusConflict, "conflict", "revoked already")
	wantError(t, h.as(dev, "POST", "/api/v1/invitations/"+short.Invitation.ID+"/revoke", ""), http.StatusNotFound, "not_found")
	wantError(t, h.accept(revoked.Token, testPassword), http.StatusGone, "invitation_revoked")

	// The inviter lost the role: an invitation pat made gives nothing once
	// pat is out of the team.
	orphan := h.invite(&pat, "payments", "orphan@example.com", rbac.Developer, "")
	if w := h.do("DELETE", "/api/v1/teams/payments/members/pat", ""); w.Code != http.StatusNoContent {
		t.Fatalf("take pat out: %d %s", w.Code, w.Body)
	}
	wantError(t, h.accept(orphan.Token, testPassword), http.StatusForbidden, "invitation_inviter", "may no longer give role developer")

	// Unknown and malformed links.
	unknown, err := apikey.GenerateInvite()
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, h.accept(unknown.Reveal(), testPassword), http.StatusNotFound, "invitation_unknown")
	wantError(t, h.accept("kg_invite_nonsense", testPassword), http.StatusNotFound, "invitation_unknown")
	wantError(t, h.accept(h.token, testPassword), http.StatusNotFound, "invitation_unknown") // an admin token is no invitation

	// Accepting from another site's page is refused like signing in from one.
	r := jsonRequest("POST", "/api/v1/auth/invitations/accept", mustJSON(adminapi.AcceptInvitationRequest{Token: short.Token, Password: testPassword}))
	r.Header.Set("Sec-Fetch-Site", "cross-site")
	wantError(t, h.send(r, ""), http.StatusForbidden, "forbidden", "cross-origin")

	h.now = h.now.Add(2 * time.Hour)
	wantError(t, h.accept(short.Token, testPassword), http.StatusGone, "invitation_expired", "expired at")
	wantError(t, h.as(pat, "POST", "/api/v1/invitations/"+short.Invitation.ID+"/revoke", ""), http.StatusNotFound, "not_found") // pat is out of the team
	wantError(t, h.do("POST", "/api/v1/invitations/"+short.Invitation.ID+"/revoke", ""), http.StatusConflict, "conflict", "expired already")

	// None of it made a user.
	for _, name := range []string{"late@example.com", "gone@example.com", "orphan@example.com", "x@example.com"} {
		if w := h.do("GET", "/api/v1/users/"+name, ""); w.Code != http.StatusNotFound {
			t.Fatalf("a refused invitation made user %s: %d", name, w.Code)
		}
	}
	reasons := map[string]bool{}
	for _, ev := range trail.find("admin.invitation") {
		if ev.Decision == "deny" {
			reasons[ev.Fields["reason"]] = true
		}
		if ev.Fields["action"] == "revoked" && ev.Actor != pat.id {
			t.Fatalf("the revocation on the trail names actor %q, want pat", ev.Actor)
		}
	}
	for _, want := range []string{"role_above_inviter", "revoked", "inviter_lacks_role", "unknown", "expired"} {
		if !reasons[want] {
			t.Errorf("no refusal for reason %s on the trail (have %v)", want, reasons)
		}
	}
}

// TestInvitationTTLFromConfiguration: without a ttl in the request, an
// invitation lives as long as the configuration says.
func TestInvitationTTLFromConfiguration(t *testing.T) {
	h, _, _, _, _ := invitationHarness(t)
	h.opts.InvitationTTL = 72 * time.Hour
	h.api = admin.New(h.opts)
	if inv := h.invite(nil, "payments", "cy@example.com", rbac.Viewer, ""); !inv.Invitation.ExpiresAt.Equal(h.now.Add(72 * time.Hour)) {
		t.Fatalf("expires at %s, want in 72h", inv.Invitation.ExpiresAt)
	}
}

// TestInvitationForAnExistingUser: someone invited to two teams joins the
// first with a password, and the second as the user that made, signed in;
// an existing user can be invited; the link cannot be used by another
// signed-in user, nor to change the role of a member, nor without signing
// in.
func TestInvitationForAnExistingUser(t *testing.T) {
	h, _, _, _, _ := invitationHarness(t)
	pay := h.invite(nil, "payments", "multi@example.com", rbac.Viewer, "")
	search := h.invite(nil, "search", "multi@example.com", rbac.Viewer, "")
	tok := sessionToken(t, h.accept(pay.Token, testPassword))
	wantError(t, h.accept(search.Token, testPassword), http.StatusConflict, "conflict", "exists already", "open the invitation link again")

	asMulti := func(token string) *httptest.ResponseRecorder {
		return h.send(withBearer(jsonRequest("POST", "/api/v1/me/invitations/accept", mustJSON(adminapi.InvitationToken{Token: token})), tok), "")
	}
	// Not addressed to multi: refused, and still pending.
	other := h.invite(nil, "search", "zed@example.com", rbac.Viewer, "")
	wantError(t, asMulti(other.Token), http.StatusForbidden, "invitation_other_person", "zed@example.com")
	// Without signing in.
	if w := h.call("POST", "/api/v1/me/invitations/accept", mustJSON(adminapi.InvitationToken{Token: search.Token}), ""); w.Code != http.StatusUnauthorized {
		t.Fatalf("accepting as nobody: %d %s", w.Code, w.Body)
	}

	var m adminapi.TeamMember
	decode(t, asMulti(search.Token), &m)
	if m.Team != "search" || m.Role != rbac.Viewer || m.User != "multi@example.com" {
		t.Fatalf("joined %+v", m)
	}
	wantError(t, asMulti(search.Token), http.StatusGone, "invitation_used")
	var u adminapi.User
	decode(t, h.do("GET", "/api/v1/users/multi@example.com", ""), &u)
	if len(u.Teams) != 2 {
		t.Fatalf("multi's teams: %+v", u.Teams)
	}

	// An existing user may be invited too, and joins as itself.
	h.addPerson("olga@example.com", store.UserPerson, rbac.Viewer, nil, "")
	if inv := h.invite(nil, "payments", "olga@example.com", rbac.Viewer, ""); inv.Token == "" {
		t.Fatal("no link for an existing user")
	}
	// An invitation made before multi joined payments cannot change its role there.
	raw, err := apikey.GenerateInvite()
	if err != nil {
		t.Fatal(err)
	}
	sum := h.hasher.Hash(raw.Reveal())
	if err := h.st.CreateInvitation(t.Context(), store.Invitation{ID: "inv_again", Hash: sum[:], Email: "multi@example.com", Team: "payments",
		Role: rbac.TeamAdmin, CreatedBy: "usr_pat", CreatedAt: h.now, ExpiresAt: h.now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	wantError(t, asMulti(raw.Reveal()), http.StatusConflict, "conflict", "member of team payments already")
	decode(t, h.do("GET", "/api/v1/users/multi@example.com", ""), &u)
	for _, ms := range u.Teams {
		if ms.Role != rbac.Viewer {
			t.Fatalf("a refused invitation changed multi's role: %+v", u.Teams)
		}
	}
	var list adminapi.InvitationList
	decode(t, h.do("GET", "/api/v1/invitations", ""), &list)
	if len(list.Invitations) != 3 { // zed's, olga's and inv_again, all still pending
		t.Fatalf("pending invitations: %+v", list.Invitations)
	}
}

// TestInvitationGuessesThrottled: wrong invitation tokens count as failed
// sign-ins from the address; past the allowance, even a right one is
// refused from there, so guessing gets nowhere, and nothing is made.
func TestInvitationGuessesThrottled(t *testing.T) {
	h, _ := signInHarness(t, 3)
	h.addTeam("payments", "")
	good := h.invite(nil, "payments", "ann@example.com", rbac.Viewer, "")
	for range 4 { // one past the allowance of 3
		guess, err := apikey.GenerateInvite()
		if err != nil {
			t.Fatal(err)
		}
		wantError(t, h.accept(guess.Reveal(), testPassword), http.StatusNotFound, "invitation_unknown")
	}
	wantError(t, h.accept(good.Token, testPassword), http.StatusTooManyRequests, "too_many_auth_failures")
	wantError(t, h.send(jsonRequest("POST", "/api/v1/auth/invitations/lookup", mustJSON(adminapi.InvitationToken{Token: good.Token})), ""),
		http.StatusTooManyRequests, "too_many_auth_failures")
	// From another address the right link still works.
	if w := h.send(jsonRequest("POST", "/api/v1/auth/invitations/accept", mustJSON(adminapi.AcceptInvitationRequest{Token: good.Token, Password: testPassword})), "192.0.2.7:4000"); w.Code != http.StatusOK {
		t.Fatalf("the right link from another address: %d %s", w.Code, w.Body)
	}
}
