package storetest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/store"
)

// testUsageBy holds UsageBy, which reads the usage rollups, to the sums of
// the rows written: by day, key and model, from every day of a window that
// crosses weeks and months, for every key or some of them.
//
// Two stores on one database write at once, days in any order, as two
// keygate nodes flushing usage do: the running totals a key's sums are
// read from must count every write once.
func testUsageBy(t *testing.T, newURL func(testing.TB) string) {
	url := newURL(t)
	s := Open(t, url)
	stores := []*store.Store{s, Open(t, url)}
	keys := []string{"key_a", "key_b", "key_c", "key_d", "key_e"}
	models := []string{"gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5"}
	first := time.Date(2026, 10, 20, 0, 0, 0, 0, time.UTC)
	batches := make([][]store.UsageRow, 2)
	var wg sync.WaitGroup
	for w, st := range stores {
		rnd := rand.New(rand.NewPCG(14, uint64(w)))
		wg.Go(func() {
			for range 12 {
				batch := make([]store.UsageRow, 0, 40)
				for range 40 {
					batch = append(batch, store.UsageRow{KeyID: keys[rnd.IntN(len(keys))], Model: models[rnd.IntN(len(models))],
						Day: first.AddDate(0, 0, rnd.IntN(60)).Format(time.DateOnly), Requests: rnd.Int64N(20), InputTokens: rnd.Int64N(1000),
						OutputTokens: rnd.Int64N(1000), MicroUSD: rnd.Int64N(100_000), Denials: rnd.Int64N(3)})
				}
				if err := st.AddUsage(ctx(t), batch); err != nil {
					t.Errorf("AddUsage from store %d: %v", w+1, err)
					return
				}
				batches[w] = append(batches[w], batch...)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	written := append(batches[0], batches[1]...)
	// One flush larger than a statement's share of rollup rows.
	var bulk []store.UsageRow
	for i := range 450 {
		bulk = append(bulk, store.UsageRow{KeyID: fmt.Sprintf("key_bulk_%03d", i%150), Model: models[i%len(models)],
			Day: first.AddDate(0, 0, i%45).Format(time.DateOnly), Requests: int64(i), MicroUSD: int64(7 * i), Denials: int64(i % 2)})
	}
	must(t, s.AddUsage(ctx(t), bulk))
	written = append(written, bulk...)
	if _, err := s.UsageBy(ctx(t), "team", "2026-11-01", nil); err == nil {
		t.Fatal("UsageBy accepted a grouping it does not know")
	}
	if got, err := s.UsageBy(ctx(t), "key", "2026-11-01", []string{}); err != nil || len(got) != 0 {
		t.Fatalf("UsageBy for no keys = %v, %v; want nothing", got, err)
	}
	for _, ids := range [][]string{nil, {"key_b", "key_d"}, {"key_e", "key_unknown"}} {
		for since := first.AddDate(0, 0, -2); since.Before(first.AddDate(0, 0, 62)); since = since.AddDate(0, 0, 1) {
			day := since.Format(time.DateOnly)
			for _, by := range []string{"day", "key", "model"} {
				got, err := s.UsageBy(ctx(t), by, day, ids)
				must(t, err)
				if want := sumUsage(written, by, day, ids); !slices.Equal(got, want) {
					t.Fatalf("UsageBy(%s, since %s, keys %v) =\n%v\nwant\n%v", by, day, ids, got, want)
				}
			}
		}
	}
}

// sumUsage is UsageBy done the long way, over the rows written.
func sumUsage(rows []store.UsageRow, by, since string, ids []string) []store.UsageTotal {
	sums := map[string]*store.UsageTotal{}
	for _, r := range rows {
		if r.Day < since || (ids != nil && !slices.Contains(ids, r.KeyID)) {
			continue
		}
		g := map[string]string{"day": r.Day, "key": r.KeyID, "model": r.Model}[by]
		if sums[g] == nil {
			sums[g] = &store.UsageTotal{Group: g}
		}
		sums[g].Requests += r.Requests
		sums[g].Denials += r.Denials
		sums[g].MicroUSD += r.MicroUSD
	}
	out := []store.UsageTotal{}
	for _, u := range sums {
		out = append(out, *u)
	}
	slices.SortFunc(out, func(x, y store.UsageTotal) int { return strings.Compare(x.Group, y.Group) })
	return out
}
