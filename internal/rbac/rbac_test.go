package rbac_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/rbac"
)

func table(t *testing.T, custom map[string][]string) *rbac.Table {
	t.Helper()
	tb, err := rbac.NewTable(custom)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// TestSegregationOfDuties: reading a secret value, exporting a backup and
// rotating the KEK are held by owner alone among the built-in roles.
func TestSegregationOfDuties(t *testing.T) {
	tb := table(t, nil)
	for _, perm := range []rbac.Permission{rbac.SecretsReadValue, rbac.BackupExport, rbac.VaultRotateKEK} {
		for _, r := range tb.Roles() {
			_, has := r.Grant(perm)
			if has != (r.Name == rbac.Owner) {
				t.Errorf("role %s holds %s: %v; only owner may", r.Name, perm, has)
			}
		}
	}
	sec, _ := tb.Role(rbac.Security)
	if _, ok := sec.Grant(rbac.KeysCreate); ok {
		t.Error("security must not create keys")
	}
	for _, p := range []rbac.Permission{rbac.KeysRevoke, rbac.KeysSuspend, rbac.KeysRotate, rbac.AuditRead, rbac.AlertsResolve} {
		if _, ok := sec.Grant(p); !ok {
			t.Errorf("security lacks %s", p)
		}
	}
	aud, _ := tb.Role(rbac.Auditor)
	for _, g := range aud.Grants() {
		if !strings.HasSuffix(string(g.Permission), ".read") && !strings.HasSuffix(string(g.Permission), ".list") &&
			g.Permission != rbac.AuditVerify && g.Permission != rbac.VaultStatus {
			t.Errorf("auditor holds %s, which is not read-only", g.Permission)
		}
	}
}

// TestTeamScope: a team role applies in its own team only; :own grants
// only on the principal's own resources; a global role everywhere.
func TestTeamScope(t *testing.T) {
	tb := table(t, nil)
	dev := rbac.Principal{ID: "usr_d", UserID: "usr_d", Kind: rbac.KindUser, Role: rbac.Developer, Teams: []rbac.Membership{{Team: "payments", Role: rbac.Developer}}}
	ta := rbac.Principal{ID: "usr_t", UserID: "usr_t", Kind: rbac.KindUser, Role: rbac.TeamAdmin, Teams: []rbac.Membership{{Team: "payments", Role: rbac.TeamAdmin}}}
	adm := rbac.Principal{ID: "usr_a", UserID: "usr_a", Kind: rbac.KindUser, Role: rbac.Admin}
	cases := []struct {
		p    rbac.Principal
		perm rbac.Permission
		res  rbac.Resource
		want bool
	}{
		{dev, rbac.KeysCreate, rbac.Resource{Team: "payments", Owner: "usr_d"}, true},
		{dev, rbac.KeysCreate, rbac.Resource{Team: "search", Owner: "usr_d"}, false},
		{dev, rbac.KeysRevoke, rbac.Resource{Team: "payments", Owner: "usr_d"}, true},
		{dev, rbac.KeysRevoke, rbac.Resource{Team: "payments", Owner: "usr_x"}, false},
		{dev, rbac.KeysRevoke, rbac.Resource{Team: "payments"}, false},
		{dev, rbac.KeysRead, rbac.Resource{}, false},
		{ta, rbac.KeysRevoke, rbac.Resource{Team: "payments", Owner: "usr_x"}, true},
		{ta, rbac.KeysRevoke, rbac.Resource{Team: "search"}, false},
		{ta, rbac.KeysRevoke, rbac.Resource{}, false}, // a key of no team
		{ta, rbac.TeamsMembers, rbac.Resource{Team: "payments"}, true},
		{ta, rbac.TeamsManage, rbac.Resource{Team: "payments"}, false},
		{adm, rbac.KeysRevoke, rbac.Resource{Team: "search"}, true},
		{adm, rbac.KeysRevoke, rbac.Resource{}, true},
		{adm, rbac.SecretsReadValue, rbac.Resource{}, false},
		// Everyone manages their own admin credentials, nobody else's.
		{dev, rbac.AdminTokensManage, rbac.Resource{Owner: "usr_d"}, true},
		{dev, rbac.AdminTokensManage, rbac.Resource{Owner: "usr_t"}, false},
	}
	for _, c := range cases {
		if got := tb.Allowed(c.p, c.perm, c.res); got != c.want {
			t.Errorf("%s %s on %+v: %v, want %v", c.p.Role, c.perm, c.res, got, c.want)
		}
	}
	if !tb.AllowedSomewhere(dev, rbac.KeysRead) || tb.AllowedGlobally(dev, rbac.KeysRead) || tb.AllowedSomewhere(dev, rbac.UsersRead) {
		t.Error("a developer reads keys somewhere (their own), not globally, and no users")
	}
}

// TestCap: a credential capped at a role does only what both its user and
// the role may; caps a user does not hold are refused.
func TestCap(t *testing.T) {
	tb := table(t, nil)
	adm := rbac.Principal{ID: "usr_a", UserID: "usr_a", Kind: rbac.KindUser, Role: rbac.Admin}
	capped := adm
	capped.Cap = rbac.Auditor
	if !tb.Allowed(capped, rbac.KeysRead, rbac.Resource{}) || tb.Allowed(capped, rbac.KeysRevoke, rbac.Resource{}) {
		t.Error("an admin's token capped at auditor reads keys and revokes none")
	}
	if m := tb.MissingToCap(adm, rbac.Auditor); len(m) != 0 {
		t.Errorf("an admin holds every auditor grant, missing %v", m)
	}
	if m := tb.MissingToCap(adm, rbac.Owner); len(m) == 0 {
		t.Error("an admin cannot make an owner token")
	}
	dev := rbac.Principal{ID: "usr_d", UserID: "usr_d", Kind: rbac.KindUser, Role: rbac.Developer, Teams: []rbac.Membership{{Team: "p", Role: rbac.Developer}}}
	if m := tb.MissingToCap(dev, rbac.Viewer); len(m) == 0 {
		t.Error("a developer sees only their own keys and cannot make a viewer token, which sees the team's")
	}
	if m := tb.MissingToCap(dev, rbac.Developer); len(m) != 0 {
		t.Errorf("a developer may make a developer token, missing %v", m)
	}
	// A capped credential makes nothing stronger than its cap.
	if m := tb.MissingToCap(capped, rbac.Admin); len(m) == 0 {
		t.Error("an auditor-capped token cannot make an admin token")
	}
}

// TestMissingToGrant: nobody grants more than it holds.
func TestMissingToGrant(t *testing.T) {
	tb := table(t, nil)
	adm := rbac.Principal{ID: "usr_a", UserID: "usr_a", Kind: rbac.KindUser, Role: rbac.Admin}
	own := rbac.Principal{ID: "adm_1", Kind: rbac.KindToken, Role: rbac.Owner}
	ta := rbac.Principal{ID: "usr_t", UserID: "usr_t", Kind: rbac.KindUser, Role: rbac.TeamAdmin, Teams: []rbac.Membership{{Team: "payments", Role: rbac.TeamAdmin}}}
	if len(tb.MissingToGrant(adm, rbac.Owner, "")) == 0 {
		t.Error("an admin cannot make an owner")
	}
	if m := tb.MissingToGrant(own, rbac.Owner, ""); len(m) != 0 {
		t.Errorf("an owner can make an owner, missing %v", m)
	}
	if m := tb.MissingToGrant(ta, rbac.Developer, "payments"); len(m) != 0 {
		t.Errorf("a team-admin can add a developer to their team, missing %v", m)
	}
	if len(tb.MissingToGrant(ta, rbac.Developer, "search")) == 0 {
		t.Error("a team-admin cannot add a developer to another team")
	}
}

// TestCustomRoles: custom roles take permission names, :own, and are
// refused with the name at fault.
func TestCustomRoles(t *testing.T) {
	tb := table(t, map[string][]string{"release-manager": {"keys.read", "keys.rotate", "keys.update:own"}})
	r, ok := tb.Role("release-manager")
	if !ok || !r.Custom {
		t.Fatal("custom role missing")
	}
	if g, _ := r.Grant(rbac.KeysUpdate); !g.OwnOnly {
		t.Error("keys.update:own should be limited to owned keys")
	}
	for _, c := range []struct {
		custom map[string][]string
		want   string
	}{
		{map[string][]string{"ops": {"keys.read", "keys.delete"}}, `roles.ops: unknown permission "keys.delete"`},
		{map[string][]string{"admin": {"keys.read"}}, "built-in"},
		{map[string][]string{"Bad Name": {"keys.read"}}, "lower-case"},
		{map[string][]string{"empty": {}}, "at least one"},
	} {
		_, err := rbac.NewTable(c.custom)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.custom, err, c.want)
		}
	}
	if err := tb.CheckRole("nope"); err == nil || !strings.Contains(err.Error(), "owner") {
		t.Errorf("CheckRole of an unknown role: %v", err)
	}
}

// TestREADMERoleTable: the role table of docs/people.md is this package's, so the
// documentation cannot drift from what the admin API decides.
func TestREADMERoleTable(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "docs", "people.md"))
	if err != nil {
		t.Fatal(err)
	}
	tb := table(t, nil)
	var b strings.Builder
	b.WriteString("| permission | what it allows |")
	for _, r := range tb.Roles() {
		b.WriteString(" " + r.Name + " |")
	}
	b.WriteString("\n| --- | --- |")
	for range tb.Roles() {
		b.WriteString(" :-: |")
	}
	b.WriteString("\n")
	for _, p := range rbac.All() {
		fmt.Fprintf(&b, "| `%s` | %s |", p, rbac.Describe(p))
		for _, r := range tb.Roles() {
			switch g, ok := r.Grant(p); {
			case !ok:
				b.WriteString("  |")
			case g.OwnOnly:
				b.WriteString(" own |")
			default:
				b.WriteString(" ✓ |")
			}
		}
		b.WriteString("\n")
	}
	if !strings.Contains(string(readme), b.String()) {
		t.Fatalf("docs/people.md's role table differs from the role table in code; replace it with:\n%s", b.String())
	}
}
