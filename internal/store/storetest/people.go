package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/store"
)

func testUsers(t *testing.T, newURL func(testing.TB) string) {
	url := newURL(t)
	s := Open(t, url)
	alice := store.User{ID: "usr_a", Name: "alice", Kind: store.UserPerson, Role: "admin", CreatedAt: at(0), CreatedBy: "adm_1"}
	ci := store.User{ID: "usr_c", Name: "ci", Kind: store.UserService, Role: "developer", CreatedAt: at(time.Second)}
	must(t, s.CreateUser(ctx(t), alice))
	must(t, s.CreateUser(ctx(t), ci))
	wantErr(t, s.CreateUser(ctx(t), store.User{ID: "usr_x", Name: "alice", Kind: store.UserPerson, Role: "viewer", CreatedAt: at(0)}),
		store.ErrConflict, "CreateUser with a taken name")
	wantErr(t, s.CreateUser(ctx(t), store.User{ID: "usr_a", Name: "other", Kind: store.UserPerson, Role: "viewer", CreatedAt: at(0)}),
		store.ErrConflict, "CreateUser with a taken id")

	got, err := s.GetUserByName(ctx(t), "alice")
	must(t, err)
	if got.ID != alice.ID || got.Kind != store.UserPerson || got.Role != "admin" || got.CreatedBy != "adm_1" || got.DisabledAt != nil {
		t.Fatalf("user %+v", got)
	}
	checkTime(t, "CreatedAt", got.CreatedAt, alice.CreatedAt)
	if got, err = s.GetUser(ctx(t), "usr_c"); err != nil || got.Name != "ci" || got.Kind != store.UserService {
		t.Fatalf("GetUser: %+v %v", got, err)
	}
	_, err = s.GetUser(ctx(t), "usr_missing")
	wantErr(t, err, store.ErrNotFound, "GetUser of an unknown id")
	_, err = s.GetUserByName(ctx(t), "bob")
	wantErr(t, err, store.ErrNotFound, "GetUserByName of an unknown name")

	got, err = s.SetUserRole(ctx(t), "usr_a", "security")
	must(t, err)
	if got.Role != "security" {
		t.Fatalf("role after SetUserRole: %q", got.Role)
	}
	_, err = s.SetUserRole(ctx(t), "usr_missing", "viewer")
	wantErr(t, err, store.ErrNotFound, "SetUserRole of an unknown user")

	n, err := s.CountPeople(ctx(t))
	must(t, err)
	if n != 1 {
		t.Fatalf("CountPeople = %d, want 1 (service accounts do not count)", n)
	}
	got, err = s.SetUserDisabled(ctx(t), "usr_a", ptr(at(time.Hour)))
	must(t, err)
	checkTimePtr(t, "DisabledAt", got.DisabledAt, ptr(at(time.Hour)))
	if n, _ = s.CountPeople(ctx(t)); n != 0 {
		t.Fatalf("CountPeople with alice disabled = %d, want 0", n)
	}

	// Another process sharing the database sees the same users.
	s2 := Open(t, url)
	all, err := s2.ListUsers(ctx(t))
	must(t, err)
	if len(all) != 2 || all[0].Name != "alice" || all[0].DisabledAt == nil || all[1].Name != "ci" {
		t.Fatalf("ListUsers from a second store: %+v", all)
	}
	got, err = s2.SetUserDisabled(ctx(t), "usr_a", nil)
	must(t, err)
	if got.DisabledAt != nil {
		t.Fatal("enabling left DisabledAt set")
	}
}

