package cli

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/admin"
	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/rbac"
	"github.com/keygate/keygate/internal/store/storetest"
	"github.com/keygate/keygate/internal/vault"
)

// newRealHarness points the command line at the real admin API over a
// real SQLite store, logged in with the bootstrap credential.
func newRealHarness(t *testing.T, approvals ...rbac.Permission) *harness {
	t.Helper()
	st := storetest.Open(t, storetest.SQLiteURL(t))
	mk, pepper := make([]byte, vault.MasterKeySize), make([]byte, apikey.MinPepperSize)
	rand.Read(mk)
	rand.Read(pepper)
	kek, err := vault.NewLocalKEK(mk)
	if err != nil {
		t.Fatal(err)
	}
	hasher, err := apikey.NewHasher(pepper)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := admin.EnsureBootstrapToken(context.Background(), st, hasher, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	api := admin.New(admin.Options{Store: st, People: st, Credentials: st, Approvals: st, Vault: vault.New(kek, st), Hasher: hasher,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Approval: admin.ApprovalPolicy{RequiredFor: approvals}})
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return &harness{t: t, home: t.TempDir(), kr: unavailableKeyring{}, env: map[string]string{EnvAdminURL: srv.URL, EnvAdminToken: tok.Reveal()}}
}

// as returns a harness that runs commands with another credential.
func (h *harness) as(token string) *harness {
	env := map[string]string{}
	for k, v := range h.env {
		env[k] = v
	}
	env[EnvAdminToken] = token
	return &harness{t: h.t, home: h.home, kr: h.kr, env: env}
}

var adminCred = regexp.MustCompile(`^kg_admin_[0-9A-Za-z]+\n$`)

// TestUserCommands: user add prints the first credential alone on stdout;
// list, show, role, whoami, personal tokens, admin-token list and revoke,
// and disable work through the real admin API; bad input changes nothing.
func TestUserCommands(t *testing.T) {
	h := newRealHarness(t)
	out, errOut := h.mustRun("", "user", "add", "alice", "--role", "admin", "--ttl", "30d")
	if !adminCred.MatchString(out) || !strings.Contains(errOut, "only time") {
		t.Fatalf("user add printed %q / %q", out, errOut)
	}
	alice := h.as(strings.TrimSpace(out))
	out, _ = alice.mustRun("", "whoami")
	for _, want := range []string{"Name:", "alice", "Role:", "admin", "Signed in with:", "personal access token", "keys.create"} {
		if !strings.Contains(out, want) {
			t.Errorf("whoami lacks %q:\n%s", want, out)
		}
	}
	// An unknown role is refused with the roles named, and changes nothing.
	_, _, err := h.run("", "user", "role", "alice", "superuser")
	if err == nil || !strings.Contains(err.Error(), "superuser") || !strings.Contains(err.Error(), "developer") {
		t.Fatalf("unknown role: %v", err)
	}
	out, _ = h.mustRun("", "user", "show", "alice", "--json")
	var u adminapi.User
	if err := json.Unmarshal([]byte(out), &u); err != nil || u.Role != "admin" || len(u.Tokens) != 1 {
		t.Fatalf("user show %s: %v", out, err)
	}
	if _, _, err := h.run("", "user", "add", "bob"); err == nil || !strings.Contains(err.Error(), "--role is required") {
		t.Fatalf("user add without a role: %v", err)
	}

	out, _ = alice.mustRun("", "user", "token", "create", "--role", "auditor", "--ttl", "7d", "--name", "dash")
	dash := alice.as(strings.TrimSpace(out))
	out, _ = dash.mustRun("", "whoami")
	if !strings.Contains(out, "capped at auditor") {
		t.Errorf("a capped token's whoami:\n%s", out)
	}
	if _, _, err := dash.run("", "key", "create", "--name", "x"); err == nil || !strings.Contains(err.Error(), "keys.create") {
		t.Fatalf("an auditor-capped token created a key: %v", err)
	}

	out, _ = h.mustRun("", "admin-token", "list", "--json")
	var list adminapi.AdminTokenList
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Tokens) != 3 {
		t.Fatalf("admin-token list %s: %v", out, err)
	}
	var dashID string
	for _, tk := range list.Tokens {
		if tk.ID == "" || tk.Role == "" || tk.ExpiresAt == nil || tk.Status != "active" {
			t.Errorf("a listed credential lacks its id, role, expiry or status: %+v", tk)
		}
		if tk.Name == "dash" {
			dashID = tk.ID
			if tk.Owner != "alice" || tk.Role != "auditor" || tk.LastUsedAt == nil || tk.LastUsedFrom != "127.0.0.1" {
				t.Errorf("dash %+v", tk)
			}
		}
	}
	out, _ = h.mustRun("", "admin-token", "list")
	if !strings.Contains(out, "LAST-USED") || !strings.Contains(out, "alice") {
		t.Errorf("admin-token list:\n%s", out)
	}
	alice.mustRun("", "admin-token", "revoke", dashID)
	if _, _, err := dash.run("", "whoami"); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("a revoked token: %v", err)
	}

	h.mustRun("", "user", "disable", "alice")
	if _, _, err := alice.run("", "whoami"); err == nil {
		t.Fatal("a disabled user's credential still works")
	}
	out, _ = h.mustRun("", "user", "list")
	if !strings.Contains(out, "disabled") {
		t.Errorf("user list:\n%s", out)
	}
	out, _ = h.mustRun("", "service-account", "add", "terraform", "--role", "operator")
	sa := h.as(strings.TrimSpace(out))
	sa.mustRun("", "key", "create", "--name", "tf-made")
	out, _ = h.mustRun("", "service-account", "token", "create", "terraform", "--ttl", "1d")
	if !adminCred.MatchString(out) {
		t.Fatalf("service-account token create printed %q", out)
	}
}

