package admin_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/admin"
	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/rbac"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/store/storetest"
)

// eventLog is an in-memory audit trail.
type eventLog struct {
	mu     sync.Mutex
	events []audit.Event
}

func (l *eventLog) Record(ev audit.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, ev)
	return nil
}

func (l *eventLog) Healthy() bool { return true }

// find returns the events of type typ.
func (l *eventLog) find(typ string) []audit.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []audit.Event
	for _, ev := range l.events {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

// request builds a request with p's credential.
func (h *harness) request(p person, method, path, body string) *http.Request {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+p.token)
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	return r
}

// serve sends r and checks the status.
func (h *harness) serve(r *http.Request, status int) *httptest.ResponseRecorder {
	h.t.Helper()
	w := httptest.NewRecorder()
	h.api.ServeHTTP(w, r)
	if w.Code != status {
		h.t.Fatalf("%s %s: status %d, want %d: %s", r.Method, r.URL.Path, w.Code, status, w.Body)
	}
	return w
}

// storeWithoutTokens is a new, empty store.
func storeWithoutTokens(t *testing.T) *store.Store {
	return storetest.Open(t, storetest.SQLiteURL(t))
}

// boot is the harness's bootstrap credential as a person.
func (h *harness) boot() person { return person{name: "bootstrap", token: h.token} }

// TestUsersAndPersonalTokens: users are added with a role and a first
// credential; a personal token is capped at or below its user's role;
// bad input changes nothing.
func TestUsersAndPersonalTokens(t *testing.T) {
	h := newHarness(t)
	var created adminapi.CreatedUser
	decode(t, h.asStatus(h.boot(), "POST", "/api/v1/users", `{"name":"alice","role":"admin"}`, http.StatusCreated), &created)
	if created.Secret == "" || !strings.HasPrefix(created.Secret, "kg_admin_") || created.User.Role != "admin" || created.Token.ExpiresAt == nil {
		t.Fatalf("created user %+v", created)
	}
	if got := created.Token.ExpiresAt.Sub(h.now); got != admin.DefaultTokenTTL {
		t.Errorf("first credential lives %v, want %v", got, admin.DefaultTokenTTL)
	}
	alice := person{name: "alice", token: created.Secret, id: created.User.ID}
	var who adminapi.WhoAmI
	decode(t, h.asStatus(alice, "GET", "/api/v1/whoami", "", http.StatusOK), &who)
	if who.Kind != "user" || who.Name != "alice" || who.Role != "admin" || who.Via != "personal access token" || who.ExpiresAt == nil {
		t.Fatalf("whoami %+v", who)
	}

	// Bad input is refused with the field and changes nothing.
	wantError(t, h.as(h.boot(), "POST", "/api/v1/users", `{"name":"bob","role":"superuser"}`), http.StatusBadRequest, "bad_request", "superuser", "owner", "developer")
	wantError(t, h.as(h.boot(), "POST", "/api/v1/users", `{"name":"bob","role":"admin","team":"payments"}`), http.StatusBadRequest, "bad_request", "everywhere")
	wantError(t, h.as(h.boot(), "POST", "/api/v1/users", `{"name":"bob","role":"developer","team":"nope"}`), http.StatusBadRequest, "bad_request", "nope")
	wantError(t, h.as(h.boot(), "POST", "/api/v1/users", `{"name":"bob","role":"viewer","ttl":"400d"}`), http.StatusBadRequest, "bad_request", "ttl")
	wantError(t, h.as(h.boot(), "PUT", "/api/v1/users/alice/role", `{"role":"superuser"}`), http.StatusBadRequest, "bad_request", "superuser")
	// Nobody gives more than they hold: an admin cannot make an owner.
	wantError(t, h.as(alice, "POST", "/api/v1/users", `{"name":"bob","role":"owner"}`), http.StatusForbidden, "forbidden", "secrets.read_value")
	wantError(t, h.as(alice, "PUT", "/api/v1/users/alice/role", `{"role":"owner"}`), http.StatusForbidden, "forbidden")
	h.asStatus(h.boot(), "GET", "/api/v1/users/bob", "", http.StatusNotFound)
	decode(t, h.asStatus(h.boot(), "GET", "/api/v1/users/alice", "", http.StatusOK), &created.User)
	if created.User.Role != "admin" {
		t.Fatalf("a refused role change changed alice's role to %q", created.User.Role)
	}

	// A personal token capped at auditor reads keys and changes none.
	var pat adminapi.CreatedToken
	decode(t, h.asStatus(alice, "POST", "/api/v1/me/tokens", `{"name":"dash","ttl":"7d","role":"auditor"}`, http.StatusCreated), &pat)
	if pat.Token.Role != "auditor" || pat.Token.Owner != "alice" || pat.Token.Kind != "personal" || pat.Token.ExpiresAt.Sub(h.now) != 7*24*time.Hour {
		t.Fatalf("personal token %+v", pat.Token)
	}
	dash := person{name: "alice/dash", token: pat.Secret}
	decode(t, h.asStatus(dash, "GET", "/api/v1/whoami", "", http.StatusOK), &who)
	if who.CredentialRole != "auditor" || who.Role != "admin" {
		t.Fatalf("capped whoami %+v", who)
	}
	h.asStatus(dash, "GET", "/api/v1/keys", "", http.StatusOK)
	wantError(t, h.as(dash, "POST", "/api/v1/keys", `{"name":"x"}`), http.StatusForbidden, "forbidden", "keys.create", "auditor")
	// Never stronger than its user, nor than the credential making it.
	wantError(t, h.as(alice, "POST", "/api/v1/me/tokens", `{"role":"owner"}`), http.StatusForbidden, "forbidden", "never stronger")
	wantError(t, h.as(alice, "POST", "/api/v1/me/tokens", `{"role":"nope"}`), http.StatusBadRequest, "bad_request", "nope")
	wantError(t, h.as(h.boot(), "POST", "/api/v1/me/tokens", `{}`), http.StatusBadRequest, "bad_request", "only a user")

	// A team role given with a team makes a member.
	h.addTeam("payments", "")
	var bob adminapi.CreatedUser
	decode(t, h.asStatus(alice, "POST", "/api/v1/users", `{"name":"bob","role":"developer","team":"payments","no_token":true}`, http.StatusCreated), &bob)
	if len(bob.User.Teams) != 1 || bob.User.Teams[0] != (adminapi.Membership{Team: "payments", Role: "developer"}) || bob.Secret != "" {
		t.Fatalf("bob %+v", bob)
	}
}

