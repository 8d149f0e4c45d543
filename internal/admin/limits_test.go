package admin_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/store"
)

func TestKeyLimitsAndGroups(t *testing.T) {
	h := newHarness(t)
	wantError(t, h.do("POST", "/api/v1/keys", `{"name":"k","group":"team"}`), http.StatusBadRequest, "bad_request", "no group named")
	wantError(t, h.do("POST", "/api/v1/keys", `{"name":"k","limits":{"rpm":-1}}`), http.StatusBadRequest, "bad_request", "rpm")
	wantError(t, h.do("POST", "/api/v1/keys", `{"name":"k","limits":{"quotas":[{"limit":5,"unit":"requests","period":"fortnight"}]}}`), http.StatusBadRequest, "bad_request", "fortnight")

	w := h.do("POST", "/api/v1/groups", `{"name":"team","limits":{"budgets":[{"micro_usd":20000000,"period":"month"}]}}`)
	h.mustStatus(w, http.StatusCreated)
	wantError(t, h.do("POST", "/api/v1/groups", `{"name":"team"}`), http.StatusConflict, "conflict")

	w = h.do("POST", "/api/v1/keys", `{"name":"ci-bot","group":"team","limits":{"rpm":60,"tpm":200000,"concurrency":4,"quotas":[{"limit":5000,"unit":"requests","period":"day"}],"budgets":[{"micro_usd":20000000,"period":"month"}]}}`)
	h.mustStatus(w, http.StatusCreated)
	var created adminapi.CreatedKey
	decode(t, w, &created)
	k := created.Key
	if k.Group != "team" || k.Limits.RPM != 60 || k.Limits.TPM != 200000 || k.Limits.Concurrency != 4 ||
		len(k.Limits.Quotas) != 1 || k.Limits.Quotas[0].Limit != 5000 || len(k.Limits.Budgets) != 1 {
		t.Fatalf("created %+v", k)
	}

	// A live update replaces the limits and tells this node's key cache.
	before := len(h.revocations())
	w = h.do("PATCH", "/api/v1/keys/ci-bot", `{"limits":{"rps":2}}`)
	h.mustStatus(w, http.StatusOK)
	k = adminapi.Key{}
	decode(t, w, &k)
	if k.Limits.RPS != 2 || k.Limits.RPM != 0 || k.Group != "team" {
		t.Fatalf("after update %+v", k)
	}
	if len(h.revocations()) != before+1 {
		t.Fatal("the key cache was not told about the change")
	}
	stored, _ := h.st.GetKeyByName(context.Background(), "ci-bot")
	if string(stored.Limits) != `{"rps":2}` {
		t.Fatalf("stored limits %s", stored.Limits)
	}
	wantError(t, h.do("PATCH", "/api/v1/keys/ci-bot", `{}`), http.StatusBadRequest, "bad_request", "nothing to change")
	wantError(t, h.do("PATCH", "/api/v1/keys/ci-bot", `{"group":"nope"}`), http.StatusBadRequest, "bad_request", "no group")
	wantError(t, h.do("PATCH", "/api/v1/keys/nope", `{"limits":{}}`), http.StatusNotFound, "not_found")

	var g adminapi.Group
	decode(t, h.do("GET", "/api/v1/groups/team", ""), &g)
	if g.Keys != 1 || len(g.Limits.Budgets) != 1 || g.Limits.Budgets[0].MicroUSD != 20_000_000 {
		t.Fatalf("group %+v", g)
	}
	wantError(t, h.do("DELETE", "/api/v1/groups/team", ""), http.StatusConflict, "conflict", "still has keys")
	h.mustStatus(h.do("PATCH", "/api/v1/groups/team", `{"limits":{"rpm":1000}}`), http.StatusOK)
	h.mustStatus(h.do("PATCH", "/api/v1/keys/ci-bot", `{"group":""}`), http.StatusOK)
	h.mustStatus(h.do("DELETE", "/api/v1/groups/team", ""), http.StatusNoContent)
	var list adminapi.GroupList
	decode(t, h.do("GET", "/api/v1/groups", ""), &list)
	if len(list.Groups) != 0 {
		t.Fatalf("groups after delete: %+v", list)
	}
}

func TestKeyUsage(t *testing.T) {
	h := newHarness(t)
	h.mustStatus(h.do("POST", "/api/v1/keys", `{"name":"app"}`), http.StatusCreated)
	k, _ := h.st.GetKeyByName(context.Background(), "app")
	today := h.now.Format("2006-01-02")
	old := h.now.AddDate(0, 0, -40).Format("2006-01-02")
	if err := h.st.AddUsage(context.Background(), []store.UsageRow{
		{KeyID: k.ID, Day: today, Model: "gpt-4o", Requests: 3, InputTokens: 30, OutputTokens: 60, MicroUSD: 675, Denials: 1},
		{KeyID: k.ID, Day: old, Model: "gpt-4o", Requests: 9},
	}); err != nil {
		t.Fatal(err)
	}
	var u adminapi.KeyUsage
	decode(t, h.do("GET", "/api/v1/keys/app/usage", ""), &u)
	if len(u.Rows) != 1 || u.Rows[0] != (adminapi.UsageRow{Date: today, Model: "gpt-4o", Requests: 3, InputTokens: 30, OutputTokens: 60, MicroUSD: 675, Denials: 1}) {
		t.Fatalf("30-day usage %+v", u.Rows)
	}
	decode(t, h.do("GET", "/api/v1/keys/app/usage?days=60", ""), &u)
	if len(u.Rows) != 2 {
		t.Fatalf("60-day usage %+v", u.Rows)
	}
	for _, bad := range []string{"0", "401", "x"} {
		wantError(t, h.do("GET", fmt.Sprintf("/api/v1/keys/app/usage?days=%s", bad), ""), http.StatusBadRequest, "bad_request", "days")
	}
}
