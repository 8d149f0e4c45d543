package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/store"
)

// testWorkloadTokens: a workload identity token is exchanged once until it
// expires, across nodes racing for it, and an expired one is forgotten.
func testWorkloadTokens(t *testing.T, newURL func(testing.TB) string) {
	url := newURL(t)
	nodes := []*store.Store{Open(t, url), Open(t, url)}
	claim := func(s *store.Store, id string, expires, now time.Time) bool {
		t.Helper()
		ok, err := s.ClaimWorkloadToken(ctx(t), id, expires, now)
		must(t, err)
		return ok
	}
	if !claim(nodes[0], "jti:a", at(600*time.Second), at(0*time.Second)) {
		t.Fatal("a fresh token was refused")
	}
	if claim(nodes[1], "jti:a", at(600*time.Second), at(10*time.Second)) {
		t.Fatal("a token was exchanged twice, on two nodes")
	}
	if !claim(nodes[1], "jti:b", at(600*time.Second), at(10*time.Second)) {
		t.Fatal("another token was refused")
	}
	// Past its expiry the record is dropped (the token itself is refused
	// as expired by then).
	if !claim(nodes[0], "jti:a", at(1200*time.Second), at(601*time.Second)) {
		t.Fatal("an expired token's record was kept")
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := range 8 {
		wg.Go(func() {
			ok, err := nodes[i%2].ClaimWorkloadToken(ctx(t), "jti:race", at(900*time.Second), at(20*time.Second))
			if err != nil {
				t.Error(err)
				return
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
		t.Fatalf("%d racing exchanges of one token won, want 1", won)
	}
}