// TestTeamCommands: teams, members, policy (refused while keys break it),
// shared limits and usage; a team-admin sees only its own team.
func TestTeamCommands(t *testing.T) {
	h := newRealHarness(t)
	h.mustRun("", "team", "add", "payments", "--budget", "100usd/month")
	h.mustRun("", "team", "add", "search")
	out, _ := h.mustRun("", "user", "add", "pat", "--role", "team-admin", "--team", "payments")
	pat := h.as(strings.TrimSpace(out))
	out, _ = h.mustRun("", "user", "add", "sam", "--role", "team-admin", "--team", "search")
	sam := h.as(strings.TrimSpace(out))
	_, errOut := pat.mustRun("", "key", "create", "--name", "pay-bot")
	if !strings.Contains(errOut, "team payments") {
		t.Errorf("key create note: %s", errOut)
	}
	sam.mustRun("", "key", "create", "--name", "search-bot")

	out, _ = pat.mustRun("", "key", "list", "--json")
	var kl adminapi.KeyList
	if err := json.Unmarshal([]byte(out), &kl); err != nil || len(kl.Keys) != 1 || kl.Keys[0].Name != "pay-bot" || kl.Keys[0].Team != "payments" {
		t.Fatalf("payments' team-admin lists %s", out)
	}
	if _, _, err := pat.run("", "key", "revoke", "search-bot"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("revoking another team's key: %v", err)
	}
	if _, _, err := pat.run("", "team", "show", "search"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("showing another team: %v", err)
	}
	out, _ = pat.mustRun("", "team", "show", "payments")
	for _, want := range []string{"Shared limits:", "100usd/month", "pat", "team-admin"} {
		if !strings.Contains(out, want) {
			t.Errorf("team show lacks %q:\n%s", want, out)
		}
	}

	// A ceiling below an existing key is refused, naming it; nothing changes.
	_, _, err := h.run("", "team", "policy", "payments", "--allow-model", "gpt-4o*", "--max-key-ttl", "30d", "--rpm", "100")
	if err == nil || !strings.Contains(err.Error(), "pay-bot") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("a policy below an existing key: %v", err)
	}
	out, _ = h.mustRun("", "team", "show", "payments", "--json")
	if strings.Contains(out, "gpt-4o") {
		t.Fatalf("a refused policy was stored: %s", out)
	}
	pat.mustRun("", "key", "revoke", "pay-bot")
	h.mustRun("", "team", "policy", "payments", "--allow-model", "gpt-4o*", "--max-key-ttl", "30d", "--rpm", "100")
	if _, _, err := pat.run("", "key", "create", "--name", "greedy", "--rpm", "500"); err == nil || !strings.Contains(err.Error(), "rpm") {
		t.Fatalf("a key above the team's ceiling: %v", err)
	}
	out, _ = pat.mustRun("", "key", "create", "--name", "modest", "--json")
	var ck adminapi.CreatedKey
	if err := json.Unmarshal([]byte(out), &ck); err != nil || ck.Key.Limits.RPM != 100 || ck.Key.ExpiresAt == nil {
		t.Fatalf("a key from the policy: %s", out)
	}

	h.mustRun("", "team", "limits", "payments", "--rpm", "600")
	out, _ = pat.mustRun("", "team", "list")
	if !strings.Contains(out, "600rpm") || strings.Contains(out, "search") {
		t.Errorf("team list as payments' team-admin:\n%s", out)
	}
	out, _ = h.mustRun("", "user", "add", "dana", "--role", "viewer", "--no-token")
	if !strings.Contains(out, "Added user dana") {
		t.Errorf("user add --no-token: %q", out)
	}
	pat.mustRun("", "team", "member", "add", "payments", "dana", "--role", "developer")
	out, _ = pat.mustRun("", "team", "member", "list", "payments")
	if !strings.Contains(out, "dana") || !strings.Contains(out, "developer") {
		t.Errorf("members:\n%s", out)
	}
	if _, _, err := pat.run("", "team", "member", "add", "search", "dana", "--role", "viewer"); err == nil {
		t.Fatal("a team-admin added a member to another team")
	}
	pat.mustRun("", "team", "member", "remove", "payments", "dana")
	pat.mustRun("", "team", "usage", "payments")
	out, _ = h.mustRun("", "roles")
	for _, want := range []string{"owner", "team-admin", "its teams", "keys.update:own", "everyone"} {
		if !strings.Contains(out, want) {
			t.Errorf("roles lacks %q:\n%s", want, out)
		}
	}
}