func testTeams(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	pay := store.Team{Name: "payments", Group: "team:payments", Policy: []byte(`{"allow_models":["gpt-4o*"]}`), CreatedAt: at(0)}
	must(t, s.CreateTeam(ctx(t), pay, &store.Group{Name: pay.Group, Limits: []byte(`{"rpm":100}`), CreatedAt: at(0)}))
	wantErr(t, s.CreateTeam(ctx(t), pay, &store.Group{Name: "team:payments2", CreatedAt: at(0)}), store.ErrConflict, "CreateTeam with a taken name")
	if _, err := s.GetGroup(ctx(t), "team:payments2"); err == nil {
		t.Fatal("a refused CreateTeam left its group behind")
	}
	wantErr(t, s.CreateTeam(ctx(t), store.Team{Name: "other", Group: "team:payments", CreatedAt: at(0)}, nil),
		store.ErrConflict, "CreateTeam on a group another team has")
	wantErr(t, s.CreateTeam(ctx(t), store.Team{Name: "ghost", Group: "no-such-group", CreatedAt: at(0)}, nil),
		store.ErrNoSuchGroup, "CreateTeam from an unknown group")

	got, err := s.GetTeam(ctx(t), "payments")
	must(t, err)
	if got.Group != "team:payments" || string(got.Policy) != `{"allow_models":["gpt-4o*"]}` {
		t.Fatalf("team %+v", got)
	}
	checkTime(t, "CreatedAt", got.CreatedAt, at(0))
	g, err := s.GetGroup(ctx(t), "team:payments")
	must(t, err)
	if string(g.Limits) != `{"rpm":100}` {
		t.Fatalf("the team's group has limits %q", g.Limits)
	}

	// Adopting a group brings its keys into the team, but not another team's.
	must(t, s.CreateGroup(ctx(t), store.Group{Name: "search-budget", CreatedAt: at(0)}))
	k1 := bareKey("key_1", "indexer")
	k1.Group = "search-budget"
	k2 := bareKey("key_2", "crawler")
	k2.Group, k2.Team, k2.Owner, k2.CreatedBy = "search-budget", "payments", "usr_d", "usr_t"
	k3 := bareKey("key_3", "loner")
	for _, k := range []store.Key{k1, k2, k3} {
		must(t, s.CreateKey(ctx(t), k))
	}
	back, err := s.GetKey(ctx(t), "key_2")
	must(t, err)
	if back.Team != "payments" || back.Owner != "usr_d" || back.CreatedBy != "usr_t" {
		t.Fatalf("key team/owner/created_by round trip: %q %q %q", back.Team, back.Owner, back.CreatedBy)
	}
	must(t, s.CreateTeam(ctx(t), store.Team{Name: "search", Group: "search-budget", CreatedAt: at(time.Second)}, nil))
	keys, err := s.ListTeamKeys(ctx(t), "search")
	must(t, err)
	if len(keys) != 1 || keys[0].ID != "key_1" || keys[0].Team != "search" {
		t.Fatalf("keys of the adopted group's team: %+v", keys)
	}
	if back, _ := s.GetKey(ctx(t), "key_3"); back.Team != "" || back.Owner != "" {
		t.Fatalf("a key of no group joined a team: %+v", back)
	}

	must(t, s.SetTeamPolicy(ctx(t), "search", []byte(`{"max_key_ttl":"30d"}`)))
	wantErr(t, s.SetTeamPolicy(ctx(t), "nope", nil), store.ErrNotFound, "SetTeamPolicy of an unknown team")
	teams, err := s.ListTeams(ctx(t))
	must(t, err)
	if len(teams) != 2 || teams[0].Name != "payments" || teams[1].Name != "search" || string(teams[1].Policy) != `{"max_key_ttl":"30d"}` {
		t.Fatalf("ListTeams %+v", teams)
	}
	must(t, s.SetTeamPolicy(ctx(t), "search", nil))
	if got, _ := s.GetTeam(ctx(t), "search"); got.Policy != nil {
		t.Fatalf("a cleared policy reads back as %q, want nil", got.Policy)
	}
}

