package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/rbac"
)

// TestCustomRolesAndApprovals: custom roles and the approval policy load
// from the file, and a permission keygate does not know is refused by name.
func TestCustomRolesAndApprovals(t *testing.T) {
	dir := t.TempDir()
	load := func(body string) (Config, error) {
		p := filepath.Join(dir, "keygate.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(p, dir, func(string) string { return "" })
		if err != nil {
			return c, err
		}
		return c, c.Validate()
	}
	c, err := load("roles:\n  release-manager: [keys.read, keys.rotate, \"keys.update:own\"]\napprovals:\n  required_for: [secrets.read_value, backup.export]\n  ttl: 30m\n")
	if err != nil {
		t.Fatal(err)
	}
	tb, err := c.RoleTable()
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := tb.Role("release-manager"); !ok || !r.Custom {
		t.Fatal("the custom role is missing")
	}
	if ps := c.ApprovalPermissions(); len(ps) != 2 || ps[0] != rbac.SecretsReadValue {
		t.Fatalf("approvals %v", ps)
	}
	for body, want := range map[string]string{
		"roles:\n  ops: [keys.read, keys.delete]\n":         `roles.ops: unknown permission "keys.delete"`,
		"roles:\n  owner: [keys.read]\n":                    "built-in",
		"approvals:\n  required_for: [secrets.peek]\n":      `approvals.required_for: unknown permission "secrets.peek"`,
		"approvals:\n  required_for: [\"keys.read:own\"]\n": "without :own",
	} {
		if _, err := load(body); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", body, err, want)
		}
	}
}
