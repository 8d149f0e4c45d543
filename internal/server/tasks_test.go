package server

import (
	"context"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/token"
)

// TestEveryTaskRuns: every task in the node's table runs, and each one's
// work shows: a revocation recorded in the store (as another node would)
// reaches this node's key cache, a provider added to the store reaches
// routing, key groups, other nodes' token signing keys, last-used times,
// usage, risk histories, due key rotations and the janitor's pruning all
// land.
func TestEveryTaskRuns(t *testing.T) {
	for _, db := range databases {
		t.Run(db.name, func(t *testing.T) { testEveryTaskRuns(t, db.url(t)) })
	}
}

func testEveryTaskRuns(t *testing.T, dbURL string) {
	cfg := testConfig(filepath.Join(t.TempDir(), "data"), dbURL)
	tn := startNode(t, cfg, func(n *Node) {
		names := map[string]bool{}
		for _, tk := range n.runner.tasks {
			if tk.every <= 0 || tk.run == nil || names[tk.name] {
				t.Fatalf("task %q: every task needs a unique name, an interval and a function", tk.name)
			}
			names[tk.name] = true
		}
		for _, name := range []string{"detectors", "audit-lag", "last-used", "usage", "risk-histories"} {
			setEvery(t, n, name, 50*time.Millisecond)
		}
	})
	n := tn.Node
	ctx := context.Background()
	st := n.core.st
	upstream := fakeUpstream(t)

	t.Run("provider-table", func(t *testing.T) {
		_, key := addKey(t, n, "early", nil)
		if got := chat(t, n, key); got == http.StatusOK {
			t.Fatal("a call succeeded before any provider exists")
		}
		addProvider(t, n, "fake", upstream)
		waitFor(t, "the provider added to the store reaching routing", func() bool { return chat(t, n, key) == http.StatusOK })
	})

	id, key := addKey(t, n, "app", nil)
	if got := chat(t, n, key); got != http.StatusOK {
		t.Fatalf("a call with a new key: %d", got)
	}

	t.Run("last-used", func(t *testing.T) {
		waitFor(t, "the key's last use written", func() bool {
			k, err := st.GetKey(ctx, id)
			return err == nil && k.LastUsedAt != nil
		})
	})
	t.Run("usage", func(t *testing.T) {
		waitFor(t, "the key's usage written", func() bool {
			rows, err := st.ListUsage(ctx, id, "2000-01-01")
			return err == nil && len(rows) > 0
		})
	})
	t.Run("risk-histories", func(t *testing.T) {
		waitFor(t, "the key's risk history written", func() bool {
			h, err := st.LoadKeyHistory(ctx, id)
			return err == nil && len(h) > 0
		})
	})

	t.Run("revocations", func(t *testing.T) {
		// The key is cached for an hour (key_cache_ttl): only the
		// revocation log can end it sooner.
		now := time.Now().UTC()
		if _, err := st.RevokeKey(ctx, id, now); err != nil {
			t.Fatal(err)
		}
		if got := chat(t, n, key); got != http.StatusOK {
			t.Fatalf("the cached key was refused before its revocation was recorded: %d", got)
		}
		if _, err := st.AddRevocation(ctx, store.Revocation{Kind: token.RevokedKey, Subject: id, At: now, Until: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the revocation reaching the node", func() bool { return chat(t, n, key) == http.StatusUnauthorized })
	})

	t.Run("key-groups", func(t *testing.T) {
		if err := st.CreateGroup(ctx, store.Group{Name: "batch", Limits: []byte(`{"rpm":5}`), CreatedAt: time.Now().UTC()}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the group created in the store reaching the limits", func() bool {
			l, ok := n.lim.groups.limits("batch")
			return ok && strings.Contains(string(l), "rpm")
		})
	})

	t.Run("token-signing-keys", func(t *testing.T) {
		// Another node makes the successor of the current signing key.
		other, err := token.NewKeyring(st, n.core.vault, token.KeyringOptions{})
		if err != nil {
			t.Fatal(err)
		}
		before, err := st.ListSigningKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Rotate(ctx, time.Now().Add(token.DefaultRotateEvery)); err != nil {
			t.Fatal(err)
		}
		after, err := st.ListSigningKeys(ctx)
		if err != nil || len(after) != len(before)+1 {
			t.Fatalf("the other node made no successor: %d keys before, %d after (%v)", len(before), len(after), err)
		}
		kid := after[len(after)-1].KID
		waitFor(t, "the other node's signing key published by this one", func() bool {
			return strings.Contains(string(n.tok.ring.JWKS()), kid)
		})
	})

	t.Run("key-rotations", func(t *testing.T) {
		due := time.Now().UTC().Add(-time.Minute)
		rid, _ := addKey(t, n, "rotating", func(k *store.Key) {
			k.RotateEvery, k.RotateGrace, k.DeliverTo, k.NextRotationAt = time.Hour, time.Minute, "secret:rotating-app-key", &due
		})
		waitFor(t, "the due key rotated", func() bool {
			keys, err := st.ListKeys(ctx)
			return err == nil && slices.ContainsFunc(keys, func(k store.Key) bool { return k.RotatedFrom == rid })
		})
	})

	t.Run("janitor", func(t *testing.T) {
		past := time.Now().UTC().Add(-2 * time.Hour)
		seq, err := st.AddRevocation(ctx, store.Revocation{Kind: token.RevokedFamily, Subject: "fam_expired", At: past, Until: past.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the expired revocation pruned", func() bool {
			revs, err := st.RevocationsSince(ctx, seq-1)
			return err == nil && !slices.ContainsFunc(revs, func(r store.Revocation) bool { return r.Seq == seq })
		})
	})

	// The rest show only in the node's own state; each has run.
	waitFor(t, "every task running at least twice", func() bool {
		for _, tk := range n.runner.tasks {
			// On PostgreSQL the change listener holds its connection for the node's life.
			if tk.name == "change-notifications" {
				continue
			}
			if taskRuns(n, tk.name) < 2 {
				return false
			}
		}
		return true
	})
	for _, tk := range n.runner.tasks {
		if i := slices.IndexFunc(n.runner.tasks, func(x task) bool { return x.name == tk.name }); n.runner.stats[i].panics.Load() != 0 {
			t.Errorf("task %s panicked", tk.name)
		}
	}
}

// TestKEKRotationOnAnotherNodeIsFollowed: a key-encryption key rotation
// started through another node becomes this node's current KEK within
// provider_refresh, by the kek-follow task.
func TestKEKRotationOnAnotherNodeIsFollowed(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(filepath.Join(dir, "data"), "")
	tn := startNode(t, cfg, nil)
	ctx := context.Background()

	other, err := openCore(ctx, ctx, cfg, slog.New(slog.DiscardHandler), false, applyOptions(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { other.rot.Wait(); other.close() }()
	url := "file://" + filepath.Join(dir, "next.key")
	kek, err := other.openKEK(ctx, url, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.rot.Start(ctx, kek, secret.New(url), 0, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "this node following the rotation", func() bool { return tn.core.vault.KEKID() == kek.ID() })
	if err := tn.shutdown(); err != nil {
		t.Fatal(err)
	}
}

// TestPanickingTaskIsLoggedAndRunsAgain: a task whose run panics is logged
// with its name and where it panicked, never the panic's value, and runs
// again; the other tasks go on meanwhile.
func TestPanickingTaskIsLoggedAndRunsAgain(t *testing.T) {
	var logs syncBuffer
	var flaky, steady atomic.Int64
	r := newTaskRunner([]task{
		{name: "flaky", every: 10 * time.Millisecond, run: func(context.Context) {
			if flaky.Add(1) == 1 {
				panic("value-that-could-be-a-secret")
			}
		}},
		{name: "steady", every: 10 * time.Millisecond, run: func(context.Context) { steady.Add(1) }},
	}, slog.New(slog.NewTextHandler(&logs, nil)))
	r.start()
	waitFor(t, "the panicking task running again", func() bool { return flaky.Load() >= 2 })
	steadyDuring := steady.Load()
	r.stop(context.Background())
	if steadyDuring < 10 {
		t.Errorf("the other task ran %d times while the first waited to run again", steadyDuring)
	}
	out := logs.String()
	for _, want := range []string{"a background task panicked", "task=flaky", "panic_type=string", "tasks_test.go"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "value-that-could-be-a-secret") {
		t.Fatalf("the log holds the panic's value:\n%s", out)
	}
	if got := r.stats[0].panics.Load(); got != 1 {
		t.Fatalf("panics counted: %d", got)
	}
}

// TestFinalTasksRunOnceMoreAtStop: stopping the runner ends every task,
// then runs the final ones once more with a live context, even when the
// runner never started (a node built and shut down without serving).
func TestFinalTasksRunOnceMoreAtStop(t *testing.T) {
	for _, started := range []bool{true, false} {
		var flushes, others atomic.Int64
		var liveCtx atomic.Bool
		r := newTaskRunner([]task{
			{name: "flush", every: time.Hour, final: true, run: func(ctx context.Context) {
				flushes.Add(1)
				liveCtx.Store(ctx.Err() == nil)
			}},
			{name: "other", every: time.Hour, run: func(context.Context) { others.Add(1) }},
		}, slog.New(slog.DiscardHandler))
		if started {
			r.start()
		}
		r.stop(context.Background())
		if flushes.Load() != 1 || !liveCtx.Load() || others.Load() != 0 {
			t.Fatalf("started=%v: final runs %d (live context %v), other runs %d; want 1, true, 0",
				started, flushes.Load(), liveCtx.Load(), others.Load())
		}
	}
}

// TestRevocationNotHeldUpByAStalledReload: while a reload of the change
// follower stalls (as one did behind a KMS answering 10 s late, in the
// chaos suite's slow-KEK fault), a key revoked by another node is still
// refused here within a second: the revocation log is followed by a task
// of its own.
func TestRevocationNotHeldUpByAStalledReload(t *testing.T) {
	cfg := testConfig(filepath.Join(t.TempDir(), "data"), "")
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	var stall atomic.Bool
	tn := startNode(t, cfg, func(n *Node) {
		for i := range n.runner.tasks {
			if n.runner.tasks[i].name == "changes" {
				reload := n.runner.tasks[i].run
				n.runner.tasks[i].run = func(ctx context.Context) {
					if stall.Load() {
						select {
						case <-release:
						case <-ctx.Done():
						}
					}
					reload(ctx)
				}
			}
		}
	})
	n := tn.Node
	addProvider(t, n, "fake", fakeUpstream(t))
	id, key := addKey(t, n, "soon-revoked", nil)
	waitFor(t, "the key served", func() bool { return chat(t, n, key) == http.StatusOK })
	stall.Store(true)
	time.Sleep(2 * changePoll) // the change follower is now stuck in a reload
	// Another node revokes it: the store and the revocation log.
	ctx := context.Background()
	now := time.Now().UTC()
	if _, err := n.core.st.RevokeKey(ctx, id, now); err != nil {
		t.Fatal(err)
	}
	if _, err := n.core.st.AddRevocation(ctx, store.Revocation{Kind: "key", Subject: id, At: now, Until: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for chat(t, n, key) != http.StatusUnauthorized {
		if time.Since(start) > time.Second {
			t.Fatal("a key revoked by another node was still served after a second while a reload stalled")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