// TestAdminTokenListRevokeExpiryLastUse: every credential can be listed
// with its owner, role, expiry and last use (when and from where), and
// revoked on its own; expired ones stop.
func TestAdminTokenListRevokeExpiryLastUse(t *testing.T) {
	h := newHarness(t)
	alice := h.addPerson("alice", store.UserPerson, rbac.Admin, nil, "")
	dev := h.addPerson("dev", store.UserPerson, rbac.Developer, nil, "")
	r := h.request(alice, "GET", "/api/v1/whoami", "")
	r.RemoteAddr = "192.0.2.10:4242"
	h.serve(r, http.StatusOK)

	var list adminapi.AdminTokenList
	decode(t, h.asStatus(h.boot(), "GET", "/api/v1/admin-tokens", "", http.StatusOK), &list)
	byID := map[string]adminapi.AdminToken{}
	for _, tk := range list.Tokens {
		byID[tk.ID] = tk
	}
	if len(list.Tokens) != 3 {
		t.Fatalf("the owner lists %d credentials, want 3: %+v", len(list.Tokens), list.Tokens)
	}
	at := byID[alice.tokenID]
	if at.Owner != "alice" || at.Role != "admin" || at.LastUsedFrom != "192.0.2.10" || at.LastUsedAt == nil || !at.LastUsedAt.Equal(h.now) || at.Status != "active" || at.ExpiresAt == nil {
		t.Fatalf("alice's credential %+v", at)
	}
	// A developer lists only its own, and revokes none but its own.
	decode(t, h.asStatus(dev, "GET", "/api/v1/admin-tokens", "", http.StatusOK), &list)
	if len(list.Tokens) != 1 || list.Tokens[0].ID != dev.tokenID {
		t.Fatalf("the developer lists %+v, want only its own", list.Tokens)
	}
	wantError(t, h.as(dev, "POST", "/api/v1/admin-tokens/"+alice.tokenID+"/revoke", ""), http.StatusNotFound, "not_found", alice.tokenID)
	h.asStatus(alice, "GET", "/api/v1/whoami", "", http.StatusOK)

	// Revoking one credential stops it and no other.
	var pat adminapi.CreatedToken
	decode(t, h.asStatus(alice, "POST", "/api/v1/me/tokens", `{"ttl":"1d"}`, http.StatusCreated), &pat)
	second := person{name: "alice2", token: pat.Secret}
	h.asStatus(second, "GET", "/api/v1/whoami", "", http.StatusOK)
	var revoked adminapi.AdminToken
	decode(t, h.asStatus(alice, "POST", "/api/v1/admin-tokens/"+pat.Token.ID+"/revoke", "", http.StatusOK), &revoked)
	if revoked.Status != "revoked" {
		t.Fatalf("revoked %+v", revoked)
	}
	wantError(t, h.as(second, "GET", "/api/v1/whoami", ""), http.StatusUnauthorized, "unauthorized")
	h.asStatus(alice, "GET", "/api/v1/whoami", "", http.StatusOK)

	// An expired credential stops, saying so.
	decode(t, h.asStatus(alice, "POST", "/api/v1/me/tokens", `{"ttl":"1h"}`, http.StatusCreated), &pat)
	short := person{name: "short", token: pat.Secret}
	h.asStatus(short, "GET", "/api/v1/whoami", "", http.StatusOK)
	h.now = h.now.Add(time.Hour)
	wantError(t, h.as(short, "GET", "/api/v1/whoami", ""), http.StatusUnauthorized, "unauthorized", "expired")
	decode(t, h.asStatus(alice, "GET", "/api/v1/admin-tokens", "", http.StatusOK), &list)
	for _, tk := range list.Tokens {
		if tk.ID == pat.Token.ID && tk.Status != "expired" {
			t.Fatalf("an expired credential lists as %q", tk.Status)
		}
	}
}

