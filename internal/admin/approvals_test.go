package admin_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/admin"
	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/limit"
	"github.com/keygate/keygate/internal/rbac"
	"github.com/keygate/keygate/internal/store"
)

// TestTwoPersonApproval: with approvals required for reading secret
// values, the request waits (202) with an approval id; its requester cannot
// approve it; another owner approves; the requester sends the same request
// with the approval and it runs, once; both decisions are on the trail.
func TestTwoPersonApproval(t *testing.T) {
	trail := &eventLog{}
	h := newHarness(t, func(o *admin.Options) {
		o.Approval = admin.ApprovalPolicy{RequiredFor: []rbac.Permission{rbac.SecretsReadValue, rbac.BackupExport}}
		o.Audit = trail
	})
	h.asStatus(h.boot(), "PUT", "/api/v1/secrets/payments/stripe", `{"value":"test-only-secret-1"}`, http.StatusCreated)
	alice := h.addPerson("alice", store.UserPerson, rbac.Owner, nil, "")
	bob := h.addPerson("bob", store.UserPerson, rbac.Owner, nil, "")
	adm := h.addPerson("adele", store.UserPerson, rbac.Admin, nil, "")
	svc := h.addPerson("robot", store.UserService, rbac.Owner, nil, "")

	w := h.asStatus(alice, "GET", "/api/v1/secrets/payments/stripe:value", "", http.StatusAccepted)
	if strings.Contains(w.Body.String(), "test-only-secret-1") {
		t.Fatal("a request waiting for approval answered the secret")
	}
	var pending adminapi.ApprovalPending
	decode(t, w, &pending)
	ap := pending.Approval
	if ap.Status != "pending" || ap.Permission != "secrets.read_value" || ap.Requester != "alice" || !strings.Contains(pending.Message, "keygate approve "+ap.ID) {
		t.Fatalf("pending %+v", pending)
	}
	if strings.Contains(ap.Path, "payments/stripe") {
		t.Errorf("the approval shows the secret's name: %s", ap.Path)
	}
	// Using it before it is approved runs nothing.
	wantError(t, h.call("GET", "/api/v1/secrets/payments/stripe:value", "", "Bearer "+alice.token+"\x00"), http.StatusUnauthorized, "unauthorized")
	r := h.request(alice, "GET", "/api/v1/secrets/payments/stripe:value", "")
	r.Header.Set(adminapi.ApprovalHeader, ap.ID)
	wantError(t, h.serve(r, http.StatusConflict), http.StatusConflict, "conflict", "pending")

	approve := "/api/v1/approvals/" + ap.ID + "/approve"
	wantError(t, h.as(alice, "POST", approve, ""), http.StatusForbidden, "forbidden", "your own")
	wantError(t, h.as(adm, "POST", approve, ""), http.StatusForbidden, "forbidden", "secrets.read_value")
	wantError(t, h.as(svc, "POST", approve, ""), http.StatusForbidden, "forbidden", "person")
	var decided adminapi.Approval
	decode(t, h.asStatus(bob, "POST", approve, "", http.StatusOK), &decided)
	if decided.Status != "approved" || decided.DecidedBy != "bob" {
		t.Fatalf("decided %+v", decided)
	}
	wantError(t, h.as(bob, "POST", "/api/v1/approvals/"+ap.ID+"/deny", ""), http.StatusConflict, "conflict", "approved")

	// Someone else cannot use it; another request cannot either.
	r = h.request(bob, "GET", "/api/v1/secrets/payments/stripe:value", "")
	r.Header.Set(adminapi.ApprovalHeader, ap.ID)
	wantError(t, h.serve(r, http.StatusNotFound), http.StatusNotFound, "not_found")
	r = h.request(alice, "GET", "/api/v1/secrets/payments/stripe:value?version=1", "")
	r.Header.Set(adminapi.ApprovalHeader, ap.ID)
	wantError(t, h.serve(r, http.StatusConflict), http.StatusConflict, "conflict", "another request")

	// The requester runs it once.
	r = h.request(alice, "GET", "/api/v1/secrets/payments/stripe:value", "")
	r.Header.Set(adminapi.ApprovalHeader, ap.ID)
	var val adminapi.SecretValue
	decode(t, h.serve(r, http.StatusOK), &val)
	if val.Value != "test-only-secret-1" {
		t.Fatalf("value %+v", val)
	}
	r = h.request(alice, "GET", "/api/v1/secrets/payments/stripe:value", "")
	r.Header.Set(adminapi.ApprovalHeader, ap.ID)
	wantError(t, h.serve(r, http.StatusConflict), http.StatusConflict, "conflict", "used")

	// A denied request never runs; an expired one neither.
	decode(t, h.asStatus(alice, "GET", "/api/v1/vault/backup", "", http.StatusAccepted), &pending)
	h.asStatus(bob, "POST", "/api/v1/approvals/"+pending.Approval.ID+"/deny", "", http.StatusOK)
	r = h.request(alice, "GET", "/api/v1/vault/backup", "")
	r.Header.Set(adminapi.ApprovalHeader, pending.Approval.ID)
	wantError(t, h.serve(r, http.StatusConflict), http.StatusConflict, "conflict", "denied")
	decode(t, h.asStatus(alice, "GET", "/api/v1/vault/backup", "", http.StatusAccepted), &pending)
	h.now = h.now.Add(2 * time.Hour)
	wantError(t, h.as(bob, "POST", "/api/v1/approvals/"+pending.Approval.ID+"/approve", ""), http.StatusConflict, "conflict", "expired")

	// The list: all for an approver, its own for anyone else.
	var list adminapi.ApprovalList
	decode(t, h.asStatus(bob, "GET", "/api/v1/approvals", "", http.StatusOK), &list)
	if len(list.Approvals) != 3 {
		t.Fatalf("bob lists %d approvals, want 3", len(list.Approvals))
	}
	viewer := h.addPerson("vic", store.UserPerson, rbac.Viewer, nil, "")
	decode(t, h.asStatus(viewer, "GET", "/api/v1/approvals", "", http.StatusOK), &list)
	if len(list.Approvals) != 0 {
		t.Fatalf("a viewer lists others' approvals: %+v", list)
	}

	// Both sides are on the trail.
	for typ, n := range map[string]int{"approval.requested": 3, "approval.approved": 1, "approval.denied": 1, "approval.used": 1} {
		if got := len(trail.find(typ)); got != n {
			t.Errorf("%d %s events on the trail, want %d", got, typ, n)
		}
	}
	if ev := trail.find("approval.approved"); len(ev) == 1 && (ev[0].Actor != bob.id || ev[0].Fields["requester"] != alice.id) {
		t.Errorf("approval event %+v", ev[0])
	}
	if ev := trail.find("secret.read"); len(ev) != 1 || ev[0].Actor != alice.id {
		t.Errorf("secret reads on the trail: %+v", ev)
	}
}

