package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/store"
)

// testRoutingEntries: routing entries are created, read, replaced and
// removed all or nothing; every change moves the routing generation, which
// another process sharing the database sees; a change planned against an
// old generation changes nothing.
func testRoutingEntries(t *testing.T, newURL func(testing.TB) string) {
	url := newURL(t)
	a, b := Open(t, url), Open(t, url)
	gen := func(s *store.Store) int64 {
		t.Helper()
		g, err := s.RoutingGeneration(ctx(t))
		must(t, err)
		return g
	}
	if g := gen(a); g != 0 {
		t.Fatalf("a new database is at routing generation %d, want 0", g)
	}
	entry := func(kind, name, spec string, when time.Duration) store.RoutingEntry {
		return store.RoutingEntry{Kind: kind, Name: name, Spec: []byte(spec), CreatedAt: at(when), UpdatedAt: at(when), UpdatedBy: "usr_1"}
	}
	dep := entry(store.RoutingDeployment, "gpt-fast", `{"provider":"openai","model":"gpt-4o-mini"}`, 0)
	ali := entry(store.RoutingAlias, "fast", `{"deployments":["gpt-fast"]}`, 0)
	svc := entry(store.RoutingService, "stripe", `{"base_url":"https://api.stripe.com","secret":"stripe"}`, 0)
	g, err := a.ApplyRoutingChanges(ctx(t), 0, []store.RoutingChange{{Op: store.RoutingCreate, Entry: dep}, {Op: store.RoutingCreate, Entry: ali}, {Op: store.RoutingCreate, Entry: svc}})
	must(t, err)
	if g != 1 || gen(b) != 1 {
		t.Fatalf("after one change: generation %d (other process %d), want 1", g, gen(b))
	}
	got, g, err := b.ListRoutingEntries(ctx(t))
	must(t, err)
	if g != 1 || len(got) != 3 {
		t.Fatalf("list: %d entries at generation %d, want 3 at 1", len(got), g)
	}
	// Ordered by kind, then name.
	if got[0].Kind != store.RoutingAlias || got[1].Kind != store.RoutingDeployment || got[2].Kind != store.RoutingService {
		t.Fatalf("list order: %s, %s, %s", got[0].Kind, got[1].Kind, got[2].Kind)
	}
	one, err := b.GetRoutingEntry(ctx(t), store.RoutingDeployment, "gpt-fast")
	must(t, err)
	if string(one.Spec) != string(dep.Spec) || !one.CreatedAt.Equal(stored(at(0))) || one.UpdatedBy != "usr_1" || one.Name != "gpt-fast" {
		t.Fatalf("round trip: %+v", one)
	}
	// The same name under another kind is another entry.
	if _, err := b.GetRoutingEntry(ctx(t), store.RoutingAlias, "gpt-fast"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get of a missing entry: %v, want ErrNotFound", err)
	}

	// A change planned against generation 0 lands on nothing.
	upd := entry(store.RoutingDeployment, "gpt-fast", `{"provider":"openai","model":"gpt-4.1-mini"}`, time.Hour)
	upd.UpdatedBy = "usr_2"
	if _, err := b.ApplyRoutingChanges(ctx(t), 0, []store.RoutingChange{{Op: store.RoutingUpdate, Entry: upd}}); !errors.Is(err, store.ErrStale) {
		t.Fatalf("stale change: %v, want ErrStale", err)
	}
	if _, err := b.ApplyRoutingChanges(ctx(t), 0, nil); !errors.Is(err, store.ErrStale) {
		t.Fatalf("stale empty change: %v, want ErrStale", err)
	}
	if g, err := b.ApplyRoutingChanges(ctx(t), 1, nil); err != nil || g != 1 {
		t.Fatalf("empty change: generation %d, %v; want 1 and no change", g, err)
	}

	// All or nothing: the update is undone when a later change fails.
	_, err = b.ApplyRoutingChanges(ctx(t), 1, []store.RoutingChange{
		{Op: store.RoutingUpdate, Entry: upd},
		{Op: store.RoutingCreate, Entry: svc},
	})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("create of an existing entry: %v, want ErrConflict", err)
	}
	_, err = b.ApplyRoutingChanges(ctx(t), 1, []store.RoutingChange{{Op: store.RoutingDelete, Entry: entry(store.RoutingService, "github", "{}", 0)}})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete of a missing entry: %v, want ErrNotFound", err)
	}
	_, err = b.ApplyRoutingChanges(ctx(t), 1, []store.RoutingChange{{Op: store.RoutingUpdate, Entry: entry(store.RoutingAlias, "slow", "{}", 0)}})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update of a missing entry: %v, want ErrNotFound", err)
	}
	if gen(a) != 1 {
		t.Fatalf("failed changes moved the generation to %d", gen(a))
	}
	if one, _ := a.GetRoutingEntry(ctx(t), store.RoutingDeployment, "gpt-fast"); string(one.Spec) != string(dep.Spec) {
		t.Fatalf("a failed change left the update in place: %s", one.Spec)
	}

	g, err = b.ApplyRoutingChanges(ctx(t), 1, []store.RoutingChange{{Op: store.RoutingUpdate, Entry: upd}, {Op: store.RoutingDelete, Entry: svc}})
	must(t, err)
	if g != 2 {
		t.Fatalf("generation %d after the second change, want 2", g)
	}
	one, err = a.GetRoutingEntry(ctx(t), store.RoutingDeployment, "gpt-fast")
	must(t, err)
	if string(one.Spec) != string(upd.Spec) || !one.UpdatedAt.Equal(stored(at(time.Hour))) || !one.CreatedAt.Equal(stored(at(0))) || one.UpdatedBy != "usr_2" {
		t.Fatalf("after update: %+v", one)
	}
	if _, err := a.GetRoutingEntry(ctx(t), store.RoutingService, "stripe"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted entry: %v, want ErrNotFound", err)
	}

	// Writers racing from one generation: exactly one lands.
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := range 6 {
		wg.Go(func() {
			s := []*store.Store{a, b}[i%2]
			e := entry(store.RoutingAlias, "race-"+string(rune('a'+i)), `{"deployments":["gpt-fast"]}`, 0)
			_, err := s.ApplyRoutingChanges(ctx(t), 2, []store.RoutingChange{{Op: store.RoutingCreate, Entry: e}})
			switch {
			case err == nil:
				mu.Lock()
				won++
				mu.Unlock()
			case !errors.Is(err, store.ErrStale):
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if won != 1 || gen(a) != 3 {
		t.Fatalf("%d racing changes landed (generation %d), want 1 (3)", won, gen(a))
	}
}
