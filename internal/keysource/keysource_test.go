package keysource

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/store"
)

// memKeys is an in-memory Lookup, keyed by hash like the store's unique index.
type memKeys struct {
	mu    sync.Mutex
	keys  map[string]store.Key
	calls atomic.Int64
	err   error
	// during, when set, runs inside GetKeyByHash after the record is read.
	during func()
}

func newMemKeys() *memKeys { return &memKeys{keys: map[string]store.Key{}} }

func (m *memKeys) GetKeyByHash(_ context.Context, hash []byte) (store.Key, error) {
	m.calls.Add(1)
	m.mu.Lock()
	k, ok := m.keys[string(hash)]
	err := m.err
	m.mu.Unlock()
	if m.during != nil {
		m.during()
	}
	if err != nil {
		return store.Key{}, err
	}
	if !ok {
		return store.Key{}, fmt.Errorf("memkeys: %w", store.ErrNotFound)
	}
	return k, nil
}

func (m *memKeys) GetKey(_ context.Context, id string) (store.Key, error) {
	m.calls.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return store.Key{}, m.err
	}
	for _, k := range m.keys {
		if k.ID == id {
			return k, nil
		}
	}
	return store.Key{}, fmt.Errorf("memkeys: %w", store.ErrNotFound)
}

func (m *memKeys) add(k store.Key) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys[string(k.Hash)] = k
}

func (m *memKeys) revoke(id string, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for h, k := range m.keys {
		if k.ID == id {
			k.RevokedAt = &at
			m.keys[h] = k
		}
	}
}

func testHasher(t testing.TB) *apikey.Hasher {
	t.Helper()
	pepper := make([]byte, 32)
	if _, err := rand.Read(pepper); err != nil {
		t.Fatal(err)
	}
	h, err := apikey.NewHasher(pepper)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// issue generates a key, stores its record, and returns the raw key.
func issue(t testing.TB, h *apikey.Hasher, m *memKeys, id string, edit func(*store.Key)) string {
	t.Helper()
	raw := generate(t, "test")
	p, err := apikey.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	sum := h.Hash(raw)
	k := store.Key{ID: id, Name: id, Env: p.Env, Prefix: p.Prefix, Hash: sum[:], CreatedAt: time.Now().UTC()}
	if edit != nil {
		edit(&k)
	}
	m.add(k)
	return raw
}

func TestVerify(t *testing.T) {
	ctx := context.Background()
	h := testHasher(t)
	m := newMemKeys()
	now := time.Now()
	past, future := now.Add(-time.Hour), now.Add(time.Hour)
	valid := issue(t, h, m, "key_valid", nil)
	withFuture := issue(t, h, m, "key_future", func(k *store.Key) { k.ExpiresAt = &future })
	expired := issue(t, h, m, "key_expired", func(k *store.Key) { k.ExpiresAt = &past })
	expiresNow := issue(t, h, m, "key_now", func(k *store.Key) { k.ExpiresAt = &now })
	revoked := issue(t, h, m, "key_revoked", func(k *store.Key) { k.RevokedAt = &past })
	unknown := generate(t, "test")
	admin, _ := apikey.GenerateAdmin()
	// A record whose stored hash differs from the hash it was found under.
	mismatched := generate(t, "test")
	ms := h.Hash(mismatched)
	m.keys[string(ms[:])] = store.Key{ID: "key_mismatch", Hash: make([]byte, 32)}

	for _, tc := range []struct {
		name, raw string
		want      error
		wantID    string
	}{
		{"valid", valid, nil, "key_valid"},
		{"expires later", withFuture, nil, "key_future"},
		{"expired", expired, apikey.ErrExpired, "key_expired"},
		{"expires exactly now", expiresNow, apikey.ErrExpired, "key_now"},
		{"revoked", revoked, apikey.ErrRevoked, "key_revoked"},
		{"unknown", unknown, apikey.ErrUnknown, ""},
		{"admin credential", admin.Reveal(), apikey.ErrUnknown, ""},
		{"hash mismatch", mismatched, apikey.ErrUnknown, ""},
		{"malformed", "kg_test_nope", apikey.ErrMalformed, ""},
		{"empty", "", apikey.ErrMalformed, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := New(h, m)
			for pass := range 2 { // uncached, then cached
				k, err := v.Verify(ctx, tc.raw, now)
				id := ""
				if k != nil {
					id = k.ID
				}
				if !errors.Is(err, tc.want) {
					t.Fatalf("pass %d: err = %v, want %v", pass, err, tc.want)
				}
				if id != tc.wantID {
					t.Fatalf("pass %d: key id %q, want %q", pass, id, tc.wantID)
				}
			}
		})
	}

	// Just before ExpiresAt the key is still valid.
	v := New(h, m)
	if _, err := v.Verify(ctx, expiresNow, now.Add(-time.Nanosecond)); err != nil {
		t.Fatalf("one nanosecond before expiry: %v", err)
	}
	if _, err := v.Verify(ctx, expiresNow, now); !errors.Is(err, apikey.ErrExpired) {
		t.Fatalf("at expiry, from the cache: err = %v, want apikey.ErrExpired", err)
	}
}

