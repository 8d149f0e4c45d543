package admin_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/oauth2-proxy/mockoidc"

	"github.com/keygate/keygate/internal/admin"
	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/rbac"
	"github.com/keygate/keygate/internal/store"
)

// TestInvitationWithSSO: where people sign in with an OpenID provider that
// creates nobody, an invitee accepts by signing in there as the invited
// address: the user is made, linked and in the team, and later sign-ins
// find it. Someone who signs in at the provider as another person cannot
// use the link, and nothing is made.
func TestInvitationWithSSO(t *testing.T) {
	rig := newOIDCRig(t, admin.SSOPolicy{})
	h := rig.h
	h.addTeam("payments", "")
	var created adminapi.CreatedInvitation
	w := h.do("POST", "/api/v1/teams/payments/invitations", mustJSON(adminapi.CreateInvitationRequest{Email: "ann@example.test", Role: rbac.Developer}))
	decode(t, w, &created)

	var info adminapi.InvitationInfo
	decode(t, h.send(jsonRequest("POST", "/api/v1/auth/invitations/lookup", mustJSON(adminapi.InvitationToken{Token: created.Token})), ""), &info)
	if info.SSO != "Test IdP" {
		t.Fatalf("the invitation does not offer single sign-on: %+v", info)
	}

	accept := func(c *http.Client, token string, user *mockoidc.MockUser) *http.Response {
		t.Helper()
		rig.op.QueueUser(user)
		resp, err := c.PostForm(rig.srv.URL+"/api/v1/auth/invitations/sso", url.Values{"token": {token}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	// Someone else at the provider cannot use ann's link.
	c := rig.browser()
	resp := accept(c, created.Token, &mockoidc.MockUser{Subject: "sub-zed", PreferredUsername: "zed", Email: "zed@example.test"})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("another person accepting: %d", resp.StatusCode)
	}
	if _, err := h.st.GetUserByName(context.Background(), "zed"); err == nil {
		t.Fatal("a refused acceptance made a user")
	}

	// Ann accepts.
	c = rig.browser()
	resp = accept(c, created.Token, &mockoidc.MockUser{Subject: "sub-ann", PreferredUsername: "ann", Email: "Ann@example.test"})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("accepting with single sign-on: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	code, who := rig.whoami(t, c)
	if code != 200 || who.Name != "ann@example.test" || who.Via != "session (oidc)" || len(who.Teams) != 1 || who.Teams[0] != (adminapi.Membership{Team: "payments", Role: rbac.Developer}) {
		t.Fatalf("whoami after accepting: %d %+v", code, who)
	}
	// Once only, even through the provider.
	if resp := accept(rig.browser(), created.Token, &mockoidc.MockUser{Subject: "sub-ann", PreferredUsername: "ann", Email: "ann@example.test"}); resp.StatusCode != http.StatusGone {
		t.Fatalf("the used link again: %d", resp.StatusCode)
	}
	// Later sign-ins find the linked user, though the policy creates nobody.
	resp = rig.signIn(t, rig.browser(), &mockoidc.MockUser{Subject: "sub-ann", PreferredUsername: "ann", Email: "ann@example.test"})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("signing in again: %d", resp.StatusCode)
	}
	users, err := h.st.ListUsers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var people []string
	for _, u := range users {
		if u.Kind == store.UserPerson {
			people = append(people, u.Name)
		}
	}
	if strings.Join(people, ",") != "ann@example.test" {
		t.Fatalf("users after the invitation: %v", people)
	}
	var actions []string
	for _, ev := range rig.trail.find("admin.invitation") {
		actions = append(actions, ev.Fields["action"]+":"+ev.Fields["reason"])
	}
	if strings.Join(actions, " ") != "created: refused:other_identity accepted: refused:used" {
		t.Fatalf("invitation events: %v", actions)
	}
}