func testTeamMembers(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	must(t, s.CreateUser(ctx(t), store.User{ID: "usr_b", Name: "bob", Kind: store.UserPerson, Role: "developer", CreatedAt: at(0)}))
	must(t, s.CreateUser(ctx(t), store.User{ID: "usr_a", Name: "alice", Kind: store.UserPerson, Role: "developer", CreatedAt: at(0)}))
	for _, name := range []string{"payments", "search"} {
		must(t, s.CreateTeam(ctx(t), store.Team{Name: name, Group: "team:" + name, CreatedAt: at(0)}, &store.Group{Name: "team:" + name, CreatedAt: at(0)}))
	}
	prev, err := s.PutTeamMember(ctx(t), store.TeamMember{Team: "payments", UserID: "usr_b", Role: "developer", AddedAt: at(0)})
	must(t, err)
	if prev != "" {
		t.Fatalf("a new member's previous role %q, want none", prev)
	}
	prev, err = s.PutTeamMember(ctx(t), store.TeamMember{Team: "payments", UserID: "usr_b", Role: "team-admin", AddedAt: at(time.Hour)})
	must(t, err)
	if prev != "developer" {
		t.Fatalf("previous role %q, want developer", prev)
	}
	must2 := func(team, user, role string) {
		t.Helper()
		_, err := s.PutTeamMember(ctx(t), store.TeamMember{Team: team, UserID: user, Role: role, AddedAt: at(0)})
		must(t, err)
	}
	must2("payments", "usr_a", "viewer")
	must2("search", "usr_b", "developer")
	_, err = s.PutTeamMember(ctx(t), store.TeamMember{Team: "nope", UserID: "usr_b", Role: "viewer", AddedAt: at(0)})
	wantErr(t, err, store.ErrNotFound, "PutTeamMember in an unknown team")
	_, err = s.PutTeamMember(ctx(t), store.TeamMember{Team: "payments", UserID: "usr_missing", Role: "viewer", AddedAt: at(0)})
	wantErr(t, err, store.ErrNotFound, "PutTeamMember of an unknown user")

	ms, err := s.ListTeamMembers(ctx(t), "payments")
	must(t, err)
	if len(ms) != 2 || ms[0].UserName != "alice" || ms[0].Role != "viewer" || ms[1].UserName != "bob" || ms[1].Role != "team-admin" || ms[1].UserKind != store.UserPerson {
		t.Fatalf("members of payments: %+v", ms)
	}
	checkTime(t, "AddedAt", ms[1].AddedAt, at(0)) // changing the role keeps when they joined
	mine, err := s.ListMemberships(ctx(t), "usr_b")
	must(t, err)
	if len(mine) != 2 || mine[0].Team != "payments" || mine[1].Team != "search" || mine[1].Role != "developer" {
		t.Fatalf("bob's teams: %+v", mine)
	}
	must(t, s.RemoveTeamMember(ctx(t), "payments", "usr_b"))
	wantErr(t, s.RemoveTeamMember(ctx(t), "payments", "usr_b"), store.ErrNotFound, "RemoveTeamMember twice")
	if mine, _ = s.ListMemberships(ctx(t), "usr_b"); len(mine) != 1 || mine[0].Team != "search" {
		t.Fatalf("bob's teams after leaving payments: %+v", mine)
	}
}

func testAdminTokenOwners(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	pat := store.AdminToken{ID: "adm_p", Name: "laptop", Hash: hashOf("adm_p"), Role: "viewer", CreatedAt: at(0),
		UserID: "usr_a", Kind: store.AdminTokenPersonal, Prefix: "kg_admin_4fTq", ExpiresAt: ptr(at(90 * 24 * time.Hour))}
	full := store.AdminToken{ID: "adm_f", Name: "full", Hash: hashOf("adm_f"), CreatedAt: at(0), UserID: "usr_a", Kind: store.AdminTokenPersonal}
	other := store.AdminToken{ID: "adm_o", Name: "other", Hash: hashOf("adm_o"), CreatedAt: at(0), UserID: "usr_b", Kind: store.AdminTokenService}
	for _, tok := range []store.AdminToken{pat, full, other} {
		must(t, s.CreateAdminToken(ctx(t), tok))
	}
	got, err := s.GetAdminToken(ctx(t), "adm_p")
	must(t, err)
	if got.UserID != "usr_a" || got.Kind != store.AdminTokenPersonal || got.Prefix != "kg_admin_4fTq" || got.Role != "viewer" || got.LastUsedAt != nil {
		t.Fatalf("token %+v", got)
	}
	checkTimePtr(t, "ExpiresAt", got.ExpiresAt, pat.ExpiresAt)
	if got, _ := s.GetAdminToken(ctx(t), "adm_f"); got.Role != "" {
		t.Fatalf("a user's token stored without a cap reads back with role %q, want none", got.Role)
	}
	_, err = s.GetAdminToken(ctx(t), "adm_missing")
	wantErr(t, err, store.ErrNotFound, "GetAdminToken of an unknown id")

	// Last use moves forward only, with its address.
	must(t, s.TouchAdminToken(ctx(t), "adm_p", at(time.Hour), "192.0.2.7"))
	must(t, s.TouchAdminToken(ctx(t), "adm_p", at(time.Minute), "198.51.100.1"))
	got, _ = s.GetAdminToken(ctx(t), "adm_p")
	checkTimePtr(t, "LastUsedAt", got.LastUsedAt, ptr(at(time.Hour)))
	if got.LastUsedFrom != "192.0.2.7" {
		t.Fatalf("LastUsedFrom %q, want the later use's address", got.LastUsedFrom)
	}
	wantErr(t, s.TouchAdminToken(ctx(t), "adm_missing", at(0), ""), store.ErrNotFound, "TouchAdminToken of an unknown id")

	n, err := s.RevokeUserAdminTokens(ctx(t), "usr_a", at(2*time.Hour))
	must(t, err)
	if n != 2 {
		t.Fatalf("RevokeUserAdminTokens revoked %d, want 2", n)
	}
	for id, revoked := range map[string]bool{"adm_p": true, "adm_f": true, "adm_o": false} {
		got, _ := s.GetAdminToken(ctx(t), id)
		if (got.RevokedAt != nil) != revoked {
			t.Errorf("%s revoked: %v, want %v", id, got.RevokedAt != nil, revoked)
		}
	}
}

