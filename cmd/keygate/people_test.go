package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/store/storetest"
)

var adminCredRE = regexp.MustCompile(`kg_admin_[0-9A-Za-z]+`)

// as runs CLI commands with another admin credential.
func (in *instance) as(token string, args ...string) (string, string, error) {
	return in.cli(map[string]string{"KEYGATE_ADMIN_TOKEN": token}, "", args...)
}

func (in *instance) mustAs(token string, args ...string) string {
	in.t.Helper()
	out, errb, err := in.as(token, args...)
	if err != nil {
		in.t.Fatalf("keygate %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errb)
	}
	return out
}

// addUser adds a user through the CLI and returns its first credential.
func (in *instance) addUser(args ...string) string {
	in.t.Helper()
	tok := adminCredRE.FindString(in.mustCLI(nil, "", append([]string{"user", "add"}, args...)...))
	if tok == "" {
		in.t.Fatal("user add printed no credential")
	}
	return tok
}

// TestTeamIsolationThroughTheBinary: two teams, two team-admins; each
// sees only its own team's keys, budget and usage, and is told "not found"
// for the other's; a team's shared limits bind all its keys at the gateway.
func TestTeamIsolationThroughTheBinary(t *testing.T) {
	for name, dbURL := range databases(t) {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
			cfg.Database = dbURL(t)
			in := start(t, cfg, "")
			up := newUpstreams(t, fakeprovider.Options{}, fakeprovider.Options{})
			in.register(up)
			in.mustCLI(nil, "", "team", "add", "payments", "--budget", "100usd/month", "--rpm", "3")
			in.mustCLI(nil, "", "team", "add", "search", "--budget", "7usd/day")
			pat := in.addUser("pat", "--role", "team-admin", "--team", "payments")
			sam := in.addUser("sam", "--role", "team-admin", "--team", "search")
			payKeys := []string{
				in.keyAs(pat, "pay-bot"),
				in.keyAs(pat, "pay-batch"),
			}
			in.keyAs(sam, "search-bot")

			var kl adminapi.KeyList
			decodeJSON(t, in.mustAs(pat, "--json", "key", "list"), &kl)
			if names := keyListNames(kl); names != "pay-bot,pay-batch" {
				t.Fatalf("payments' team-admin lists %s", names)
			}
			decodeJSON(t, in.mustAs(sam, "--json", "key", "list"), &kl)
			if names := keyListNames(kl); names != "search-bot" {
				t.Fatalf("search's team-admin lists %s", names)
			}
			for _, args := range [][]string{
				{"key", "show", "search-bot"}, {"key", "revoke", "search-bot"}, {"key", "suspend", "search-bot"},
				{"key", "usage", "search-bot"}, {"key", "update", "search-bot", "--rpm", "1"},
				{"team", "show", "search"}, {"team", "usage", "search"}, {"team", "member", "list", "search"},
			} {
				_, _, err := in.as(pat, args...)
				if err == nil || !strings.Contains(err.Error(), "not found") {
					t.Errorf("payments' team-admin: keygate %s: %v, want not found", strings.Join(args, " "), err)
				}
			}
			var k adminapi.Key
			decodeJSON(t, in.mustCLI(nil, "", "--json", "key", "show", "search-bot"), &k)
			if k.Status != "active" || k.SuspendedAt != nil || k.Limits.RPM != 0 {
				t.Fatalf("another team's commands changed search-bot: %+v", k)
			}
			var teams adminapi.TeamList
			decodeJSON(t, in.mustAs(pat, "--json", "team", "list"), &teams)
			if len(teams.Teams) != 1 || teams.Teams[0].Name != "payments" || teams.Teams[0].Limits.Budgets[0].String() != "100usd/month" {
				t.Fatalf("payments' team-admin sees teams %+v", teams.Teams)
			}

			// The team's shared rpm of 3 binds both of its keys together.
			chat := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
			var codes []int
			for i := range 4 {
				code, _ := postJSON(t, in.addrs.Gateway+"/v1/chat/completions", payKeys[i%2], chat)
				codes = append(codes, code)
			}
			if fmt.Sprint(codes) != "[200 200 200 429]" {
				t.Fatalf("four calls across the team's two keys under a shared 3 rpm: %v", codes)
			}
			// Each team-admin sees its team's usage; the other's is not found.
			deadline := time.Now().Add(15 * time.Second)
			for {
				var u adminapi.TeamUsage
				decodeJSON(t, in.mustAs(pat, "--json", "team", "usage", "payments"), &u)
				if len(u.Rows) == 1 && u.Rows[0].Requests == 3 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("team usage never showed the calls: %+v", u.Rows)
				}
				time.Sleep(200 * time.Millisecond)
			}
			if _, _, err := in.as(sam, "team", "usage", "payments"); err == nil || !strings.Contains(err.Error(), "not found") {
				t.Fatalf("search's team-admin reading payments' usage: %v", err)
			}
		})
	}
}

