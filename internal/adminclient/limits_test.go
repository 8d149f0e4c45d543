package adminclient

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
)

func TestKeyLimitMethods(t *testing.T) {
	t.Parallel()
	tok := testToken(t)
	limits := adminapi.Limits{RPM: 60, Quotas: []adminapi.Quota{{Limit: 5000, Unit: adminapi.UnitRequests, Period: adminapi.PeriodDay}}}
	var vs vaultServer
	srv := vs.start(t, tok, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPatch:
			writeJSON(w, 200, adminapi.Key{ID: "key_1", Name: "ci bot", Limits: limits, Group: "team-a"})
		case strings.HasSuffix(r.URL.Path, "/usage"):
			writeJSON(w, 200, adminapi.KeyUsage{Key: adminapi.Key{ID: "key_1"}, Rows: []adminapi.UsageRow{
				{Date: "2025-06-02", Model: "gpt-4o", Requests: 3, InputTokens: 10, OutputTokens: 20, MicroUSD: 123},
			}})
		default:
			writeJSON(w, 404, adminapi.ErrorBody{Error: adminapi.ErrorDetail{Code: "not_found", Message: "no such route"}})
		}
	})
	c := newClient(t, srv.URL, tok)
	ctx := context.Background()

	group := "team-a"
	k, err := c.UpdateKey(ctx, "ci bot", adminapi.UpdateKeyRequest{Limits: &limits, Group: &group})
	if err != nil || k.Group != "team-a" || !reflect.DeepEqual(k.Limits, limits) {
		t.Fatalf("UpdateKey = %+v, %v", k, err)
	}
	empty := ""
	if _, err := c.UpdateKey(ctx, "key_1", adminapi.UpdateKeyRequest{Group: &empty}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateKey(ctx, "key_1", adminapi.UpdateKeyRequest{Limits: &adminapi.Limits{}}); err != nil {
		t.Fatal(err)
	}
	u, err := c.KeyUsage(ctx, "key_1", 7)
	if err != nil || len(u.Rows) != 1 || u.Rows[0].MicroUSD != 123 {
		t.Fatalf("KeyUsage = %+v, %v", u, err)
	}
	if _, err := c.KeyUsage(ctx, "key_1", 0); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"PATCH /api/v1/keys/ci%20bot", "PATCH /api/v1/keys/key_1", "PATCH /api/v1/keys/key_1",
		"GET /api/v1/keys/key_1/usage?days=7", "GET /api/v1/keys/key_1/usage",
	}
	if got := vs.requests(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Absent fields stay absent on the wire; an empty Limits is sent as {} to remove them all.
	wantBodies := []string{
		`{"limits":{"rpm":60,"quotas":[{"limit":5000,"unit":"requests","period":"day"}]},"group":"team-a"}`,
		`{"group":""}`,
		`{"limits":{}}`,
	}
	vs.mu.Lock()
	bodies := append([]string{}, vs.bodies[:3]...)
	vs.mu.Unlock()
	if !reflect.DeepEqual(bodies, wantBodies) {
		t.Errorf("bodies:\n%s\nwant:\n%s", strings.Join(bodies, "\n"), strings.Join(wantBodies, "\n"))
	}

	if _, err := c.KeyUsage(ctx, "key_1", -1); err == nil || !strings.Contains(err.Error(), "days must be positive") {
		t.Errorf("KeyUsage with negative days: %v", err)
	}
	if _, err := c.UpdateKey(ctx, " ", adminapi.UpdateKeyRequest{}); err == nil {
		t.Error("UpdateKey with an empty ref: want an error")
	}
	if _, err := c.KeyUsage(ctx, "", 1); err == nil {
		t.Error("KeyUsage with an empty ref: want an error")
	}
	if n := len(vs.requests()); n != len(want) {
		t.Errorf("%d requests, want %d: invalid calls must not reach the server", n, len(want))
	}
}

func TestGroupMethods(t *testing.T) {
	t.Parallel()
	tok := testToken(t)
	now := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	team := adminapi.Group{Name: "team-a", Limits: adminapi.Limits{RPM: 600}, Keys: 2, CreatedAt: now}
	var vs vaultServer
	srv := vs.start(t, tok, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost:
			writeJSON(w, 201, team)
		case r.Method == http.MethodGet && r.URL.Path == "/api/v1/groups":
			writeJSON(w, 200, adminapi.GroupList{Groups: []adminapi.Group{team}})
		case r.Method == http.MethodGet, r.Method == http.MethodPatch:
			writeJSON(w, 200, team)
		case r.Method == http.MethodDelete:
			writeJSON(w, 409, adminapi.ErrorBody{Error: adminapi.ErrorDetail{Code: "conflict", Message: "group team-a still has 2 keys"}})
		}
	})
	c := newClient(t, srv.URL, tok)
	ctx := context.Background()

	g, err := c.CreateGroup(ctx, adminapi.GroupRequest{Name: "team-a", Limits: adminapi.Limits{RPM: 600}})
	if err != nil || !reflect.DeepEqual(g, team) {
		t.Fatalf("CreateGroup = %+v, %v", g, err)
	}
	gs, err := c.ListGroups(ctx)
	if err != nil || len(gs) != 1 || gs[0].Keys != 2 {
		t.Fatalf("ListGroups = %+v, %v", gs, err)
	}
	if g, err := c.GetGroup(ctx, "team-a"); err != nil || g.Name != "team-a" {
		t.Fatalf("GetGroup = %+v, %v", g, err)
	}
	if _, err := c.UpdateGroup(ctx, "team-a", adminapi.Limits{}); err != nil {
		t.Fatal(err)
	}
	err = c.DeleteGroup(ctx, "team-a")
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 409 || apiErr.Code != "conflict" {
		t.Fatalf("DeleteGroup = %v", err)
	}
	want := []string{
		"POST /api/v1/groups", "GET /api/v1/groups", "GET /api/v1/groups/team-a",
		"PATCH /api/v1/groups/team-a", "DELETE /api/v1/groups/team-a",
	}
	if got := vs.requests(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	vs.mu.Lock()
	bodies := append([]string{}, vs.bodies...)
	vs.mu.Unlock()
	if bodies[0] != `{"name":"team-a","limits":{"rpm":600}}` || bodies[3] != `{"limits":{}}` {
		t.Errorf("create body %s, update body %s", bodies[0], bodies[3])
	}

	for _, call := range []func() error{
		func() error { _, err := c.CreateGroup(ctx, adminapi.GroupRequest{Name: " "}); return err },
		func() error { _, err := c.GetGroup(ctx, ""); return err },
		func() error { _, err := c.UpdateGroup(ctx, "", adminapi.Limits{}); return err },
		func() error { return c.DeleteGroup(ctx, "") },
	} {
		if err := call(); err == nil || !strings.Contains(err.Error(), "group name is empty") {
			t.Errorf("empty group name: %v", err)
		}
	}
	if n := len(vs.requests()); n != len(want) {
		t.Errorf("%d requests, want %d: invalid calls must not reach the server", n, len(want))
	}
}
