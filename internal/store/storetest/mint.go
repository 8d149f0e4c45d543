package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/store"
)

// testMintLeases: of two nodes, one holds a minted provider's lease at a
// time; a released lease is free at once, one that ran out is free to
// another node; scheduled work is claimed only when due.
func testMintLeases(t *testing.T, newURL func(testing.TB) string) {
	url := newURL(t)
	nodes := []*store.Store{Open(t, url), Open(t, url)}
	claim := func(s *store.Store, now, until time.Time, dueOnly bool) bool {
		t.Helper()
		ok, err := s.ClaimMint(ctx(t), "openai", now, until, dueOnly)
		must(t, err)
		return ok
	}
	if !claim(nodes[0], at(0), at(60*time.Second), true) {
		t.Fatal("a provider never claimed is due at once")
	}
	if claim(nodes[1], at(10*time.Second), at(70*time.Second), false) {
		t.Fatal("two nodes held one lease")
	}
	must(t, nodes[0].ReleaseMint(ctx(t), "openai", at(60*time.Second), at(300*time.Second)))
	if claim(nodes[1], at(20*time.Second), at(80*time.Second), true) {
		t.Fatal("scheduled work was claimed before it was due")
	}
	if !claim(nodes[1], at(20*time.Second), at(80*time.Second), false) {
		t.Fatal("a released lease could not be taken for work out of schedule")
	}
	// Node 1 dies holding it: once it runs out, node 0 takes it, and node
	// 1's late release does not free node 0's lease.
	if claim(nodes[0], at(79*time.Second), at(140*time.Second), false) {
		t.Fatal("a lease was taken before it ran out")
	}
	if !claim(nodes[0], at(80*time.Second), at(140*time.Second), false) {
		t.Fatal("a lease that ran out stayed held")
	}
	must(t, nodes[1].ReleaseMint(ctx(t), "openai", at(80*time.Second), at(90*time.Second)))
	if claim(nodes[1], at(100*time.Second), at(160*time.Second), false) {
		t.Fatal("a node released a lease it no longer held")
	}
	must(t, nodes[0].ReleaseMint(ctx(t), "openai", at(140*time.Second), at(300*time.Second)))
	if !claim(nodes[1], at(300*time.Second), at(360*time.Second), true) {
		t.Fatal("scheduled work was not claimed once due")
	}
	must(t, nodes[1].ReleaseMint(ctx(t), "openai", at(360*time.Second), at(900*time.Second)))

	// Racing nodes: exactly one wins.
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := range 8 {
		wg.Go(func() {
			ok, err := nodes[i%2].ClaimMint(ctx(t), "openai", at(1000*time.Second), at(1060*time.Second), true)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				won++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if won != 1 {
		t.Fatalf("%d racing claims won; want 1", won)
	}
	must(t, nodes[0].ForgetMint(ctx(t), "openai"))
	if !claim(nodes[0], at(1001*time.Second), at(1061*time.Second), true) {
		t.Fatal("a forgotten provider is claimed afresh")
	}
}
