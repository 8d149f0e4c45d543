package admin_test

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/admin"
	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/rbac"
	"github.com/keygate/keygate/internal/store"
)

// teamFixture is two teams, a team-admin of each and a developer of
// payments, each holding a key made through the API.
type teamFixture struct {
	h                   *harness
	pa, sa, dev         person
	payKey, searchKey   adminapi.Key
	devKey              adminapi.Key
	groupsChangedCalled *int
}

func newTeamFixture(t *testing.T) *teamFixture {
	calls := 0
	h := newHarness(t, func(o *admin.Options) { o.GroupsChanged = func(context.Context) { calls++ } })
	f := &teamFixture{h: h, groupsChangedCalled: &calls}
	for _, team := range []string{"payments", "search"} {
		h.asStatus(h.boot(), "POST", "/api/v1/teams", `{"name":"`+team+`","limits":{"budgets":[{"micro_usd":50000000,"period":"month"}]}}`, http.StatusCreated)
	}
	f.pa = h.addPerson("pat", store.UserPerson, rbac.TeamAdmin, map[string]string{"payments": rbac.TeamAdmin}, "")
	f.sa = h.addPerson("sam", store.UserPerson, rbac.TeamAdmin, map[string]string{"search": rbac.TeamAdmin}, "")
	f.dev = h.addPerson("dana", store.UserPerson, rbac.Developer, map[string]string{"payments": rbac.Developer}, "")
	var ck adminapi.CreatedKey
	decode(t, h.asStatus(f.pa, "POST", "/api/v1/keys", `{"name":"pay-bot"}`, http.StatusCreated), &ck)
	f.payKey = ck.Key
	decode(t, h.asStatus(f.sa, "POST", "/api/v1/keys", `{"name":"search-bot"}`, http.StatusCreated), &ck)
	f.searchKey = ck.Key
	decode(t, h.asStatus(f.dev, "POST", "/api/v1/keys", `{"name":"dana-laptop"}`, http.StatusCreated), &ck)
	f.devKey = ck.Key
	return f
}

func keyNames(t *testing.T, h *harness, p person) []string {
	t.Helper()
	var l adminapi.KeyList
	decode(t, h.asStatus(p, "GET", "/api/v1/keys", "", http.StatusOK), &l)
	var out []string
	for _, k := range l.Keys {
		out = append(out, k.Name)
	}
	sort.Strings(out) // keys made at one instant list in id order
	return out
}