// TestApprovalCommands: a command that needs a second person says what to
// do; another owner approves; the first runs it again with --approval.
func TestApprovalCommands(t *testing.T) {
	h := newRealHarness(t, rbac.SecretsReadValue)
	h.mustRun("test-only-value\n", "secret", "put", "db/password", "--stdin")
	var people [2]*harness
	for i, name := range []string{"alice", "bob"} {
		out, _ := h.mustRun("", "user", "add", name, "--role", "owner")
		people[i] = h.as(strings.TrimSpace(out))
	}
	alice, bob := people[0], people[1]
	out, _, err := alice.run("", "secret", "get", "db/password")
	if err == nil || out != "" || !strings.Contains(err.Error(), "keygate approve apr_") || !strings.Contains(err.Error(), "--approval") {
		t.Fatalf("a secret read waiting for approval: %q %v", out, err)
	}
	id := regexp.MustCompile(`apr_[0-9a-f]+`).FindString(err.Error())
	if _, _, err := alice.run("", "approve", id); err == nil || !strings.Contains(err.Error(), "your own") {
		t.Fatalf("approving one's own: %v", err)
	}
	out, _ = bob.mustRun("", "approvals", "list")
	if !strings.Contains(out, id) || !strings.Contains(out, "pending") || !strings.Contains(out, "alice") {
		t.Errorf("approvals list:\n%s", out)
	}
	bob.mustRun("", "approve", id)
	out, _ = alice.mustRun("", "secret", "get", "db/password", "--approval", id)
	if strings.TrimSpace(out) != "test-only-value" {
		t.Fatalf("the approved read printed %q", out)
	}
	if _, _, err := alice.run("", "secret", "get", "db/password", "--approval", id); err == nil || !strings.Contains(err.Error(), "used") {
		t.Fatalf("a second use: %v", err)
	}
	_, _, err = alice.run("", "secret", "get", "db/password")
	id = regexp.MustCompile(`apr_[0-9a-f]+`).FindString(err.Error())
	bob.mustRun("", "approve", "--deny", id)
	if _, _, err := alice.run("", "secret", "get", "db/password", "--approval", id); err == nil || !strings.Contains(err.Error(), "denied") {
		t.Fatalf("a denied request: %v", err)
	}
}