// TestBootstrapCredentialExpires: the first start's credential is an
// owner's that expires, and whoami says how it signed in.
func TestBootstrapCredentialExpires(t *testing.T) {
	h := newHarness(t)
	fresh := storeWithoutTokens(t)
	tok, created, err := admin.EnsureBootstrapToken(context.Background(), fresh, h.hasher, h.now)
	if err != nil || !created {
		t.Fatalf("bootstrap: %v %v", created, err)
	}
	sum := h.hasher.Hash(tok.Reveal())
	st, err := fresh.GetAdminTokenByHash(context.Background(), sum[:])
	if err != nil {
		t.Fatal(err)
	}
	if st.Kind != store.AdminTokenBootstrap || st.Role != rbac.Owner || st.ExpiresAt == nil || !st.ExpiresAt.Equal(h.now.Add(admin.BootstrapTTL)) || st.UserID != "" {
		t.Fatalf("bootstrap credential %+v", st)
	}
	var who adminapi.WhoAmI
	decode(t, h.asStatus(h.boot(), "GET", "/api/v1/whoami", "", http.StatusOK), &who)
	if who.Via != "bootstrap admin token" || who.Kind != "token" || who.Role != rbac.Owner {
		t.Fatalf("whoami %+v", who)
	}
	// While no user exists, the bootstrap credential is expected; once one
	// does, it should go.
	if _, valid, err := admin.BootstrapStillValid(context.Background(), h.st, h.st, h.now); err != nil || valid {
		t.Fatalf("no user yet: still valid reported %v %v", valid, err)
	}
	h.addPerson("alice", store.UserPerson, rbac.Owner, nil, "")
	if _, valid, err := admin.BootstrapStillValid(context.Background(), h.st, h.st, h.now); err != nil || !valid {
		t.Fatalf("with a user: still valid reported %v %v", valid, err)
	}
}

// TestDisableUserStopsItsCredentials: a disabled user's credentials stop
// on the next request; enabling issues a new one and the old stay revoked.
func TestDisableUserStopsItsCredentials(t *testing.T) {
	h := newHarness(t)
	alice := h.addPerson("alice", store.UserPerson, rbac.Admin, nil, "")
	dev := h.addPerson("dev", store.UserPerson, rbac.Viewer, nil, "")
	owner := h.addPerson("olga", store.UserPerson, rbac.Owner, nil, "")
	h.asStatus(dev, "GET", "/api/v1/whoami", "", http.StatusOK)
	wantError(t, h.as(alice, "POST", "/api/v1/users/alice/disable", ""), http.StatusBadRequest, "bad_request", "yourself")
	// An admin cannot disable an owner.
	wantError(t, h.as(alice, "POST", "/api/v1/users/olga/disable", ""), http.StatusForbidden, "forbidden", "olga")
	h.asStatus(owner, "GET", "/api/v1/whoami", "", http.StatusOK)

	var u adminapi.User
	decode(t, h.asStatus(alice, "POST", "/api/v1/users/dev/disable", "", http.StatusOK), &u)
	if u.Status != "disabled" {
		t.Fatalf("disabled user %+v", u)
	}
	wantError(t, h.as(dev, "GET", "/api/v1/whoami", ""), http.StatusUnauthorized, "unauthorized")
	revs, err := h.st.RevocationsSince(context.Background(), 0)
	if err != nil || len(revs) == 0 || revs[len(revs)-1].Kind != "user" || revs[len(revs)-1].Subject != dev.id {
		t.Fatalf("no revocation told other nodes: %+v %v", revs, err)
	}
	var back adminapi.CreatedUser
	decode(t, h.asStatus(alice, "POST", "/api/v1/users/dev/enable", "", http.StatusOK), &back)
	if back.User.Status != "active" || back.Secret == "" {
		t.Fatalf("enabled %+v", back)
	}
	wantError(t, h.as(dev, "GET", "/api/v1/whoami", ""), http.StatusUnauthorized, "unauthorized")
	h.asStatus(person{token: back.Secret}, "GET", "/api/v1/whoami", "", http.StatusOK)
}