func (in *instance) keyAs(token, name string, args ...string) string {
	in.t.Helper()
	k := regexp.MustCompile(`kg_[a-z0-9]+_[0-9A-Za-z]+`).FindString(in.mustAs(token, append([]string{"key", "create", "--name", name}, args...)...))
	if k == "" {
		in.t.Fatalf("key create %s printed no key", name)
	}
	return k
}

func keyListNames(kl adminapi.KeyList) string {
	var n []string
	for _, k := range kl.Keys {
		n = append(n, k.Name)
	}
	return strings.Join(n, ",")
}

// TestAdminCredentialsThroughTheBinary: every credential lists with its
// owner, role, expiry and last use; the bootstrap credential expires,
// serve warns while it outlives the first user, and revoking it works.
func TestAdminCredentialsThroughTheBinary(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	in := start(t, cfg, "")
	if !strings.Contains(in.stdout.String(), "expires in 30 days") {
		t.Errorf("the first start does not say the credential expires:\n%s", in.stdout.String())
	}
	owner := in.addUser("olga", "--role", "owner")
	in.mustAs(owner, "whoami")
	var list adminapi.AdminTokenList
	decodeJSON(t, in.mustCLI(nil, "", "--json", "admin-token", "list"), &list)
	var boot adminapi.AdminToken
	for _, tk := range list.Tokens {
		if tk.ID == "" || tk.Role == "" || tk.ExpiresAt == nil {
			t.Errorf("a credential lists without id, role or expiry: %+v", tk)
		}
		switch tk.Kind {
		case "bootstrap":
			boot = tk
		case "personal":
			if tk.Owner != "olga" || tk.LastUsedFrom != "127.0.0.1" || tk.LastUsedAt == nil {
				t.Errorf("olga's credential %+v", tk)
			}
		}
	}
	if boot.ID == "" || boot.Role != "owner" || boot.ExpiresAt.Sub(boot.CreatedAt) != 30*24*time.Hour {
		t.Fatalf("bootstrap credential %+v", boot)
	}
	in.stop()

	// A restart warns while the bootstrap credential is still valid.
	again := start(t, cfg, in.admin)
	if !strings.Contains(again.stdout.String(), "warning: the bootstrap admin credential "+boot.ID+" is still valid") {
		t.Errorf("no warning about the bootstrap credential:\n%s", again.stdout.String())
	}
	again.mustAs(owner, "admin-token", "revoke", boot.ID)
	if _, _, err := again.cli(nil, "", "whoami"); err == nil {
		t.Fatal("the revoked bootstrap credential still works")
	}
	again.stop()
	third := start(t, cfg, owner)
	if strings.Contains(third.stdout.String(), "warning: the bootstrap") {
		t.Errorf("a warning about a revoked bootstrap credential:\n%s", third.stdout.String())
	}
}