func testApprovals(t *testing.T, newURL func(testing.TB) string) {
	url := newURL(t)
	s := Open(t, url)
	a := store.Approval{ID: "apr_1", Permission: "secrets.read_value", Method: "GET", Path: "/api/v1/secrets/ref:ab:value",
		RequestHash: hashOf("req"), Requester: "usr_a", RequesterName: "alice", Credential: "adm_1",
		Status: store.ApprovalPending, CreatedAt: at(0), ExpiresAt: at(time.Hour)}
	must(t, s.CreateApproval(ctx(t), a))
	wantErr(t, s.CreateApproval(ctx(t), a), store.ErrConflict, "CreateApproval twice")
	got, err := s.GetApproval(ctx(t), "apr_1")
	must(t, err)
	if got.Status != store.ApprovalPending || got.RequesterName != "alice" || got.DecidedAt != nil || got.UsedAt != nil {
		t.Fatalf("approval %+v", got)
	}
	checkBytes(t, "RequestHash", got.RequestHash, a.RequestHash)
	_, err = s.UseApproval(ctx(t), "apr_1", "usr_a", at(time.Minute))
	wantErr(t, err, store.ErrApprovalClosed, "UseApproval of a pending approval")

	// Of two nodes deciding at once, exactly one wins.
	s2 := Open(t, url)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, st := range []*store.Store{s, s2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = st.DecideApproval(ctx(t), "apr_1", store.ApprovalApproved, "usr_b", "bob", at(time.Minute))
		}()
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("two decisions: %v and %v; want exactly one to win", errs[0], errs[1])
	}
	got, _ = s.GetApproval(ctx(t), "apr_1")
	if got.Status != store.ApprovalApproved || got.DecidedBy != "usr_b" || got.DecidedName != "bob" {
		t.Fatalf("decided approval %+v", got)
	}
	_, err = s.UseApproval(ctx(t), "apr_1", "usr_b", at(2*time.Minute))
	wantErr(t, err, store.ErrApprovalClosed, "UseApproval by someone other than the requester")
	used, err := s.UseApproval(ctx(t), "apr_1", "usr_a", at(2*time.Minute))
	must(t, err)
	checkTimePtr(t, "UsedAt", used.UsedAt, ptr(at(2*time.Minute)))
	_, err = s2.UseApproval(ctx(t), "apr_1", "usr_a", at(3*time.Minute))
	wantErr(t, err, store.ErrApprovalClosed, "a second UseApproval")

	// An expired request can be neither decided nor used.
	late := a
	late.ID, late.ExpiresAt = "apr_2", at(time.Minute)
	must(t, s.CreateApproval(ctx(t), late))
	_, err = s.DecideApproval(ctx(t), "apr_2", store.ApprovalApproved, "usr_b", "bob", at(time.Hour))
	wantErr(t, err, store.ErrApprovalClosed, "DecideApproval after expiry")
	_, err = s.DecideApproval(ctx(t), "apr_missing", store.ApprovalDenied, "usr_b", "bob", at(0))
	wantErr(t, err, store.ErrNotFound, "DecideApproval of an unknown id")
	_, err = s.UseApproval(ctx(t), "apr_missing", "usr_a", at(0))
	wantErr(t, err, store.ErrNotFound, "UseApproval of an unknown id")

	denied := a
	denied.ID = "apr_3"
	must(t, s.CreateApproval(ctx(t), denied))
	_, err = s.DecideApproval(ctx(t), "apr_3", store.ApprovalDenied, "usr_b", "bob", at(time.Second))
	must(t, err)
	_, err = s.UseApproval(ctx(t), "apr_3", "usr_a", at(time.Second))
	wantErr(t, err, store.ErrApprovalClosed, "UseApproval of a denied approval")

	list, err := s.ListApprovals(ctx(t), at(-time.Hour))
	must(t, err)
	if len(list) != 3 {
		t.Fatalf("ListApprovals: %d, want 3", len(list))
	}
	if list, _ = s.ListApprovals(ctx(t), at(time.Hour)); len(list) != 0 {
		t.Fatalf("ListApprovals since later: %d, want 0", len(list))
	}
}

