package gateway

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/principal"
)

// memHistories is RiskOptions.History kept in a map, counting reads.
type memHistories struct {
	mu    sync.Mutex
	data  map[string][]byte
	loads int
}

func (m *memHistories) LoadKeyHistory(_ context.Context, id string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.loads++
	return m.data[id], nil
}

func (m *memHistories) SaveKeyHistories(_ context.Context, hs []KeyHistory) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, h := range hs {
		m.data[h.KeyID] = h.Data
	}
	return nil
}

// TestHistoriesForgetIdleKeys: a key's risk history stays in memory while
// the key is used, is dropped once a flush finds it unused since the one
// before (after it was saved), and is read back, with what was learned,
// at the key's next use.
func TestHistoriesForgetIdleKeys(t *testing.T) {
	store := &memHistories{data: map[string][]byte{}}
	g := &Gateway{opts: Options{
		Now:  time.Now,
		Log:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		Risk: &RiskOptions{History: store},
	}}
	key := &principal.Principal{ID: "key_a"}
	use := func() {
		t.Helper()
		r := httptest.NewRequest("POST", "/v1/chat/completions", nil)
		r.RemoteAddr = "203.0.113.7:4000"
		if d := g.assessRisk(r, &call{}, key); d != nil {
			t.Fatalf("refused: %+v", d)
		}
	}
	held := func() int {
		g.histories.mu.RLock()
		defer g.histories.mu.RUnlock()
		return len(g.histories.m)
	}
	ctx := context.Background()

	use()
	use()
	g.FlushHistories(ctx) // saves two uses; the key was used: kept
	if held() != 1 || store.loads != 1 || store.data["key_a"] == nil {
		t.Fatalf("after the first flush: %d held, %d loads, saved %q", held(), store.loads, store.data["key_a"])
	}
	use()
	g.FlushHistories(ctx) // used again: kept
	g.FlushHistories(ctx) // not used since the last flush: dropped
	if held() != 0 {
		t.Fatalf("an idle key's history is still held after two flushes (%d held)", held())
	}
	use() // read back from the store
	if store.loads != 2 {
		t.Fatalf("the dropped history was not read back: %d loads", store.loads)
	}
	kh := g.histories.lock(key.ID)
	var uses uint32
	for _, day := range kh.h.Hours {
		for _, n := range day {
			uses += n
		}
	}
	kh.mu.Unlock()
	if uses != 4 || len(kh.h.Recent) != 4 {
		t.Fatalf("history after the read-back: %d uses counted, %d recent; want 4 and 4", uses, len(kh.h.Recent))
	}

	// An entry dropped while a request waited for it is replaced, not used.
	stale := g.histories.lock(key.ID)
	stale.gone = true
	stale.mu.Unlock()
	fresh := g.histories.lock(key.ID)
	defer fresh.mu.Unlock()
	if fresh == stale || fresh.loaded {
		t.Fatal("lock returned a dropped entry")
	}
}