// TestTeamIsolation: a team-admin of payments cannot see, use, change or
// revoke a key of search: the API answers 404 as for a key that does not
// exist, and lists only its own team's.
func TestTeamIsolation(t *testing.T) {
	f := newTeamFixture(t)
	h := f.h
	if f.payKey.Team != "payments" || f.payKey.Group != "team:payments" || f.payKey.Owner != "" {
		t.Fatalf("a team-admin's key: team %q group %q owner %q; want a team key in the team's group", f.payKey.Team, f.payKey.Group, f.payKey.Owner)
	}
	if f.devKey.Team != "payments" || f.devKey.Owner != "dana" || f.devKey.CreatedBy != "dana" {
		t.Fatalf("a developer's key: team %q owner %q created by %q; want dana's own", f.devKey.Team, f.devKey.Owner, f.devKey.CreatedBy)
	}
	if got := strings.Join(keyNames(t, h, f.pa), ","); got != "dana-laptop,pay-bot" {
		t.Errorf("payments' team-admin lists %s", got)
	}
	if got := strings.Join(keyNames(t, h, f.sa), ","); got != "search-bot" {
		t.Errorf("search's team-admin lists %s", got)
	}
	if got := strings.Join(keyNames(t, h, f.dev), ","); got != "dana-laptop" {
		t.Errorf("the developer lists %s, want only its own key", got)
	}

	missing := h.as(f.pa, "GET", "/api/v1/keys/no-such-key", "")
	for _, c := range []struct{ method, path string }{
		{"GET", "/api/v1/keys/search-bot"},
		{"GET", "/api/v1/keys/" + f.searchKey.ID},
		{"POST", "/api/v1/keys/search-bot/revoke"},
		{"PATCH", "/api/v1/keys/search-bot"},
		{"POST", "/api/v1/keys/search-bot/suspend"},
		{"POST", "/api/v1/keys/search-bot/rotate"},
		{"GET", "/api/v1/keys/search-bot/usage"},
	} {
		w := h.as(f.pa, c.method, c.path, `{"limits":{"rpm":1}}`)
		wantError(t, w, http.StatusNotFound, "not_found")
		if strings.Replace(w.Body.String(), strings.TrimPrefix(strings.TrimPrefix(c.path, "/api/v1/keys/"), ""), "", 1) == "" || len(w.Body.String()) == 0 {
			t.Fatal("empty 404")
		}
		if c.path == "/api/v1/keys/search-bot" && strings.Replace(missing.Body.String(), "no-such-key", "search-bot", 1) != w.Body.String() {
			t.Errorf("the 404 for another team's key differs from one for no key:\n%s\n%s", missing.Body, w.Body)
		}
	}
	var k adminapi.Key
	decode(t, h.asStatus(h.boot(), "GET", "/api/v1/keys/search-bot", "", http.StatusOK), &k)
	if k.Status != "active" || k.SuspendedAt != nil || k.Limits.RPM != 0 {
		t.Fatalf("another team's requests changed search-bot: %+v", k)
	}
	// Teams, their budgets and usage alike.
	wantError(t, h.as(f.pa, "GET", "/api/v1/teams/search", ""), http.StatusNotFound, "not_found", `"search"`)
	wantError(t, h.as(f.pa, "GET", "/api/v1/teams/search/usage", ""), http.StatusNotFound, "not_found")
	var teams adminapi.TeamList
	decode(t, h.asStatus(f.pa, "GET", "/api/v1/teams", "", http.StatusOK), &teams)
	if len(teams.Teams) != 1 || teams.Teams[0].Name != "payments" || len(teams.Teams[0].Limits.Budgets) != 1 || teams.Teams[0].Keys != 2 {
		t.Fatalf("payments' team-admin sees teams %+v", teams.Teams)
	}
	h.asStatus(f.pa, "GET", "/api/v1/teams/payments/usage", "", http.StatusOK)

	// A developer cannot touch a teammate's key either, and revokes its own.
	wantError(t, h.as(f.dev, "POST", "/api/v1/keys/pay-bot/revoke", ""), http.StatusNotFound, "not_found")
	h.asStatus(f.dev, "POST", "/api/v1/keys/dana-laptop/revoke", "", http.StatusOK)
	// The team-admin revokes any key of its team.
	h.asStatus(f.pa, "POST", "/api/v1/keys/pay-bot/revoke", "", http.StatusOK)
	// Another team's key cannot be made either.
	wantError(t, h.as(f.pa, "POST", "/api/v1/keys", `{"name":"sneaky","team":"search"}`), http.StatusNotFound, "not_found", "search")
	h.asStatus(h.boot(), "GET", "/api/v1/keys/sneaky", "", http.StatusNotFound)
}