// testSnapshotPeople: a backup carries users, teams (with their groups),
// members, team keys and user tokens, and a restore brings them back.
func testSnapshotPeople(t *testing.T, newURL func(testing.TB) string) {
	src := Open(t, newURL(t))
	must(t, src.CreateUser(ctx(t), store.User{ID: "usr_a", Name: "alice", Kind: store.UserPerson, Role: "developer", CreatedAt: at(0)}))
	must(t, src.CreateTeam(ctx(t), store.Team{Name: "payments", Group: "team:payments", Policy: []byte(`{"max_key_ttl":"30d"}`), CreatedAt: at(0)},
		&store.Group{Name: "team:payments", Limits: []byte(`{"rpm":7}`), CreatedAt: at(0)}))
	_, err := src.PutTeamMember(ctx(t), store.TeamMember{Team: "payments", UserID: "usr_a", Role: "developer", AddedAt: at(0)})
	must(t, err)
	k := bareKey("key_1", "pay-bot")
	k.Team, k.Owner, k.Group = "payments", "usr_a", "team:payments"
	must(t, src.CreateKey(ctx(t), k))
	must(t, src.CreateAdminToken(ctx(t), store.AdminToken{ID: "adm_p", Name: "laptop", Hash: hashOf("adm_p"), CreatedAt: at(0),
		UserID: "usr_a", Kind: store.AdminTokenPersonal, ExpiresAt: ptr(at(time.Hour))}))
	snap, err := src.ExportSnapshot(ctx(t))
	must(t, err)
	if len(snap.Users) != 1 || len(snap.Teams) != 1 || len(snap.TeamMembers) != 1 {
		t.Fatalf("snapshot: %d users, %d teams, %d members", len(snap.Users), len(snap.Teams), len(snap.TeamMembers))
	}
	dst := Open(t, newURL(t))
	must(t, dst.ImportSnapshot(ctx(t), snap))
	if u, err := dst.GetUserByName(ctx(t), "alice"); err != nil || u.Role != "developer" {
		t.Fatalf("restored user %+v %v", u, err)
	}
	if tm, err := dst.GetTeam(ctx(t), "payments"); err != nil || tm.Group != "team:payments" || string(tm.Policy) != `{"max_key_ttl":"30d"}` {
		t.Fatalf("restored team %+v %v", tm, err)
	}
	if ms, err := dst.ListMemberships(ctx(t), "usr_a"); err != nil || len(ms) != 1 || ms[0].Role != "developer" {
		t.Fatalf("restored memberships %+v %v", ms, err)
	}
	if got, err := dst.GetKey(ctx(t), "key_1"); err != nil || got.Team != "payments" || got.Owner != "usr_a" {
		t.Fatalf("restored key %+v %v", got, err)
	}
	if tok, err := dst.GetAdminToken(ctx(t), "adm_p"); err != nil || tok.UserID != "usr_a" || tok.ExpiresAt == nil {
		t.Fatalf("restored token %+v %v", tok, err)
	}
	// A database with users is not a fresh one.
	fresh := Open(t, newURL(t))
	must(t, fresh.CreateUser(ctx(t), store.User{ID: "usr_z", Name: "zed", Kind: store.UserPerson, Role: "viewer", CreatedAt: at(0)}))
	wantErr(t, fresh.ImportSnapshot(ctx(t), snap), store.ErrNotEmpty, "ImportSnapshot into a database with users")
}