// TestApprovalsThroughTheBinary: with backups needing two people, one
// owner's backup waits; the same owner cannot approve it; another does;
// the first runs it again with --approval, once.
func TestApprovalsThroughTheBinary(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Approvals.RequiredFor = []string{"backup.export", "secrets.read_value"}
	in := start(t, cfg, "")
	alice := in.addUser("alice", "--role", "owner")
	bob := in.addUser("bob", "--role", "owner")
	file := filepath.Join(t.TempDir(), "b.kgbak")
	_, _, err := in.as(alice, "vault", "backup", "--out", file)
	id := regexp.MustCompile(`apr_[0-9a-f]+`).FindString(fmt.Sprint(err))
	if id == "" || !strings.Contains(err.Error(), "keygate approve") {
		t.Fatalf("a backup waiting for approval: %v", err)
	}
	if _, err := os.Stat(file); err == nil {
		t.Fatal("a backup waiting for approval wrote a file")
	}
	if _, _, err := in.as(alice, "approve", id); err == nil || !strings.Contains(err.Error(), "your own") {
		t.Fatalf("self-approval: %v", err)
	}
	in.mustAs(bob, "approve", id)
	in.mustAs(alice, "vault", "backup", "--out", file, "--approval", id)
	if st, err := os.Stat(file); err != nil || st.Size() == 0 {
		t.Fatalf("the approved backup: %v", err)
	}
	if _, _, err := in.as(alice, "vault", "backup", "--out", file+"2", "--approval", id); err == nil || !strings.Contains(err.Error(), "used") {
		t.Fatalf("a second use of the approval: %v", err)
	}
	// The request, the decision and the use are on the audit trail.
	for _, typ := range []string{"approval.requested", "approval.approved", "approval.used"} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			out := in.mustCLI(nil, "", "--json", "audit", "search", "--type", typ)
			if strings.Contains(out, id) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s event for %s on the audit trail:\n%s", typ, id, out)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// TestBadPeopleConfigIsRefused: a custom role naming a permission keygate
// does not know stops serve before it opens anything, naming it.
func TestBadPeopleConfigIsRefused(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "keygate.yaml")
	if err := os.WriteFile(conf, []byte("roles:\n  release-manager: [keys.read, keys.obliterate]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb strings.Builder
	err := run(context.Background(), []string{"serve", "--config", conf, "--data-dir", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"},
		func(string) string { return "" }, strings.NewReader(""), &out, &errb)
	if err == nil || !strings.Contains(err.Error(), `roles.release-manager: unknown permission "keys.obliterate"`) {
		t.Fatalf("serve with an unknown permission: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "keygate.db")); err == nil {
		t.Fatal("a refused start created a database")
	}
}

// TestUserDisableReachesEveryNode: two keygate processes share
// PostgreSQL; a user disabled through one is refused by both within a
// second (at once, in fact: admin credentials are checked against the
// database on every request).
func TestUserDisableReachesEveryNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two keygate processes")
	}
	db := storetest.PostgresURL(t)
	env := map[string]string{"KEYGATE_DATABASE": db, "KEYGATE_KEK": randomKeyURL(t), "KEYGATE_PROVIDER_REFRESH": "200ms"}
	var nodes []*proc
	for i := range 2 {
		nodes = append(nodes, startProc(t, env, "serve", "--data-dir", filepath.Join(t.TempDir(), fmt.Sprint(i)), "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"))
	}
	one := &instance{t: t, admin: nodes[0].admin}
	one.addrs.Admin = nodes[0].adminU
	two := &instance{t: t, admin: nodes[0].admin}
	two.addrs.Admin = nodes[1].adminU
	alice := one.addUser("alice", "--role", "admin")
	one.mustAs(alice, "whoami")
	two.mustAs(alice, "whoami")

	start := time.Now()
	one.mustCLI(nil, "", "user", "disable", "alice")
	if _, _, err := one.as(alice, "whoami"); err == nil {
		t.Fatal("node 1 still accepts the disabled user's credential")
	}
	for {
		_, _, err := two.as(alice, "whoami")
		if err != nil && strings.Contains(err.Error(), "refused") {
			t.Logf("disabling through node 1 took effect on node 2 after %v", time.Since(start))
			break
		}
		if time.Since(start) > time.Second {
			t.Fatalf("node 2 still accepted the disabled user's credential after a second: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