// TestTeamPolicy: keys made or changed below admin stay within the team's
// policy, taking its limits where the request leaves them out; a policy
// below existing keys is refused and changes nothing.
func TestTeamPolicy(t *testing.T) {
	f := newTeamFixture(t)
	h := f.h
	// A policy the team's existing keys break is refused, naming them.
	pol := `{"policy":{"allow_models":["gpt-4o*"],"max_key_ttl":"30d","max_limits":{"rpm":100,"budgets":[{"micro_usd":10000000,"period":"month"}]}}}`
	wantError(t, h.as(h.boot(), "PATCH", "/api/v1/teams/payments", pol), http.StatusConflict, "conflict", "pay-bot", "dana-laptop", "nothing was changed")
	var team adminapi.Team
	decode(t, h.asStatus(h.boot(), "GET", "/api/v1/teams/payments", "", http.StatusOK), &team)
	if len(team.Policy.AllowModels) != 0 {
		t.Fatalf("a refused policy was stored: %+v", team.Policy)
	}
	h.asStatus(h.boot(), "POST", "/api/v1/keys/pay-bot/revoke", "", http.StatusOK)
	h.asStatus(h.boot(), "POST", "/api/v1/keys/dana-laptop/revoke", "", http.StatusOK)
	decode(t, h.asStatus(h.boot(), "PATCH", "/api/v1/teams/payments", pol, http.StatusOK), &team)
	if team.Policy.MaxKeyTTL != "30d" || team.Policy.MaxLimits.RPM != 100 {
		t.Fatalf("policy %+v", team.Policy)
	}

	// What a developer leaves out comes from the policy.
	var ck adminapi.CreatedKey
	decode(t, h.asStatus(f.dev, "POST", "/api/v1/keys", `{"name":"dana-2"}`, http.StatusCreated), &ck)
	k := ck.Key
	if strings.Join(k.AllowModels, ",") != "gpt-4o*" || k.ExpiresAt == nil || k.ExpiresAt.Sub(h.now) != 30*24*60*60*1e9 || k.Limits.RPM != 100 || len(k.Limits.Budgets) != 1 {
		t.Fatalf("a developer's key from the policy: %+v", k)
	}
	// What breaks it is refused, named, and nothing is made.
	for body, word := range map[string]string{
		`{"name":"bad-1","allow_models":["*"]}`:                                           "allow_models",
		`{"name":"bad-2","expires_in":"90d"}`:                                             "expires_in",
		`{"name":"bad-3","limits":{"rpm":500}}`:                                           "rpm",
		`{"name":"bad-4","limits":{"budgets":[{"micro_usd":99000000,"period":"month"}]}}`: "budgets",
	} {
		wantError(t, h.as(f.dev, "POST", "/api/v1/keys", body), http.StatusBadRequest, "bad_request", word, "payments")
	}
	for _, n := range keyNames(t, h, h.boot()) {
		if strings.HasPrefix(n, "bad-") {
			t.Fatalf("a refused key was made: %s", n)
		}
	}
	wantError(t, h.as(f.dev, "PATCH", "/api/v1/keys/dana-2", `{"limits":{"rpm":1000}}`), http.StatusBadRequest, "bad_request", "rpm")
	// Passthrough services: none below admin but those the team is given.
	wantError(t, h.as(f.dev, "POST", "/api/v1/keys", `{"name":"bad-5","allow_services":["github"]}`), http.StatusBadRequest, "bad_request", "allow_services", "github")
	wantError(t, h.as(f.dev, "PATCH", "/api/v1/keys/dana-2", `{"allow_services":["github"]}`), http.StatusBadRequest, "bad_request", "github")
	h.asStatus(h.boot(), "PATCH", "/api/v1/teams/payments", `{"policy":{"allow_models":["gpt-4o*"],"allow_services":["github"],"max_key_ttl":"30d","max_limits":{"rpm":100,"budgets":[{"micro_usd":10000000,"period":"month"}]}}}`, http.StatusOK)
	h.asStatus(f.dev, "PATCH", "/api/v1/keys/dana-2", `{"allow_services":["github"]}`, http.StatusOK)
	h.asStatus(f.dev, "PATCH", "/api/v1/keys/dana-2", `{"limits":{"rpm":50,"budgets":[{"micro_usd":5000000,"period":"month"}]}}`, http.StatusOK)
	// An admin is not bound by the team's policy.
	h.asStatus(h.boot(), "POST", "/api/v1/keys", `{"name":"admin-made","team":"payments","limits":{"rpm":1000}}`, http.StatusCreated)
	// Bad input to a policy names the field.
	wantError(t, h.as(h.boot(), "PATCH", "/api/v1/teams/payments", `{"policy":{"max_key_ttl":"soon"}}`), http.StatusBadRequest, "bad_request", "max_key_ttl")
	wantError(t, h.as(h.boot(), "PATCH", "/api/v1/teams/payments", `{"policy":{"allow_providers":["nope"]}}`), http.StatusBadRequest, "bad_request", "allow_providers", "nope")
}

// TestTeamBudgetIsItsGroup: a team's shared limits are its key group's,
// which every key of the team is in, so the gateway enforces them as it
// enforces any group; the group routes leave a team's group alone.
func TestTeamBudgetIsItsGroup(t *testing.T) {
	f := newTeamFixture(t)
	h := f.h
	before := *f.groupsChangedCalled
	var team adminapi.Team
	decode(t, h.asStatus(h.boot(), "PATCH", "/api/v1/teams/payments", `{"limits":{"rpm":30,"budgets":[{"micro_usd":1000000,"period":"day"}]}}`, http.StatusOK), &team)
	if *f.groupsChangedCalled == before {
		t.Error("a team's limits changed without the node reloading group limits")
	}
	g, err := h.st.GetGroup(context.Background(), "team:payments")
	if err != nil || string(g.Limits) != `{"rpm":30,"budgets":[{"micro_usd":1000000,"period":"day"}]}` || g.Keys != 2 {
		t.Fatalf("the team's group %+v %v", g, err)
	}
	wantError(t, h.as(h.boot(), "PATCH", "/api/v1/groups/team:payments", `{"limits":{}}`), http.StatusConflict, "conflict", "team payments")
	wantError(t, h.as(h.boot(), "DELETE", "/api/v1/groups/team:payments", ""), http.StatusConflict, "conflict")
	wantError(t, h.as(h.boot(), "PATCH", "/api/v1/keys/pay-bot", `{"group":""}`), http.StatusBadRequest, "bad_request", "payments")
	wantError(t, h.as(h.boot(), "POST", "/api/v1/keys", `{"name":"x","group":"team:search"}`), http.StatusBadRequest, "bad_request", "search")
	wantError(t, h.as(f.pa, "PATCH", "/api/v1/teams/payments", `{"limits":{}}`), http.StatusForbidden, "forbidden", "teams.manage")

	// An existing group becomes a team, its keys with it.
	h.asStatus(h.boot(), "POST", "/api/v1/groups", `{"name":"legacy","limits":{"rpm":5}}`, http.StatusCreated)
	h.asStatus(h.boot(), "POST", "/api/v1/keys", `{"name":"old-bot","group":"legacy"}`, http.StatusCreated)
	decode(t, h.asStatus(h.boot(), "POST", "/api/v1/teams", `{"name":"legacy-team","from_group":"legacy"}`, http.StatusCreated), &team)
	if team.Group != "legacy" || team.Keys != 1 || team.Limits.RPM != 5 {
		t.Fatalf("a team from a group: %+v", team)
	}
	wantError(t, h.as(h.boot(), "POST", "/api/v1/teams", `{"name":"again","from_group":"legacy"}`), http.StatusConflict, "conflict")
	wantError(t, h.as(h.boot(), "POST", "/api/v1/teams", `{"name":"ghost","from_group":"nope"}`), http.StatusBadRequest, "bad_request", "nope")
}