func TestVerifyLookupError(t *testing.T) {
	ctx := context.Background()
	h := testHasher(t)
	m := newMemKeys()
	raw := issue(t, h, m, "key_a", nil)
	boom := errors.New("database is down")
	m.err = boom
	v := New(h, m)
	_, err := v.Verify(ctx, raw, time.Now())
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the lookup error", err)
	}
	for _, sentinel := range []error{apikey.ErrUnknown, apikey.ErrRevoked, apikey.ErrExpired, apikey.ErrMalformed} {
		if errors.Is(err, sentinel) {
			t.Fatalf("a lookup failure matches %v; the gateway would answer 401 instead of failing closed with 5xx", sentinel)
		}
	}
	m.err = nil
	if _, err := v.Verify(ctx, raw, time.Now()); err != nil {
		t.Fatalf("after the store recovered: %v", err)
	}
}

func TestVerifyCaches(t *testing.T) {
	ctx := context.Background()
	h := testHasher(t)
	m := newMemKeys()
	raw := issue(t, h, m, "key_a", nil)
	unknown := generate(t, "test")
	v := New(h, m, WithTTL(10*time.Second))
	now := time.Now()
	for i := range 5 {
		if _, err := v.Verify(ctx, raw, now.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if got := m.calls.Load(); got != 1 {
		t.Fatalf("%d lookups for 5 verifications within the TTL, want 1", got)
	}
	// Past the TTL the record still answers, and one background lookup renews it.
	for range 3 {
		if _, err := v.Verify(ctx, raw, now.Add(10*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	waitCalls(t, m, 2)
	// Unknown keys are not cached: a key issued later works at once.
	for range 3 {
		_, _ = v.Verify(ctx, unknown, now)
	}
	if got := m.calls.Load(); got != 5 {
		t.Fatalf("%d lookups, want 5: unknown keys must not be cached", got)
	}
	// Malformed keys never reach the store.
	_, _ = v.Verify(ctx, unknown[:len(unknown)-1]+"x", now)
	if got := m.calls.Load(); got != 5 {
		t.Fatal("a malformed key reached the store")
	}
}

func TestVerifyCacheOff(t *testing.T) {
	ctx := context.Background()
	h := testHasher(t)
	for _, opt := range []Option{WithTTL(0), WithMaxEntries(0)} {
		m := newMemKeys()
		raw := issue(t, h, m, "key_a", nil)
		v := New(h, m, opt)
		for range 3 {
			if _, err := v.Verify(ctx, raw, time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		if got := m.calls.Load(); got != 3 {
			t.Fatalf("caching off: %d lookups for 3 verifications, want 3", got)
		}
	}
}

func TestVerifyInvalidate(t *testing.T) {
	ctx := context.Background()
	h := testHasher(t)
	m := newMemKeys()
	raw := issue(t, h, m, "key_a", nil)
	other := issue(t, h, m, "key_b", nil)
	v := New(h, m, WithTTL(time.Hour))
	now := time.Now()
	for _, r := range []string{raw, other} {
		if _, err := v.Verify(ctx, r, now); err != nil {
			t.Fatal(err)
		}
	}
	m.revoke("key_a", now)
	// Without Invalidate the cached record is trusted for the TTL.
	if _, err := v.Verify(ctx, raw, now); err != nil {
		t.Fatalf("cached record: %v", err)
	}
	v.Invalidate("key_a")
	if _, err := v.Verify(ctx, raw, now.Add(time.Millisecond)); !errors.Is(err, apikey.ErrRevoked) {
		t.Fatalf("right after Invalidate: err = %v, want apikey.ErrRevoked", err)
	}
	calls := m.calls.Load()
	if _, err := v.Verify(ctx, other, now); err != nil {
		t.Fatal(err)
	}
	if m.calls.Load() != calls {
		t.Fatal("Invalidate dropped another key's entry")
	}
	v.Invalidate("key_never_seen") // no-op
}

func TestVerifyInvalidateDuringLookup(t *testing.T) {
	ctx := context.Background()
	h := testHasher(t)
	m := newMemKeys()
	raw := issue(t, h, m, "key_a", nil)
	v := New(h, m, WithTTL(time.Hour))
	now := time.Now()
	// The revocation lands after the lookup read the record but before the
	// record is cached: the stale record must not be cached.
	m.during = func() {
		m.during = nil
		m.revoke("key_a", now)
		v.Invalidate("key_a")
	}
	if _, err := v.Verify(ctx, raw, now); err != nil {
		t.Fatalf("in-flight verification: %v", err)
	}
	if _, err := v.Verify(ctx, raw, now); !errors.Is(err, apikey.ErrRevoked) {
		t.Fatalf("next request: err = %v, want apikey.ErrRevoked", err)
	}
}

func TestVerifyCacheIsBounded(t *testing.T) {
	ctx := context.Background()
	h := testHasher(t)
	m := newMemKeys()
	const max = 16
	v := New(h, m, WithMaxEntries(max), WithTTL(time.Hour))
	now := time.Now()
	raws := make([]string, 100)
	for i := range raws {
		raws[i] = issue(t, h, m, fmt.Sprintf("key_%d", i), nil)
		if _, err := v.Verify(ctx, raws[i], now); err != nil {
			t.Fatal(err)
		}
	}
	total, ids := 0, 0
	for i := range v.shards {
		total += len(v.shards[i].entries)
		ids += len(v.shards[i].byID)
	}
	if total > max || ids > max {
		t.Fatalf("cache holds %d entries and %d ids, bound is %d", total, ids, max)
	}
	if total == 0 {
		t.Fatal("nothing cached")
	}
	// Every key still verifies, evicted or not.
	for _, r := range raws {
		if _, err := v.Verify(ctx, r, now); err != nil {
			t.Fatal(err)
		}
	}
	// Expired entries are evicted first.
	later := now.Add(2 * time.Hour)
	fresh := issue(t, h, m, "key_fresh", nil)
	if _, err := v.Verify(ctx, fresh, later); err != nil {
		t.Fatal(err)
	}
	calls := m.calls.Load()
	if _, err := v.Verify(ctx, fresh, later); err != nil || m.calls.Load() != calls {
		t.Fatalf("the newest entry was not cached (err %v)", err)
	}
}

func TestVerifyConcurrent(t *testing.T) {
	ctx := context.Background()
	h := testHasher(t)
	m := newMemKeys()
	raws := make([]string, 8)
	for i := range raws {
		raws[i] = issue(t, h, m, fmt.Sprintf("key_%d", i), nil)
	}
	v := New(h, m, WithMaxEntries(4), WithTTL(time.Millisecond))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 300 {
				raw := raws[(g+i)%len(raws)]
				if _, err := v.Verify(ctx, raw, time.Now()); err != nil && !errors.Is(err, apikey.ErrRevoked) {
					t.Error(err)
					return
				}
				if i%50 == 0 {
					v.Invalidate(fmt.Sprintf("key_%d", i%len(raws)))
				}
			}
		})
	}
	wg.Go(func() {
		m.revoke("key_0", time.Now())
		v.Invalidate("key_0")
	})
	wg.Wait()
	if _, err := v.Verify(ctx, raws[0], time.Now()); !errors.Is(err, apikey.ErrRevoked) {
		t.Fatalf("after a concurrent revoke: err = %v, want apikey.ErrRevoked", err)
	}
}

func TestCachedVerifyDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	ctx := context.Background()
	h := testHasher(t)
	m := newMemKeys()
	raw := issue(t, h, m, "key_a", nil)
	v := New(h, m)
	now := time.Now()
	if _, err := v.Verify(ctx, raw, now); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(200, func() { _, _ = v.Verify(ctx, raw, now) }); n > 0 {
		t.Errorf("cached Verify: %.1f allocs; the data plane's key check must not allocate", n)
	}
}

func benchSource(b *testing.B) (*Source, string) {
	b.Helper()
	h := testHasher(b)
	m := newMemKeys()
	raw := issue(b, h, m, "key_bench", nil)
	v := New(h, m, WithTTL(time.Hour))
	if _, err := v.Verify(context.Background(), raw, time.Now()); err != nil {
		b.Fatal(err)
	}
	return v, raw
}

func BenchmarkVerifyCached(b *testing.B) {
	v, raw := benchSource(b)
	ctx := context.Background()
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, raw, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyParallel(b *testing.B) {
	v, raw := benchSource(b)
	ctx := context.Background()
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(ctx, raw, now); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// waitCalls waits for the store to have seen want lookups (background refreshes).
func waitCalls(t *testing.T, m *memKeys, want int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for m.calls.Load() < want && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := m.calls.Load(); got != want {
		t.Fatalf("%d lookups, want %d", got, want)
	}
}

// TestVerifyRefreshSeesRevocationFromAnotherNode: a key revoked in the store
// by another keygate node (no Invalidate here) is refused once the TTL has
// passed and the background renewal has read the revocation; a record older
// than twice the TTL is never served without reading the store first.
func TestVerifyRefreshSeesRevocationFromAnotherNode(t *testing.T) {
	ctx := context.Background()
	h := testHasher(t)
	m := newMemKeys()
	raw := issue(t, h, m, "key_r", nil)
	v := New(h, m, WithTTL(10*time.Second))
	now := time.Now()
	if _, err := v.Verify(ctx, raw, now); err != nil {
		t.Fatal(err)
	}
	hash := h.Hash(raw)
	m.mu.Lock()
	k := m.keys[string(hash[:])]
	revoked := now.Add(time.Second)
	k.RevokedAt = &revoked
	m.keys[string(hash[:])] = k
	m.mu.Unlock()
	if _, err := v.Verify(ctx, raw, now.Add(5*time.Second)); err != nil {
		t.Fatalf("within the TTL the cached record answers: %v", err)
	}
	_, _ = v.Verify(ctx, raw, now.Add(11*time.Second)) // starts the renewal
	waitCalls(t, m, 2)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := v.Verify(ctx, raw, now.Add(11*time.Second))
		if errors.Is(err, apikey.ErrRevoked) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("revocation not seen after renewal: %v", err)
		}
		time.Sleep(time.Millisecond)
	}

	// A record past twice its TTL is read again before answering.
	raw2 := issue(t, h, m, "key_s", nil)
	v2 := New(h, m, WithTTL(10*time.Second))
	if _, err := v2.Verify(ctx, raw2, now); err != nil {
		t.Fatal(err)
	}
	before := m.calls.Load()
	if _, err := v2.Verify(ctx, raw2, now.Add(21*time.Second)); err != nil {
		t.Fatal(err)
	}
	if m.calls.Load() != before+1 {
		t.Fatal("a record past twice its TTL must be read synchronously")
	}
}

// generate issues a raw key for env.
func generate(t testing.TB, env string) string {
	t.Helper()
	k, err := apikey.Generate(env)
	if err != nil {
		t.Fatal(err)
	}
	return k.Reveal()
}

// TestVerifyDuringAStoreOutage: once a lookup has failed for want of the
// store, keys this node served lately keep answering for the outage grace
// past their TTL and grace; older ones, and keys it never saw, fail closed
// (a 5xx, not "unknown"); with the grace off nothing stale answers.
func TestVerifyDuringAStoreOutage(t *testing.T) {
	ctx := context.Background()
	h := testHasher(t)
	m := newMemKeys()
	raw := issue(t, h, m, "key_a", nil)
	other := issue(t, h, m, "key_b", nil)
	boom := errors.New("database is down")
	setErr := func(err error) { m.mu.Lock(); m.err = err; m.mu.Unlock() }
	for _, tc := range []struct {
		grace time.Duration
		serve bool
	}{{time.Minute, true}, {0, false}} {
		setErr(nil)
		v := New(h, m, WithTTL(10*time.Second), WithOutageGrace(tc.grace))
		now := time.Now()
		if _, err := v.Verify(ctx, raw, now); err != nil {
			t.Fatal(err)
		}
		setErr(boom)
		// Past TTL and grace: the first lookup finds the store down, and
		// the request that found it is served like the ones after it.
		_, err := v.Verify(ctx, raw, now.Add(25*time.Second))
		if tc.serve != (err == nil) {
			t.Fatalf("grace %v: the request that finds the store down: err %v, want served %v", tc.grace, err, tc.serve)
		}
		if !tc.serve && !errors.Is(err, boom) {
			t.Fatalf("grace %v: first lookup with the store down: %v, want the store's error", tc.grace, err)
		}
		_, err = v.Verify(ctx, raw, now.Add(25*time.Second))
		if tc.serve != (err == nil) {
			t.Fatalf("grace %v: a key served lately, the store down: err %v, want served %v", tc.grace, err, tc.serve)
		}
		if _, err := v.Verify(ctx, raw, now.Add(90*time.Second)); !errors.Is(err, boom) {
			t.Fatalf("grace %v: past the outage grace: %v, want the store's error", tc.grace, err)
		}
		if _, err := v.Verify(ctx, other, now.Add(25*time.Second)); !errors.Is(err, boom) || errors.Is(err, apikey.ErrUnknown) {
			t.Fatalf("grace %v: a key never seen, the store down: %v", tc.grace, err)
		}
		setErr(nil)
		if _, err := v.Verify(ctx, other, now.Add(25*time.Second)); err != nil || v.StoreDown() {
			t.Fatalf("grace %v: after the store is back: %v (down %v)", tc.grace, err, v.StoreDown())
		}
	}
}

// TestByIDDuringAStoreOutage: the token path (a key known by its id) is
// served through an outage like a presented key, from the request that
// finds the store down on.
func TestByIDDuringAStoreOutage(t *testing.T) {
	ctx := context.Background()
	h := testHasher(t)
	m := newMemKeys()
	raw := issue(t, h, m, "key_a", nil)
	v := New(h, m, WithTTL(10*time.Second))
	now := time.Now()
	if _, err := v.Verify(ctx, raw, now); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("database is down")
	m.mu.Lock()
	m.err = boom
	m.mu.Unlock()
	for i := range 2 {
		p, err := v.ByID(ctx, "key_a", now.Add(25*time.Second))
		if err != nil || p.ID != "key_a" {
			t.Fatalf("lookup %d with the store down: %v, %v", i, p, err)
		}
	}
	if _, err := v.ByID(ctx, "key_a", now.Add(10*time.Minute)); !errors.Is(err, boom) {
		t.Fatalf("past the outage grace: %v, want the store's error", err)
	}
}
