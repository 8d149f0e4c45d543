package sso_test

import (
	"testing"

	"github.com/keygate/keygate/internal/sso"
)

// TestMapping: the strongest mapped role wins whatever the groups' order,
// team memberships come from every mapped group once, a membership alone
// gives its team role, unknown groups give nothing, and with nothing
// mapped only a default role lets a person in.
func TestMapping(t *testing.T) {
	m := sso.Mapping{
		Groups: map[string]sso.GroupMapping{
			"platform-admins": {Role: "admin"},
			"auditors":        {Role: "auditor"},
			"team-payments":   {Team: "payments", TeamRole: "developer"},
			"payments-leads":  {Team: "payments", TeamRole: "team-admin"},
		},
		RolePrecedence: []string{"owner", "admin", "security", "auditor", "developer"},
	}
	for _, tc := range []struct {
		groups []string
		role   string
		teams  int
		ok     bool
	}{
		{[]string{"auditors", "platform-admins"}, "admin", 0, true},
		{[]string{"platform-admins", "auditors"}, "admin", 0, true},
		{[]string{"team-payments"}, "developer", 1, true},
		{[]string{"team-payments", "payments-leads", "auditors"}, "auditor", 1, true},
		{[]string{"marketing"}, "", 0, false},
		{nil, "", 0, false},
	} {
		role, teams, ok := m.Map(tc.groups)
		if role != tc.role || len(teams) != tc.teams || ok != tc.ok {
			t.Errorf("%v: role %q teams %v ok %v; want %q, %d teams, %v", tc.groups, role, teams, ok, tc.role, tc.teams, tc.ok)
		}
	}
	m.DefaultRole = "viewer"
	if role, _, ok := m.Map([]string{"marketing"}); role != "viewer" || !ok {
		t.Fatalf("default role: %q %v", role, ok)
	}
}
