package admin_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/admin"
	"github.com/keygate/keygate/internal/store"
)

// person is a user or service account with an admin credential.
type person struct {
	id, name, role, token, tokenID string
}

// addPerson stores a user of kind with role, member of teams (team ->
// role), and issues it a credential capped at capRole ("" for none).
func (h *harness) addPerson(name, kind, role string, teams map[string]string, capRole string) person {
	h.t.Helper()
	ctx := context.Background()
	u := store.User{ID: "usr_" + strings.ReplaceAll(name, "-", "_"), Name: name, Kind: kind, Role: role, CreatedAt: h.now}
	if err := h.st.CreateUser(ctx, u); err != nil {
		h.t.Fatal(err)
	}
	for team, r := range teams {
		if _, err := h.st.PutTeamMember(ctx, store.TeamMember{Team: team, UserID: u.ID, Role: r, AddedAt: h.now}); err != nil {
			h.t.Fatal(err)
		}
	}
	kindOf := store.AdminTokenPersonal
	if kind == store.UserService {
		kindOf = store.AdminTokenService
	}
	raw, tok, err := admin.NewToken(ctx, h.st, h.hasher, admin.TokenSpec{Name: "test", Kind: kindOf, UserID: u.ID, Role: capRole, TTL: 10 * 365 * 24 * time.Hour}, h.now)
	if err != nil {
		h.t.Fatal(err)
	}
	return person{id: u.ID, name: name, role: role, token: raw.Reveal(), tokenID: tok.ID}
}

// addTeam stores a team and its group directly.
func (h *harness) addTeam(name, policy string) {
	h.t.Helper()
	var pol []byte
	if policy != "" {
		pol = []byte(policy)
	}
	g := store.Group{Name: "team:" + name, CreatedAt: h.now}
	if err := h.st.CreateTeam(context.Background(), store.Team{Name: name, Group: g.Name, Policy: pol, CreatedAt: h.now}, &g); err != nil {
		h.t.Fatal(err)
	}
}

// addKey stores a key of team (and owner) directly.
func (h *harness) addKey(name, team, owner string) store.Key {
	h.t.Helper()
	sum := h.hasher.Hash("kg_test_" + name)
	k := store.Key{ID: "key_" + strings.ReplaceAll(name, "-", "_"), Name: name, Env: "test", Prefix: "kg_test_x", Hash: sum[:], CreatedAt: h.now, Team: team, Owner: owner}
	if team != "" {
		k.Group = "team:" + team
	}
	if err := h.st.CreateKey(context.Background(), k); err != nil {
		h.t.Fatal(err)
	}
	return k
}

// as sends a request with p's credential.
func (h *harness) as(p person, method, path, body string) *httptest.ResponseRecorder {
	h.t.Helper()
	return h.call(method, path, body, "Bearer "+p.token)
}

// asStatus sends a request with p's credential and checks the status.
func (h *harness) asStatus(p person, method, path, body string, status int) *httptest.ResponseRecorder {
	h.t.Helper()
	w := h.as(p, method, path, body)
	if w.Code != status {
		h.t.Fatalf("%s %s %s: status %d, want %d: %s", p.name, method, path, w.Code, status, w.Body)
	}
	return w
}

var _ = http.StatusOK