// TestServiceAccounts: a service account gets its first token once, can
// hold several, each revoked on its own, and cannot make its own.
func TestServiceAccounts(t *testing.T) {
	h := newHarness(t)
	h.addTeam("payments", "")
	var sa adminapi.CreatedUser
	decode(t, h.asStatus(h.boot(), "POST", "/api/v1/service-accounts", `{"name":"terraform","role":"team-admin","team":"payments"}`, http.StatusCreated), &sa)
	if sa.User.Kind != "service" || sa.Secret == "" || sa.Token.Kind != "service" {
		t.Fatalf("service account %+v", sa)
	}
	first := person{name: "terraform", token: sa.Secret}
	var who adminapi.WhoAmI
	decode(t, h.asStatus(first, "GET", "/api/v1/whoami", "", http.StatusOK), &who)
	if who.Kind != "service" || who.Via != "service account token" || len(who.Teams) != 1 {
		t.Fatalf("whoami %+v", who)
	}
	var tok adminapi.CreatedToken
	decode(t, h.asStatus(h.boot(), "POST", "/api/v1/service-accounts/terraform/tokens", `{"name":"ci","ttl":"30d"}`, http.StatusCreated), &tok)
	second := person{name: "terraform-ci", token: tok.Secret}
	wantError(t, h.as(first, "POST", "/api/v1/me/tokens", `{}`), http.StatusBadRequest, "bad_request", "only a user")
	var list adminapi.UserList
	decode(t, h.asStatus(h.boot(), "GET", "/api/v1/service-accounts", "", http.StatusOK), &list)
	if len(list.Users) != 1 || list.Users[0].Name != "terraform" {
		t.Fatalf("service accounts %+v", list)
	}
	h.asStatus(h.boot(), "POST", "/api/v1/admin-tokens/"+sa.Token.ID+"/revoke", "", http.StatusOK)
	wantError(t, h.as(first, "GET", "/api/v1/whoami", ""), http.StatusUnauthorized, "unauthorized")
	h.asStatus(second, "GET", "/api/v1/whoami", "", http.StatusOK)
	wantError(t, h.as(h.boot(), "POST", "/api/v1/service-accounts/nobody/tokens", `{}`), http.StatusNotFound, "not_found")
}

// TestUpgradedTokensKeepTheirPowers: an operator token from before users
// still does what operators did, and no more.
func TestUpgradedTokensKeepTheirPowers(t *testing.T) {
	h := newHarness(t)
	raw, _, err := admin.NewToken(context.Background(), h.st, h.hasher, admin.TokenSpec{Name: "ops", Role: rbac.Operator, TTL: time.Hour}, h.now)
	if err != nil {
		t.Fatal(err)
	}
	op := person{name: "ops", token: raw.Reveal()}
	h.asStatus(op, "POST", "/api/v1/keys", `{"name":"svc"}`, http.StatusCreated)
	h.asStatus(h.boot(), "PUT", "/api/v1/secrets/app/db", `{"value":"s3cr3t-test"}`, http.StatusCreated)
	wantError(t, h.as(op, "GET", "/api/v1/secrets/app/db:value", ""), http.StatusForbidden, "forbidden", "secrets.read_value")
	wantError(t, h.as(op, "GET", "/api/v1/vault/backup", ""), http.StatusForbidden, "forbidden", "backup.export")
	wantError(t, h.as(op, "GET", "/api/v1/users", ""), http.StatusForbidden, "forbidden", "users.read")
	h.asStatus(h.boot(), "GET", "/api/v1/secrets/app/db:value", "", http.StatusOK)
}
