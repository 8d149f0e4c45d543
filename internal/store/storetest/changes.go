package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/store/pgnotify"
)

// testChanges checks that every write to what nodes cache moves its topic's
// generation, seen by a second Store on the same database, that a write
// rolled back moves nothing, and that PostgreSQL pushes the topic to a
// listener while SQLite says it cannot.
func testChanges(t *testing.T, newURL func(testing.TB) string) {
	url := newURL(t)
	a, b := Open(t, url), Open(t, url)

	notified := make(chan string, 64)
	listening := make(chan error, 1)
	lctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- pgnotify.Listen(lctx, b, func() { listening <- nil }, func(topic string) { notified <- topic })
	}()
	t.Cleanup(func() {
		stop()
		<-done
	})
	push := a.Dialect() == store.Postgres
	if push {
		select {
		case <-listening:
		case err := <-done:
			t.Fatalf("Listen on PostgreSQL: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("Listen on PostgreSQL never became ready")
		}
	} else {
		err := <-done
		done <- err // for the cleanup
		if !errors.Is(err, store.ErrListenUnsupported) {
			t.Fatalf("Listen on SQLite = %v, want ErrListenUnsupported", err)
		}
	}

	before, err := b.ChangeGenerations(ctx(t))
	must(t, err)
	for _, topic := range []string{store.TopicProviders, store.TopicKeyGroups, store.TopicSigningKeys, store.TopicKEKs, store.TopicRevocations, store.TopicSecrets, store.TopicMCPServers} {
		if _, ok := before[topic]; !ok {
			t.Fatalf("topic %q missing from %v", topic, before)
		}
	}

	// A transaction that fails changes no generation.
	boom := errors.New("boom")
	err = a.InTx(ctx(t), func(tx *store.Store) error {
		must(t, tx.CreateGroup(ctx(t), store.Group{Name: "rolled-back", CreatedAt: at(0)}))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx = %v", err)
	}
	if g, _ := b.ChangeGenerations(ctx(t)); g[store.TopicKeyGroups] != before[store.TopicKeyGroups] {
		t.Fatalf("a rolled-back write moved key_groups: %d -> %d", before[store.TopicKeyGroups], g[store.TopicKeyGroups])
	}

	writes := []struct {
		topic string
		write func() error
	}{
		{store.TopicProviders, func() error { return a.CreateProvider(ctx(t), fullProvider("prv_chg", "openai")) }},
		{store.TopicProviders, func() error { return a.DeleteProvider(ctx(t), "openai") }},
		{store.TopicKeyGroups, func() error { return a.CreateGroup(ctx(t), store.Group{Name: "team-c", CreatedAt: at(0)}) }},
		{store.TopicKeyGroups, func() error { return a.UpdateGroupLimits(ctx(t), "team-c", []byte(`{}`)) }},
		{store.TopicRevocations, func() error {
			_, err := a.AddRevocation(ctx(t), store.Revocation{Kind: "key", Subject: "key_chg", At: at(0), Until: at(time.Hour)})
			return err
		}},
	}
	prev := before
	for i, w := range writes {
		must(t, w.write())
		now, err := b.ChangeGenerations(ctx(t))
		must(t, err)
		if now[w.topic] <= prev[w.topic] {
			t.Fatalf("write %d: %s generation %d -> %d, want it to move", i, w.topic, prev[w.topic], now[w.topic])
		}
		for topic, gen := range now {
			if topic != w.topic && gen != prev[topic] {
				t.Fatalf("write %d to %s also moved %s", i, w.topic, topic)
			}
		}
		prev = now
		if push {
			select {
			case got := <-notified:
				if got != w.topic {
					t.Fatalf("write %d: notified %q, want %q", i, got, w.topic)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("write %d to %s: no notification", i, w.topic)
			}
		}
	}
}
