package storetest

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/store"
)

// testInvitations: an invitation is stored by its hash, listed (pending
// ones alone when asked), revoked once, and accepted once: accepting
// creates the user, sets the password and adds the membership together,
// and a refused acceptance changes nothing.
func testInvitations(t *testing.T, newURL func(testing.TB) string) {
	url := newURL(t)
	s := Open(t, url)
	for _, name := range []string{"payments", "search"} {
		must(t, s.CreateTeam(ctx(t), store.Team{Name: name, Group: "team:" + name, CreatedAt: at(0)}, &store.Group{Name: "team:" + name, CreatedAt: at(0)}))
	}
	inv := func(id, email, team string, created time.Duration) store.Invitation {
		return store.Invitation{ID: id, Hash: []byte("hash-of-" + id), Email: email, Team: team, Role: "developer", CreatedBy: "usr_admin",
			CreatedByName: "ada", CreatedAt: at(created), ExpiresAt: at(created + 7*24*time.Hour)}
	}
	a, b, c := inv("inv_a", "ann@example.com", "payments", 0), inv("inv_b", "bo@example.com", "payments", time.Minute), inv("inv_c", "cy@example.com", "search", 2*time.Minute)
	for _, i := range []store.Invitation{a, b, c} {
		must(t, s.CreateInvitation(ctx(t), i))
	}
	dup := inv("inv_d", "x@example.com", "payments", 0)
	dup.Hash = a.Hash
	wantErr(t, s.CreateInvitation(ctx(t), dup), store.ErrConflict, "CreateInvitation with a taken hash")
	wantErr(t, s.CreateInvitation(ctx(t), inv("inv_a", "x@example.com", "payments", 0)), store.ErrConflict, "CreateInvitation with a taken id")

	got, err := s.GetInvitationByHash(ctx(t), []byte("hash-of-inv_a"))
	must(t, err)
	if got.ID != "inv_a" || got.Email != "ann@example.com" || got.Team != "payments" || got.Role != "developer" || got.CreatedBy != "usr_admin" ||
		got.CreatedByName != "ada" || got.RevokedAt != nil || got.AcceptedAt != nil || !bytes.Equal(got.Hash, a.Hash) {
		t.Fatalf("invitation %+v", got)
	}
	checkTime(t, "CreatedAt", got.CreatedAt, a.CreatedAt)
	checkTime(t, "ExpiresAt", got.ExpiresAt, a.ExpiresAt)
	if !got.Pending(at(time.Hour)) || got.Pending(at(8*24*time.Hour)) {
		t.Fatal("Pending does not follow the expiry")
	}
	_, err = s.GetInvitationByHash(ctx(t), []byte("no such hash"))
	wantErr(t, err, store.ErrNotFound, "GetInvitationByHash of an unknown hash")
	_, err = s.GetInvitation(ctx(t), "inv_missing")
	wantErr(t, err, store.ErrNotFound, "GetInvitation of an unknown id")

	ids := func(is []store.Invitation) (out []string) {
		for _, i := range is {
			out = append(out, i.ID)
		}
		return out
	}
	all, err := s.ListInvitations(ctx(t), store.InvitationFilter{})
	must(t, err)
	if got := ids(all); len(got) != 3 || got[0] != "inv_c" || got[2] != "inv_a" {
		t.Fatalf("every invitation, newest first: %v", got)
	}
	pay, err := s.ListInvitations(ctx(t), store.InvitationFilter{Team: "payments"})
	must(t, err)
	if got := ids(pay); len(got) != 2 || got[0] != "inv_b" || got[1] != "inv_a" {
		t.Fatalf("payments' invitations: %v", got)
	}

	// Revoked once; a second revocation, or revoking an unknown one, is told apart.
	rv, err := s.RevokeInvitation(ctx(t), "inv_b", "usr_admin", at(time.Hour))
	must(t, err)
	checkTimePtr(t, "RevokedAt", rv.RevokedAt, ptr(at(time.Hour)))
	if rv.RevokedBy != "usr_admin" {
		t.Fatalf("RevokedBy %q", rv.RevokedBy)
	}
	_, err = s.RevokeInvitation(ctx(t), "inv_b", "usr_admin", at(2*time.Hour))
	wantErr(t, err, store.ErrInvitationClosed, "RevokeInvitation twice")
	_, err = s.RevokeInvitation(ctx(t), "inv_missing", "usr_admin", at(time.Hour))
	wantErr(t, err, store.ErrNotFound, "RevokeInvitation of an unknown id")
	_, err = s.RevokeInvitation(ctx(t), "inv_c", "usr_admin", at(8*24*time.Hour))
	wantErr(t, err, store.ErrInvitationClosed, "RevokeInvitation after it expired")
	pending, err := s.ListInvitations(ctx(t), store.InvitationFilter{Team: "payments", PendingAt: at(time.Hour)})
	must(t, err)
	if got := ids(pending); len(got) != 1 || got[0] != "inv_a" {
		t.Fatalf("payments' pending invitations: %v", got)
	}
	if pending, _ = s.ListInvitations(ctx(t), store.InvitationFilter{PendingAt: at(8 * 24 * time.Hour)}); len(pending) != 0 {
		t.Fatalf("pending invitations after they all expired: %v", ids(pending))
	}

	// A revoked or expired invitation is not accepted, and nothing changes.
	ann := store.User{ID: "usr_ann", Name: "ann@example.com", Kind: store.UserPerson, Role: "developer", CreatedAt: at(time.Hour), CreatedBy: "inv_a"}
	bo := store.User{ID: "usr_bo", Name: "bo@example.com", Kind: store.UserPerson, Role: "developer", CreatedAt: at(time.Hour)}
	_, err = s.AcceptInvitation(ctx(t), store.Acceptance{InvitationID: "inv_b", At: at(time.Hour), NewUser: &bo, PasswordHash: "$argon2id$x"})
	wantErr(t, err, store.ErrInvitationClosed, "AcceptInvitation of a revoked invitation")
	cy := store.User{ID: "usr_cy", Name: "cy@example.com", Kind: store.UserPerson, Role: "developer", CreatedAt: at(time.Hour)}
	_, err = s.AcceptInvitation(ctx(t), store.Acceptance{InvitationID: "inv_c", At: at(8 * 24 * time.Hour), NewUser: &cy})
	wantErr(t, err, store.ErrInvitationClosed, "AcceptInvitation of an expired invitation")
	_, err = s.AcceptInvitation(ctx(t), store.Acceptance{InvitationID: "inv_missing", At: at(time.Hour), NewUser: &cy})
	wantErr(t, err, store.ErrNotFound, "AcceptInvitation of an unknown invitation")
	for _, name := range []string{"bo@example.com", "cy@example.com"} {
		_, err = s.GetUserByName(ctx(t), name)
		wantErr(t, err, store.ErrNotFound, "a refused acceptance made user "+name)
	}

	// A taken user name refuses the acceptance and leaves the invitation pending.
	must(t, s.CreateUser(ctx(t), store.User{ID: "usr_other", Name: "taken@example.com", Kind: store.UserPerson, Role: "viewer", CreatedAt: at(0)}))
	clash := store.User{ID: "usr_clash", Name: "taken@example.com", Kind: store.UserPerson, Role: "developer", CreatedAt: at(time.Hour)}
	_, err = s.AcceptInvitation(ctx(t), store.Acceptance{InvitationID: "inv_a", At: at(time.Hour), NewUser: &clash, PasswordHash: "$argon2id$x"})
	wantErr(t, err, store.ErrConflict, "AcceptInvitation with a taken user name")
	if got, _ = s.GetInvitation(ctx(t), "inv_a"); !got.Pending(at(time.Hour)) {
		t.Fatalf("a refused acceptance used the invitation: %+v", got)
	}
	if ms, _ := s.ListMemberships(ctx(t), "usr_other"); len(ms) != 0 {
		t.Fatalf("a refused acceptance made a membership: %+v", ms)
	}

	// Two processes race to accept one invitation: exactly one wins, and
	// the winner's user, password and membership are all there.
	s2 := Open(t, url)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, st := range []*store.Store{s, s2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := ann
			u.ID = []string{"usr_ann", "usr_ann2"}[i]
			_, errs[i] = st.AcceptInvitation(ctx(t), store.Acceptance{InvitationID: "inv_a", At: at(time.Hour), NewUser: &u, PasswordHash: "$argon2id$ann"})
		}()
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case errors.Is(err, store.ErrInvitationClosed), errors.Is(err, store.ErrConflict):
		default:
			t.Fatalf("racing acceptance: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d of two racing acceptances won, want exactly 1 (%v)", wins, errs)
	}
	u, err := s2.GetUserByName(ctx(t), "ann@example.com")
	must(t, err)
	got, err = s2.GetInvitation(ctx(t), "inv_a")
	must(t, err)
	if got.AcceptedBy != u.ID || got.Pending(at(time.Hour)) {
		t.Fatalf("accepted invitation %+v, user %s", got, u.ID)
	}
	checkTimePtr(t, "AcceptedAt", got.AcceptedAt, ptr(at(time.Hour)))
	if h, err := s2.GetUserPassword(ctx(t), u.ID); err != nil || h != "$argon2id$ann" {
		t.Fatalf("the new user's password: %q %v", h, err)
	}
	ms, err := s2.ListMemberships(ctx(t), u.ID)
	must(t, err)
	if len(ms) != 1 || ms[0].Team != "payments" || ms[0].Role != "developer" {
		t.Fatalf("the new user's teams: %+v", ms)
	}
	_, err = s.AcceptInvitation(ctx(t), store.Acceptance{InvitationID: "inv_a", At: at(2 * time.Hour), UserID: "usr_other"})
	wantErr(t, err, store.ErrInvitationClosed, "AcceptInvitation twice")
	_, err = s.RevokeInvitation(ctx(t), "inv_a", "usr_admin", at(2*time.Hour))
	wantErr(t, err, store.ErrInvitationClosed, "RevokeInvitation of an accepted invitation")

	// An existing user accepts: only the membership is added.
	d := inv("inv_e", "taken@example.com", "search", 0)
	d.Role = "viewer"
	must(t, s.CreateInvitation(ctx(t), d))
	_, err = s.AcceptInvitation(ctx(t), store.Acceptance{InvitationID: "inv_e", At: at(time.Hour), UserID: "usr_other"})
	must(t, err)
	if ms, _ = s.ListMemberships(ctx(t), "usr_other"); len(ms) != 1 || ms[0].Team != "search" || ms[0].Role != "viewer" {
		t.Fatalf("an existing user's teams after accepting: %+v", ms)
	}
}
