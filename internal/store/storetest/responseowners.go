package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/store"
)

// testResponseOwners: a response's owner, recorded on one node, is read on
// another; the first owner of an id stays; deleted
// and pruned ids are forgotten.
func testResponseOwners(t *testing.T, newURL func(testing.TB) string) {
	url := newURL(t)
	a, b := Open(t, url), Open(t, url)
	must(t, a.PutResponseOwner(ctx(t), store.ResponseOwner{ID: "resp_1", KeyID: "key_alice", Provider: "openai", Model: "gpt-4o-mini", Created: at(0)}))
	must(t, b.PutResponseOwner(ctx(t), store.ResponseOwner{ID: "resp_1", KeyID: "key_mallory", Provider: "openai", Model: "gpt-4o", Created: at(time.Second)}))
	must(t, a.PutResponseOwner(ctx(t), store.ResponseOwner{ID: "resp_2", KeyID: "key_bob", Provider: "azure", Model: "gpt-4o", Created: at(time.Hour)}))
	got, err := b.GetResponseOwner(ctx(t), "resp_1")
	must(t, err)
	if got.KeyID != "key_alice" || got.Provider != "openai" || got.Model != "gpt-4o-mini" || !got.Created.Equal(at(0).Truncate(time.Microsecond)) {
		t.Fatalf("resp_1: %+v", got)
	}
	if _, err := a.GetResponseOwner(ctx(t), "resp_none"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an unknown id: %v", err)
	}
	c := Open(t, url) // a third process
	must(t, c.DeleteResponseOwner(ctx(t), "resp_1"))
	must(t, c.DeleteResponseOwner(ctx(t), "resp_1"))
	if _, err := b.GetResponseOwner(ctx(t), "resp_1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a deleted id: %v", err)
	}
	must(t, c.PutResponseOwner(ctx(t), store.ResponseOwner{ID: "resp_3", KeyID: "key_bob", Provider: "openai", Model: "gpt-4o", Created: at(3 * time.Hour)}))
	n, err := b.PruneResponseOwners(ctx(t), at(2*time.Hour))
	must(t, err)
	if n != 1 {
		t.Fatalf("pruned %d, want 1", n)
	}
	if _, err := c.GetResponseOwner(ctx(t), "resp_2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a pruned id: %v", err)
	}
	if o, err := c.GetResponseOwner(ctx(t), "resp_3"); err != nil || o.KeyID != "key_bob" {
		t.Fatalf("resp_3 after pruning: %v %+v", err, o)
	}
}