// TestTeamMembers: a team-admin adds and removes members of its own team
// with team roles it holds, and nobody else's.
func TestTeamMembers(t *testing.T) {
	f := newTeamFixture(t)
	h := f.h
	h.addPerson("newbie", store.UserPerson, rbac.Viewer, nil, "")
	var m adminapi.TeamMember
	decode(t, h.asStatus(f.pa, "PUT", "/api/v1/teams/payments/members/newbie", `{"role":"developer"}`, http.StatusOK), &m)
	if m.Role != "developer" || m.User != "newbie" {
		t.Fatalf("member %+v", m)
	}
	wantError(t, h.as(f.pa, "PUT", "/api/v1/teams/payments/members/newbie", `{"role":"admin"}`), http.StatusBadRequest, "bad_request", "team role")
	wantError(t, h.as(f.pa, "PUT", "/api/v1/teams/search/members/newbie", `{"role":"viewer"}`), http.StatusNotFound, "not_found")
	wantError(t, h.as(f.dev, "PUT", "/api/v1/teams/payments/members/newbie", `{"role":"viewer"}`), http.StatusForbidden, "forbidden", "teams.members")
	var ms adminapi.TeamMemberList
	decode(t, h.asStatus(f.dev, "GET", "/api/v1/teams/payments/members", "", http.StatusOK), &ms)
	if len(ms.Members) != 3 {
		t.Fatalf("members %+v", ms)
	}
	h.asStatus(f.pa, "DELETE", "/api/v1/teams/payments/members/newbie", "", http.StatusNoContent)
	wantError(t, h.as(f.pa, "DELETE", "/api/v1/teams/payments/members/newbie", ""), http.StatusNotFound, "not_found", "not a member")
}

// TestTeamLeakAction: a team's policy gives its new keys a leak action;
// below admin it is the only one a key of the team may have, made or
// changed; an admin sets another on any key; a bad action changes
// nothing, naming the field.
func TestTeamLeakAction(t *testing.T) {
	f := newTeamFixture(t)
	h := f.h
	wantError(t, h.as(h.boot(), "PATCH", "/api/v1/teams/payments", `{"policy":{"leak_action":"ignore"}}`), http.StatusBadRequest, "bad_request", "leak_action")
	h.asStatus(h.boot(), "PATCH", "/api/v1/teams/payments", `{"policy":{"leak_action":"block"}}`, http.StatusOK)

	var ck adminapi.CreatedKey
	decode(t, h.asStatus(f.dev, "POST", "/api/v1/keys", `{"name":"dana-strict"}`, http.StatusCreated), &ck)
	if ck.Key.LeakAction != "block" {
		t.Fatalf("a developer's key did not take the team's leak action: %+v", ck.Key)
	}
	wantError(t, h.as(f.dev, "POST", "/api/v1/keys", `{"name":"dana-loose","leak_action":"alert"}`), http.StatusBadRequest, "bad_request", "leak_action", "block")
	wantError(t, h.as(f.dev, "PATCH", "/api/v1/keys/dana-strict", `{"leak_action":"alert"}`), http.StatusBadRequest, "bad_request", "leak_action")
	wantError(t, h.as(h.boot(), "PATCH", "/api/v1/keys/dana-strict", `{"leak_action":"sometimes"}`), http.StatusBadRequest, "bad_request", "leak_action")

	var k adminapi.Key
	decode(t, h.asStatus(h.boot(), "PATCH", "/api/v1/keys/dana-strict", `{"leak_action":"alert"}`, http.StatusOK), &k)
	if k.LeakAction != "alert" {
		t.Fatalf("an admin's change: %+v", k)
	}
	var back adminapi.Key
	decode(t, h.asStatus(h.boot(), "PATCH", "/api/v1/keys/dana-strict", `{"leak_action":""}`, http.StatusOK), &back)
	if back.LeakAction != "" || back.Name != "dana-strict" {
		t.Fatalf("back to the global policy: %+v", back)
	}
}
