package main

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/adminapi"
)

// TestInvitationsThroughTheBinary: a team-admin invites people with
// keygate invite create, lists and revokes invitations; the link it prints
// once signs the invitee up as a member of the team with the role; a
// revoked, reused or too-strong invitation is refused; no invitation token
// reaches keygate's own output.
func TestInvitationsThroughTheBinary(t *testing.T) {
	for name, dbURL := range databases(t) {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
			cfg.Database = dbURL(t)
			cfg.Roles = map[string][]string{"otp-admin": {"keys.read", "keys.enroll_otp"}}
			in := start(t, cfg, "")
			in.mustCLI(nil, "", "team", "add", "payments")
			in.mustCLI(nil, "", "team", "add", "search")
			pat := in.addUser("pat", "--role", "team-admin", "--team", "payments")

			out, errb, err := in.as(pat, "invite", "create", "--team", "payments", "--role", "viewer", "ann@example.com")
			if err != nil {
				t.Fatalf("invite create: %v\n%s", err, errb)
			}
			link := strings.TrimSpace(out)
			token := regexp.MustCompile(`kg_invite_[0-9A-Za-z]+`).FindString(link)
			if token == "" || link != in.addrs.Admin+"/invite#"+token {
				t.Fatalf("invite create printed %q, want the link %s/invite#kg_invite_...", out, in.addrs.Admin)
			}
			if !strings.Contains(errb, "only time keygate shows the link") || strings.Contains(errb, token) {
				t.Fatalf("invite create's note: %q", errb)
			}
			// Refused: more than pat holds, another team, a role for everywhere.
			for _, args := range [][]string{
				{"--team", "payments", "--role", "otp-admin"},
				{"--team", "search", "--role", "viewer"},
				{"--team", "payments", "--role", "admin"},
			} {
				if _, errb, err := in.as(pat, append(append([]string{"invite", "create"}, args...), "x@example.com")...); err == nil {
					t.Fatalf("invite create %v was allowed", args)
				} else if !strings.Contains(err.Error(), "nobody gives more than they hold") && !strings.Contains(err.Error(), "not found") && !strings.Contains(err.Error(), "applies everywhere") {
					t.Fatalf("invite create %v: %v %s", args, err, errb)
				}
			}

			in.mustAs(pat, "invite", "create", "--team", "payments", "--role", "developer", "--ttl", "2d", "bo@example.com")
			var list adminapi.InvitationList
			decodeJSON(t, in.mustAs(pat, "--json", "invite", "list"), &list)
			if len(list.Invitations) != 2 || list.Invitations[0].Email != "bo@example.com" || list.Invitations[1].Email != "ann@example.com" {
				t.Fatalf("invite list: %+v", list.Invitations)
			}
			table := in.mustAs(pat, "invite", "list", "--team", "payments")
			if !strings.Contains(table, "ann@example.com") || !strings.Contains(table, "pending") || strings.Contains(table, "kg_invite_") {
				t.Fatalf("invite list's table: %s", table)
			}
			bo := list.Invitations[0]
			if out := in.mustAs(pat, "invite", "revoke", bo.ID); !strings.Contains(out, "Revoked invitation "+bo.ID) {
				t.Fatalf("invite revoke: %q", out)
			}
			if _, _, err := in.as(pat, "invite", "revoke", bo.ID); err == nil || !strings.Contains(err.Error(), "revoked already") {
				t.Fatalf("invite revoke twice: %v", err)
			}

			// Ann accepts with a password and is signed in as a viewer of payments.
			accept := func(tok string) (int, string) {
				body, _ := json.Marshal(adminapi.AcceptInvitationRequest{Token: tok, Password: "a long test passphrase"})
				return postJSON(t, in.addrs.Admin+"/api/v1/auth/invitations/accept", "", string(body))
			}
			code, body := accept(token)
			if code != http.StatusOK {
				t.Fatalf("accept: %d %s", code, body)
			}
			var login adminapi.LoginResponse
			decodeJSON(t, body, &login)
			var who adminapi.WhoAmI
			decodeJSON(t, in.mustAs(login.Token, "--json", "whoami"), &who)
			if who.Name != "ann@example.com" || len(who.Teams) != 1 || who.Teams[0] != (adminapi.Membership{Team: "payments", Role: "viewer"}) {
				t.Fatalf("whoami as the new member: %+v", who)
			}
			if code, body := accept(token); code != http.StatusGone || !strings.Contains(body, "invitation_used") {
				t.Fatalf("the link again: %d %s", code, body)
			}
			decodeJSON(t, in.mustAs(pat, "--json", "invite", "list", "--all"), &list)
			if len(list.Invitations) != 2 || list.Invitations[0].Status != "revoked" || list.Invitations[1].Status != "accepted" {
				t.Fatalf("invite list --all: %+v", list.Invitations)
			}
			if strings.Contains(in.stdout.String()+in.stderr.String(), token) {
				t.Fatal("keygate's output carries an invitation token")
			}
		})
	}
}
