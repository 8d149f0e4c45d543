package lastused

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/store/storetest"
)

func TestRecordsLatestUseAndFlushesOnStop(t *testing.T) {
	ctx := context.Background()
	st := storetest.Open(t, storetest.SQLiteURL(t))
	now := time.Now().UTC().Truncate(time.Microsecond)
	for _, id := range []string{"key_a", "key_b"} {
		h := []byte(id + "-hash-0123456789012345678901234")
		if err := st.CreateKey(ctx, store.Key{ID: id, Name: id, Env: "live", Prefix: "kg_live_x", Hash: h, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	r := New(st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() { r.Seen("key_a", now.Add(time.Duration(i)*time.Second)) })
	}
	wg.Wait()
	r.Seen("key_a", now.Add(49*time.Second)) // the latest use is the one written
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { r.Run(runCtx, time.Hour); close(done) }()
	stop()
	<-done
	a, _ := st.GetKey(ctx, "key_a")
	b, _ := st.GetKey(ctx, "key_b")
	if a.LastUsedAt == nil || !a.LastUsedAt.Equal(now.Add(49*time.Second)) {
		t.Fatalf("key_a last used %v", a.LastUsedAt)
	}
	if b.LastUsedAt != nil {
		t.Fatalf("key_b was never used, got %v", b.LastUsedAt)
	}
	// Nothing new: a second flush writes nothing and keeps the time.
	r.Flush(ctx)
	if a2, _ := st.GetKey(ctx, "key_a"); !a2.LastUsedAt.Equal(*a.LastUsedAt) {
		t.Fatal("flush without new use changed last_used_at")
	}
}

// TestDropsKeysUnusedSinceTheLastFlush: a flush that finds a key unused
// since the flush before forgets it; the key's next use is recorded and
// written like a first one.
func TestDropsKeysUnusedSinceTheLastFlush(t *testing.T) {
	ctx := context.Background()
	st := storetest.Open(t, storetest.SQLiteURL(t))
	now := time.Now().UTC().Truncate(time.Microsecond)
	if err := st.CreateKey(ctx, store.Key{ID: "key_a", Name: "a", Env: "live", Prefix: "kg_live_x", Hash: []byte("key_a-hash-0123456789012345678901234"), CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	r := New(st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	held := func() (n int) {
		r.m.Range(func(any, any) bool { n++; return true })
		return n
	}
	r.Seen("key_a", now)
	r.Flush(ctx) // written
	if held() != 1 {
		t.Fatalf("a key used since the last flush was dropped (%d held)", held())
	}
	r.Flush(ctx) // unused since: dropped
	if held() != 0 {
		t.Fatalf("a key unused since the last flush is still held (%d held)", held())
	}
	r.Seen("key_a", now.Add(time.Minute))
	r.Flush(ctx)
	if a, _ := st.GetKey(ctx, "key_a"); a.LastUsedAt == nil || !a.LastUsedAt.Equal(now.Add(time.Minute)) {
		t.Fatalf("the use after the drop was not written: %v", a.LastUsedAt)
	}

	// A use racing a flush that drops its entry is kept, in a fresh entry.
	r.Flush(ctx)
	v, _ := r.m.Load("key_a")
	if v != nil {
		t.Fatal("not dropped")
	}
	r.m.Store("key_a", func() any { a := new(atomic.Int64); a.Store(dropped); return a }())
	r.Seen("key_a", now.Add(2*time.Minute))
	r.Flush(ctx)
	if a, _ := st.GetKey(ctx, "key_a"); !a.LastUsedAt.Equal(now.Add(2 * time.Minute)) {
		t.Fatalf("a use that found a dropped entry was lost: %v", a.LastUsedAt)
	}
}

func BenchmarkSeen(b *testing.B) {
	r := New(nil, nil)
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Seen("key_bench", now)
		}
	})
}
