package storetest

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
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

// testUsageFromManyNodes: nodes sharing a database write their batches
// (usage rows, keys' last use, keys' risk histories) at the same moment,
// for the same keys, in whatever order each gathered them; every batch is
// written (none fails on a deadlock, which would hold the node's usage
// back until a later flush, or lose it to a kill) and the totals are exact.
func testUsageFromManyNodes(t *testing.T, newURL func(testing.TB) string) {
	url := newURL(t)
	const nodes, keys = 4, 40
	// PostgreSQL locks rows, so writers in different orders can deadlock:
	// enough rounds make that show. SQLite serializes writers (no deadlock
	// is possible) and each waits its turn within busy_timeout, which a
	// long queue of large batches under the race detector can exceed: a
	// few rounds show the totals exact.
	rounds := int64(15)
	if !strings.HasPrefix(url, "postgres") {
		rounds = 4
	}
	stores := make([]*store.Store, nodes)
	for i := range stores {
		stores[i] = Open(t, url)
	}
	for k := range keys {
		must(t, stores[0].CreateKey(ctx(t), bareKey(fmt.Sprintf("key_%02d", k), fmt.Sprintf("k%02d", k))))
	}
	var wg sync.WaitGroup
	errs := make(chan error, nodes*rounds)
	for i, s := range stores {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			for range rounds {
				rows := make([]store.UsageRow, keys)
				for k := range rows {
					rows[k] = store.UsageRow{KeyID: fmt.Sprintf("key_%02d", k), Day: "2026-12-01", Model: "gpt-4o", Requests: 1, MicroUSD: 10}
				}
				rng.Shuffle(len(rows), func(a, b int) { rows[a], rows[b] = rows[b], rows[a] })
				if err := s.AddUsage(ctx(t), rows); err != nil {
					errs <- err
				}
				uses := make([]store.KeyUse, keys)
				hs := make([]store.KeyHistory, keys)
				for j, r := range rows {
					uses[j] = store.KeyUse{ID: r.KeyID, At: at(time.Duration(rng.IntN(1000)) * time.Second)}
					hs[j] = store.KeyHistory{KeyID: r.KeyID, Data: []byte(`{}`), At: at(0)}
				}
				if err := s.TouchKeys(ctx(t), uses); err != nil {
					errs <- err
				}
				if err := s.SaveKeyHistories(ctx(t), hs); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a node's usage batch failed: %v", err)
	}
	for k := range keys {
		rows, err := stores[0].ListUsage(ctx(t), fmt.Sprintf("key_%02d", k), "2026-12-01")
		must(t, err)
		if len(rows) != 1 || rows[0].Requests != nodes*rounds || rows[0].MicroUSD != 10*nodes*rounds {
			t.Fatalf("key_%02d: usage %+v, want %d requests", k, rows, nodes*rounds)
		}
	}
}
