package console_test

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/oauth2-proxy/mockoidc"
	"github.com/pquerna/otp/totp"

	"github.com/keygate/keygate/internal/adminapi"
)

// TestInvitationEndToEnd: an admin invites someone to a team from the
// team's page and copies the link shown once; the invitee opens it in a
// browser of their own, sets a password, is asked to enrol a second factor
// (a developer needs one), enrols it and lands signed in as a developer of
// the team. The token is in no URL the server sees, nor in any page's HTML.
// The admin then sees the new member and no pending invitation, and
// revokes a second invitation from the page.
func TestInvitationEndToEnd(t *testing.T) {
	admin := browser(t, 1280, 900)
	s := serve(t, "")
	s.api(t, "POST", "/teams", map[string]any{"name": "payments"}, &adminapi.Team{})
	s.api(t, "POST", "/teams", map[string]any{"name": "search"}, &adminapi.Team{})
	signInWithToken(t, admin, s, s.token)

	var link, page string
	run(t, admin, "invite from the team's page",
		chromedp.Navigate(s.admin+"/people"),
		chromedp.Click(chromedp.CSS(`a[href="/teams/payments"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#invite-email`)),
		chromedp.SendKeys(chromedp.CSS(`#invite-email`), "newbie@example.com"),
		chromedp.SetValue(chromedp.CSS(`#invite-role`), "developer"),
		chromedp.Submit(chromedp.CSS(`#invite-email`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="invite-link"]`)),
		chromedp.Func(readInto(&link, chromedp.Text(chromedp.CSS(`[data-testid="invite-link"]`)))),
		chromedp.Func(readInto(&page, chromedp.OuterHTML(chromedp.CSS(`[data-testid="invitations"]`)))),
	)
	token, ok := strings.CutPrefix(link, s.admin+"/invite#")
	if !ok || !strings.HasPrefix(token, "kg_invite_") {
		t.Fatalf("the page shows the link %q, want %s/invite#kg_invite_...", link, s.admin)
	}
	if !strings.Contains(page, "newbie@example.com") || strings.Contains(page, token) {
		t.Fatalf("the pending invitations: %s", page)
	}
	run(t, admin, "the link is shown once",
		chromedp.Navigate(s.admin+"/teams/payments"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="invitations"]`)),
		chromedp.Func(readInto(&page, chromedp.OuterHTML(chromedp.CSS(`html`)))),
	)
	if strings.Contains(page, token) {
		t.Fatal("the team's page shows the invitation link again")
	}

	// The invitee, in a browser of their own.
	invitee := browser(t, 390, 844)
	var about, loc, html, secret string
	run(t, invitee, "open the invitation",
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.CSS(`#password`)),
	)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(about, "payments") && time.Now().Before(deadline) {
		run(t, invitee, "read what the invitation is for",
			chromedp.Func(readInto(&about, chromedp.Text(chromedp.CSS(`[data-testid="invite-about"]`)))))
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(about, "newbie@example.com") || !strings.Contains(about, "team payments as developer") {
		t.Fatalf("the invitation page says %q", about)
	}
	run(t, invitee, "the token leaves the address bar",
		chromedp.Func(readInto(&loc, chromedp.Location())),
		chromedp.Func(readInto(&html, chromedp.Evaluate[string](`document.documentElement.outerHTML`))),
	)
	if loc != s.admin+"/invite" || strings.Contains(html, token) {
		t.Fatalf("after opening the link the address is %q (token in the page: %v)", loc, strings.Contains(html, token))
	}
	run(t, invitee, "set a password",
		chromedp.SendKeys(chromedp.CSS(`#password`), "a long invitee passphrase"),
		chromedp.SendKeys(chromedp.CSS(`#password2`), "a long invitee passphrase"),
		chromedp.Submit(chromedp.CSS(`#password`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="enrol-required"]`)),
	)
	// Until a second factor is enrolled, every page leads here.
	run(t, invitee, "other pages lead to enrolment",
		chromedp.Navigate(s.admin+"/keys"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="enrol-required"]`)),
		chromedp.Click(chromedp.CSS(`form[action="/enrol/totp"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="totp-secret"]`)),
		chromedp.Func(readInto(&secret, chromedp.Text(chromedp.CSS(`[data-testid="totp-secret"]`)))),
	)
	code, err := totp.GenerateCode(strings.TrimSpace(secret), time.Now())
	if err != nil {
		t.Fatalf("the page shows a TOTP secret that is not one: %q: %v", secret, err)
	}
	var who string
	run(t, invitee, "confirm the second factor",
		chromedp.SendKeys(chromedp.CSS(`#otp`), code),
		chromedp.Submit(chromedp.CSS(`#otp`)),
	)
	// The enrolment page stays while the next one loads, and a read
	// during the switch finds its nodes gone: wait for the next page's
	// address before reading it.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		loc, err := chromedp.Run(invitee, chromedp.Location())
		if err == nil && strings.Contains(loc, "done=enrolled") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the second factor's confirmation did not lead on: at %s", loc)
		}
	}
	run(t, invitee, "the page after enrolment",
		chromedp.WaitVisible(chromedp.CSS(`.flash`)),
		chromedp.Func(readInto(&who, chromedp.Text(chromedp.CSS(`[data-testid="whoami"]`)))),
	)
	run(t, invitee, "see the team",
		chromedp.Navigate(s.admin+"/teams/payments"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="members"]`)),
		chromedp.Func(readInto(&page, chromedp.Text(chromedp.CSS(`[data-testid="members"]`)))),
	)
	if !strings.Contains(who, "newbie@example.com") || !strings.Contains(who, "developer") {
		t.Fatalf("the invitee is signed in as %q, want newbie@example.com, developer", who)
	}
	if !strings.Contains(page, "newbie@example.com") {
		t.Fatalf("the team's members as the invitee sees them: %q", page)
	}
	var dev adminapi.User
	s.api(t, "GET", "/users/newbie@example.com", nil, &dev)
	if len(dev.Teams) != 1 || dev.Teams[0] != (adminapi.Membership{Team: "payments", Role: "developer"}) {
		t.Fatalf("the new user's teams: %+v", dev.Teams)
	}

	// Invited to a second team, the member joins as itself, signed in.
	var more adminapi.CreatedInvitation
	s.api(t, "POST", "/teams/search/invitations", adminapi.CreateInvitationRequest{Email: "newbie@example.com", Role: "viewer"}, &more)
	var joined string
	run(t, invitee, "join a second team as the same user",
		chromedp.Navigate(more.Link),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="join"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="join"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.flash`)),
		chromedp.Func(readInto(&joined, chromedp.Text(chromedp.CSS(`h1`)))),
		chromedp.Func(readInto(&loc, chromedp.Location())),
	)
	if joined != "Team search" || loc != s.admin+"/teams/search?done=joined" {
		t.Fatalf("after joining: %q at %s", joined, loc)
	}
	s.api(t, "GET", "/users/newbie@example.com", nil, &dev)
	if len(dev.Teams) != 2 {
		t.Fatalf("the member's teams after joining a second: %+v", dev.Teams)
	}

	// The link again, in yet another browser: refused.
	again := browser(t, 1280, 900)
	var msg string
	run(t, again, "the link works once",
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.CSS(`#password`)),
		chromedp.SendKeys(chromedp.CSS(`#password`), "another long passphrase"),
		chromedp.SendKeys(chromedp.CSS(`#password2`), "another long passphrase"),
		chromedp.Submit(chromedp.CSS(`#password`)),
		chromedp.WaitVisible(chromedp.CSS(`.error`)),
		chromedp.Func(readInto(&msg, chromedp.Text(chromedp.CSS(`.error`)))),
	)
	if !strings.Contains(msg, "accepted already") {
		t.Fatalf("the used link again: %q", msg)
	}

	// The admin sees the member, no pending invitation, and revokes another.
	var second adminapi.CreatedInvitation
	s.api(t, "POST", "/teams/payments/invitations", adminapi.CreateInvitationRequest{Email: "later@example.com", Role: "viewer"}, &second)
	var flash string
	run(t, admin, "revoke an invitation",
		chromedp.Navigate(s.admin+"/teams/payments"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="invitations"]`)),
		chromedp.Func(readInto(&page, chromedp.Text(chromedp.CSS(`[data-testid="members"]`)))),
		chromedp.Func(readInto(&html, chromedp.Text(chromedp.CSS(`[data-testid="invitations"]`)))),
		chromedp.Func(readInto(&flash, chromedp.Evaluate[string](`window.confirm = function () { return true; }; "ok"`))),
		chromedp.Click(chromedp.CSS(`form[action="/invitations/`+second.Invitation.ID+`/revoke"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`.flash`)),
		chromedp.Func(readInto(&flash, chromedp.Text(chromedp.CSS(`.flash`)))),
	)
	if !strings.Contains(page, "newbie@example.com") || strings.Contains(html, "newbie@example.com") || !strings.Contains(html, "later@example.com") {
		t.Fatalf("the admin's team page: members %q, invitations %q", page, html)
	}
	if !strings.Contains(flash, "revoked") {
		t.Fatalf("after revoking: %q", flash)
	}
	var list adminapi.InvitationList
	s.api(t, "GET", "/teams/payments/invitations", nil, &list)
	if len(list.Invitations) != 0 {
		t.Fatalf("pending invitations after the revocation: %+v", list.Invitations)
	}
	if strings.Contains(s.stderr.String(), token) {
		t.Fatal("keygate's log carries the invitation token")
	}
}

