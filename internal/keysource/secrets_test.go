package keysource

import (
	"context"
	"slices"
	"testing"
	"time"
)

// TestSecretGrants: a key's principal carries the secrets the
// configuration grants its id, by key and by token alike; other keys none.
func TestSecretGrants(t *testing.T) {
	ctx, now := context.Background(), time.Now()
	h := testHasher(t)
	m := newMemKeys()
	reader := issue(t, h, m, "key_reader", nil)
	other := issue(t, h, m, "key_other", nil)
	grants := map[string][]string{"key_reader": {"ci/*"}}
	v := New(h, m, WithSecretGrants(func(id string) []string { return grants[id] }))
	p, err := v.Verify(ctx, reader, now)
	if err != nil || !slices.Equal(p.Grant.Secrets, []string{"ci/*"}) {
		t.Fatalf("reader: %+v, %v", p, err)
	}
	if p, err := v.ByID(ctx, "key_reader", now); err != nil || !slices.Equal(p.Grant.Secrets, []string{"ci/*"}) {
		t.Fatalf("reader by id: %+v, %v", p, err)
	}
	if p, err := v.Verify(ctx, other, now); err != nil || len(p.Grant.Secrets) != 0 {
		t.Fatalf("other: %+v, %v", p, err)
	}
	if p, err := New(h, m).Verify(ctx, reader, now); err != nil || len(p.Grant.Secrets) != 0 {
		t.Fatalf("without grants: %+v, %v", p, err)
	}
}
