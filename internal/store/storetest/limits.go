package storetest

import (
	"testing"
	"time"

	"github.com/keygate/keygate/internal/store"
)

func testKeyLimitsAndGroups(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	k := fullKey("key_1", "ci")
	k.Limits = []byte(`{"rpm":60}`)
	must(t, s.CreateKey(ctx(t), k))
	got, err := s.GetKey(ctx(t), "key_1")
	must(t, err)
	if string(got.Limits) != `{"rpm":60}` || got.Group != "" {
		t.Fatalf("limits %q group %q", got.Limits, got.Group)
	}
	got, err = s.UpdateKeyLimits(ctx(t), "key_1", []byte(`{"tpm":1000}`))
	must(t, err)
	if string(got.Limits) != `{"tpm":1000}` {
		t.Fatalf("updated limits %q", got.Limits)
	}
	got, err = s.UpdateKeyLimits(ctx(t), "key_1", nil)
	must(t, err)
	if got.Limits != nil {
		t.Fatalf("cleared limits read back as %q, want nil", got.Limits)
	}
	_, err = s.UpdateKeyLimits(ctx(t), "key_x", nil)
	wantErr(t, err, store.ErrNotFound, "UpdateKeyLimits of an unknown key")

	_, err = s.SetKeyGroup(ctx(t), "key_1", "team-a")
	wantErr(t, err, store.ErrNoSuchGroup, "SetKeyGroup to an unknown group")
	must(t, s.CreateGroup(ctx(t), store.Group{Name: "team-a", Limits: []byte(`{"budgets":[{"micro_usd":5,"period":"day"}]}`), CreatedAt: at(0)}))
	wantErr(t, s.CreateGroup(ctx(t), store.Group{Name: "team-a", CreatedAt: at(0)}), store.ErrConflict, "CreateGroup of a taken name")
	got, err = s.SetKeyGroup(ctx(t), "key_1", "team-a")
	must(t, err)
	if got.Group != "team-a" {
		t.Fatalf("group %q", got.Group)
	}
	_, err = s.SetKeyGroup(ctx(t), "key_x", "team-a")
	wantErr(t, err, store.ErrNotFound, "SetKeyGroup of an unknown key")

	g, err := s.GetGroup(ctx(t), "team-a")
	must(t, err)
	if g.Keys != 1 || string(g.Limits) != `{"budgets":[{"micro_usd":5,"period":"day"}]}` {
		t.Fatalf("group %+v", g)
	}
	checkTime(t, "CreatedAt", g.CreatedAt, at(0))
	wantErr(t, s.DeleteGroup(ctx(t), "team-a"), store.ErrGroupInUse, "DeleteGroup with keys in it")
	must(t, s.UpdateGroupLimits(ctx(t), "team-a", []byte(`{"rps":1}`)))
	wantErr(t, s.UpdateGroupLimits(ctx(t), "team-b", nil), store.ErrNotFound, "UpdateGroupLimits of an unknown group")
	must(t, s.CreateGroup(ctx(t), store.Group{Name: "empty", CreatedAt: at(time.Minute)}))
	gs, err := s.ListGroups(ctx(t))
	must(t, err)
	if len(gs) != 2 || gs[0].Name != "empty" || gs[0].Keys != 0 || gs[0].Limits != nil || string(gs[1].Limits) != `{"rps":1}` {
		t.Fatalf("groups %+v", gs)
	}

	got, err = s.SetKeyGroup(ctx(t), "key_1", "")
	must(t, err)
	if got.Group != "" {
		t.Fatalf("group after leaving: %q", got.Group)
	}
	must(t, s.DeleteGroup(ctx(t), "team-a"))
	wantErr(t, s.DeleteGroup(ctx(t), "team-a"), store.ErrNotFound, "second DeleteGroup")
}

func testUsage(t *testing.T, newURL func(testing.TB) string) {
	s := Open(t, newURL(t))
	must(t, s.AddUsage(ctx(t), []store.UsageRow{
		{KeyID: "key_1", Day: "2026-11-30", Model: "gpt-4o", Requests: 2, InputTokens: 10, OutputTokens: 20, MicroUSD: 300},
		{KeyID: "key_1", Day: "2026-12-01", Model: "gpt-4o", Requests: 1, InputTokens: 5, OutputTokens: 6, MicroUSD: 70},
		{KeyID: "key_2", Day: "2026-12-01", Model: "gpt-4o", Requests: 9},
	}))
	// Rows add up.
	must(t, s.AddUsage(ctx(t), []store.UsageRow{
		{KeyID: "key_1", Day: "2026-12-01", Model: "gpt-4o", Requests: 1, InputTokens: 1, OutputTokens: 1, MicroUSD: 1, Denials: 3},
		{KeyID: "key_1", Day: "2026-12-01", Model: "claude-sonnet-4-5", Denials: 1},
	}))
	must(t, s.AddUsage(ctx(t), nil))
	rows, err := s.ListUsage(ctx(t), "key_1", "2026-12-01")
	must(t, err)
	want := []store.UsageRow{
		{KeyID: "key_1", Day: "2026-12-01", Model: "claude-sonnet-4-5", Denials: 1},
		{KeyID: "key_1", Day: "2026-12-01", Model: "gpt-4o", Requests: 2, InputTokens: 6, OutputTokens: 7, MicroUSD: 71, Denials: 3},
	}
	if len(rows) != 2 || rows[0] != want[0] || rows[1] != want[1] {
		t.Fatalf("usage = %+v, want %+v", rows, want)
	}
	rows, err = s.ListUsage(ctx(t), "key_1", "2026-01-01")
	must(t, err)
	if len(rows) != 3 || rows[2].Day != "2026-11-30" {
		t.Fatalf("usage since January: %+v", rows)
	}
	if rows, _ := s.ListUsage(ctx(t), "key_3", "2026-01-01"); len(rows) != 0 {
		t.Fatalf("usage of an unknown key: %+v", rows)
	}
}