// TestAdminAuthFailuresThrottled: failed admin authentication is throttled
// per address and per credential prefix, and a valid credential from a
// throttled address still works.
func TestAdminAuthFailuresThrottled(t *testing.T) {
	h := newHarness(t, func(o *admin.Options) {
		o.AuthFailures = &admin.AuthFailureLimits{Limiter: limit.NewMemory(), Max: 4, Window: time.Hour}
	})
	from := func(addr, token string) *http.Request {
		r := h.request(person{token: token}, "GET", "/api/v1/whoami", "")
		r.RemoteAddr = addr + ":1234"
		return r
	}
	// The allowance's failures are answered 401; past it, 429.
	for i := 0; i < 5; i++ {
		h.serve(from("192.0.2.1", "kg_admin_garbage"), http.StatusUnauthorized)
	}
	w := h.serve(from("192.0.2.1", "kg_admin_garbage"), http.StatusTooManyRequests)
	if w.Header().Get("Retry-After") == "" {
		t.Error("a throttled answer without Retry-After")
	}
	// The valid credential is never locked out by others' failures.
	h.serve(from("192.0.2.1", h.token), http.StatusOK)
	// Another address is not throttled.
	h.serve(from("192.0.2.2", "kg_admin_garbage"), http.StatusUnauthorized)

	// Many addresses guessing at one well-formed credential's prefix are.
	guess := h.addPerson("target", store.UserPerson, rbac.Viewer, nil, "").token
	h.asStatus(h.boot(), "POST", "/api/v1/admin-tokens/"+mustTokenID(t, h, guess)+"/revoke", "", http.StatusOK)
	for i := 0; i < 5; i++ {
		h.serve(from("198.51.100."+string(rune('1'+i)), guess), http.StatusUnauthorized)
	}
	h.serve(from("198.51.100.9", guess), http.StatusTooManyRequests)
}

func mustTokenID(t *testing.T, h *harness, raw string) string {
	t.Helper()
	sum := h.hasher.Hash(raw)
	tok, err := h.st.GetAdminTokenByHash(t.Context(), sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return tok.ID
}

// TestPeopleOnTheTrail: every admin action names its user and credential,
// and changes to roles, team members and policies record before and after.
func TestPeopleOnTheTrail(t *testing.T) {
	trail := &eventLog{}
	h := newHarness(t, func(o *admin.Options) { o.Audit = trail })
	alice := h.addPerson("alice", store.UserPerson, rbac.Admin, nil, "")
	h.asStatus(alice, "POST", "/api/v1/teams", `{"name":"payments"}`, http.StatusCreated)
	h.asStatus(alice, "POST", "/api/v1/users", `{"name":"bob","role":"developer","team":"payments"}`, http.StatusCreated)
	h.asStatus(alice, "PUT", "/api/v1/users/bob/role", `{"role":"viewer"}`, http.StatusOK)
	h.asStatus(alice, "PUT", "/api/v1/teams/payments/members/bob", `{"role":"team-admin"}`, http.StatusOK)
	h.asStatus(alice, "PATCH", "/api/v1/teams/payments", `{"policy":{"max_key_ttl":"30d"}}`, http.StatusOK)
	h.as(alice, "GET", "/api/v1/secrets/x:value", "")

	want := map[string][2]string{
		"role":       {"developer", "viewer"},
		"member bob": {"developer", "team-admin"},
		"policy":     {"none", `{"max_key_ttl":"30d","max_limits":{}}`},
	}
	for _, ev := range trail.find("admin.change") {
		if ev.Actor != alice.id || ev.Fields["actor_name"] != "alice" || ev.Fields["credential"] != alice.tokenID || ev.Client == "" {
			t.Errorf("change event without its author: %+v", ev)
		}
		if w, ok := want[ev.Fields["field"]]; ok && ev.Fields["before"] == w[0] && ev.Fields["after"] == w[1] {
			delete(want, ev.Fields["field"])
		}
	}
	if len(want) != 0 {
		t.Errorf("changes missing from the trail: %v\n%+v", want, trail.find("admin.change"))
	}
	var refused bool
	for _, ev := range trail.find("admin.action") {
		if ev.Decision == "deny" && ev.Fields["permission"] == "secrets.read_value" && ev.Actor == alice.id {
			refused = true
		}
	}
	if !refused {
		t.Error("a refused secret read is not on the trail with who asked")
	}
}