// TestInvitationWithSingleSignOn: where people sign in with an OpenID
// provider (a real one, mockoidc, in the test), the invitee joins from the
// invitation page with it, as the invited address, and lands signed in as
// a member of the team, though the provider's groups map to nothing.
func TestInvitationWithSingleSignOn(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	op, err := mockoidc.NewServer(key)
	if err != nil {
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
	s := serve(t, fmt.Sprintf(`signin:
  oidc:
    name: Test IdP
    issuer: %s
    client_id: %s
    client_secret: %s
    redirect_url: http://{{admin}}/api/v1/auth/oidc/callback
`, op.Issuer(), op.ClientID, op.ClientSecret))
	s.api(t, "POST", "/teams", map[string]any{"name": "payments"}, &adminapi.Team{})
	var created adminapi.CreatedInvitation
	// mockoidc signs in its default user, jane.doe@example.com.
	s.api(t, "POST", "/teams/payments/invitations", adminapi.CreateInvitationRequest{Email: "jane.doe@example.com", Role: "viewer"}, &created)

	ctx := browser(t, 1280, 900)
	var who, loc string
	run(t, ctx, "join with single sign-on",
		chromedp.Navigate(created.Link),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="sso-join"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="sso-join"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="whoami"]`)),
		chromedp.Func(readInto(&who, chromedp.Text(chromedp.CSS(`[data-testid="whoami"]`)))),
		chromedp.Func(readInto(&loc, chromedp.Location())),
	)
	if !strings.Contains(who, "jane.doe@example.com") || !strings.Contains(who, "viewer") || loc != s.admin+"/" {
		t.Fatalf("after joining with single sign-on: %q at %s", who, loc)
	}
	var u adminapi.User
	s.api(t, "GET", "/users/jane.doe@example.com", nil, &u)
	if len(u.Teams) != 1 || u.Teams[0] != (adminapi.Membership{Team: "payments", Role: "viewer"}) {
		t.Fatalf("the new user's teams: %+v", u.Teams)
	}
}
