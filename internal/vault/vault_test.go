package vault

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
)

// memStorage is an in-memory Storage with the store's conflict semantics.
type memStorage struct {
	mu   sync.Mutex
	recs map[string]map[int]store.SecretVersion
	puts int
	// beforePut, when set, runs (unlocked) before each put, so a test can
	// simulate another writer.
	beforePut func(sv store.SecretVersion)
}

func newMemStorage() *memStorage {
	return &memStorage{recs: map[string]map[int]store.SecretVersion{}}
}

func (m *memStorage) PutSecretVersion(_ context.Context, sv store.SecretVersion) error {
	if m.beforePut != nil {
		m.beforePut(sv)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.puts++
	vs := m.recs[sv.ID]
	if vs == nil {
		vs = map[int]store.SecretVersion{}
		m.recs[sv.ID] = vs
	}
	if _, ok := vs[sv.Version]; ok {
		return fmt.Errorf("memstorage: put %q version %d: %w", sv.ID, sv.Version, store.ErrConflict)
	}
	vs[sv.Version] = sv
	return nil
}

func (m *memStorage) GetSecretVersion(_ context.Context, id string, version int) (store.SecretVersion, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	sv, ok := m.recs[id][version]
	if !ok {
		return store.SecretVersion{}, fmt.Errorf("memstorage: %q version %d: %w", id, version, store.ErrNotFound)
	}
	return sv, nil
}

func (m *memStorage) LatestSecretVersion(_ context.Context, id string) (store.SecretVersion, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	best, ok := store.SecretVersion{}, false
	for v, sv := range m.recs[id] {
		if !ok || v > best.Version {
			best, ok = sv, true
		}
	}
	if !ok {
		return store.SecretVersion{}, fmt.Errorf("memstorage: %q: %w", id, store.ErrNotFound)
	}
	return best, nil
}

func (m *memStorage) ListSecretVersions(_ context.Context, id string) ([]store.SecretVersion, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.SecretVersion
	for _, sv := range m.recs[id] {
		out = append(out, sv)
	}
	slices.SortFunc(out, func(a, b store.SecretVersion) int { return a.Version - b.Version })
	return out, nil
}

// set replaces a stored version, bypassing conflict checks, to simulate
// tampering with the database.
func (m *memStorage) set(sv store.SecretVersion) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs[sv.ID][sv.Version] = sv
}

func testKEK(t testing.TB) *LocalKEK {
	t.Helper()
	key := make([]byte, MasterKeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	k, err := NewLocalKEK(key)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testSecret returns a random credential-like value made at run time.
func testSecret(t testing.TB) secret.String {
	t.Helper()
	return secret.New("test-credential-" + rand.Text())
}

func TestVaultPutGet(t *testing.T) {
	ctx := context.Background()
	st := newMemStorage()
	v := New(testKEK(t), st)

	if _, _, err := v.Get(ctx, "provider/a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get of a missing record: err = %v, want store.ErrNotFound", err)
	}
	s1, s2 := testSecret(t), testSecret(t)
	for i, s := range []secret.String{s1, s2} {
		ver, err := v.Put(ctx, "provider/a", s)
		if err != nil {
			t.Fatal(err)
		}
		if ver != i+1 {
			t.Fatalf("Put #%d returned version %d", i+1, ver)
		}
	}
	got, ver, err := v.Get(ctx, "provider/a")
	if err != nil || ver != 2 || !got.Equal(s2) {
		t.Fatalf("Get = (equal=%v, %d, %v), want the second secret at version 2", got.Equal(s2), ver, err)
	}
	old, err := v.GetVersion(ctx, "provider/a", 1)
	if err != nil || !old.Equal(s1) {
		t.Fatalf("GetVersion(1): equal=%v err=%v", old.Equal(s1), err)
	}
	if _, err := v.GetVersion(ctx, "provider/a", 3); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetVersion(3): err = %v, want store.ErrNotFound", err)
	}
	if v.KEKID() != st.recs["provider/a"][1].KEKID {
		t.Fatalf("stored KEK id %q, vault KEK id %q", st.recs["provider/a"][1].KEKID, v.KEKID())
	}
}

func TestVaultPutRetriesOnConflict(t *testing.T) {
	ctx := context.Background()
	kek := testKEK(t)
	st := newMemStorage()
	v := New(kek, st)
	other := testSecret(t)
	raced := 0
	st.beforePut = func(sv store.SecretVersion) {
		// Another writer takes the version we are about to write, twice.
		if raced < 2 {
			raced++
			o, err := SealVersion(ctx, kek, sv.ID, sv.Version, []byte(other.Reveal()))
			if err != nil {
				t.Error(err)
				return
			}
			st.mu.Lock()
			if st.recs[sv.ID] == nil {
				st.recs[sv.ID] = map[int]store.SecretVersion{}
			}
			st.recs[sv.ID][sv.Version] = o
			st.mu.Unlock()
		}
	}
	mine := testSecret(t)
	ver, err := v.Put(ctx, "provider/r", mine)
	if err != nil {
		t.Fatal(err)
	}
	if ver != 3 {
		t.Fatalf("Put after two lost races returned version %d, want 3", ver)
	}
	got, _ := v.GetVersion(ctx, "provider/r", 3)
	if !got.Equal(mine) {
		t.Fatal("version 3 does not hold the value Put wrote")
	}
}

func TestVaultPutGivesUpOnEndlessConflict(t *testing.T) {
	ctx := context.Background()
	st := newMemStorage()
	v := New(testKEK(t), st)
	st.beforePut = func(sv store.SecretVersion) {
		st.mu.Lock()
		if st.recs[sv.ID] == nil {
			st.recs[sv.ID] = map[int]store.SecretVersion{}
		}
		st.recs[sv.ID][sv.Version] = sv
		st.mu.Unlock()
	}
	if _, err := v.Put(ctx, "provider/x", testSecret(t)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("err = %v, want store.ErrConflict", err)
	}
}

func TestVaultConcurrentPut(t *testing.T) {
	ctx := context.Background()
	st := newMemStorage()
	v := New(testKEK(t), st)
	const writers = 6
	var wg sync.WaitGroup
	versions := make(chan int, writers)
	for range writers {
		wg.Go(func() {
			ver, err := v.Put(ctx, "provider/c", testSecret(t))
			if err != nil {
				t.Error(err)
				return
			}
			versions <- ver
		})
	}
	wg.Wait()
	close(versions)
	seen := map[int]bool{}
	for ver := range versions {
		if seen[ver] {
			t.Fatalf("two writers both got version %d", ver)
		}
		seen[ver] = true
	}
	if len(seen) != writers {
		t.Fatalf("%d versions written, want %d", len(seen), writers)
	}
}

func TestVaultDetectsStoreTampering(t *testing.T) {
	ctx := context.Background()
	st := newMemStorage()
	v := New(testKEK(t), st)
	for _, id := range []string{"provider/a", "provider/b"} {
		if _, err := v.Put(ctx, id, testSecret(t)); err != nil {
			t.Fatal(err)
		}
	}
	// Copy b's ciphertext into a's record.
	a, b := st.recs["provider/a"][1], st.recs["provider/b"][1]
	a.WrappedDEK, a.Ciphertext = b.WrappedDEK, b.Ciphertext
	st.set(a)
	if _, _, err := v.Get(ctx, "provider/a"); !errors.Is(err, ErrTampered) {
		t.Fatalf("Get of a record holding another record's ciphertext: err = %v, want ErrTampered", err)
	}
	// A store answering with the wrong record altogether.
	st.recs["provider/a"][1] = b // stored under a's key, but it is b's record
	if _, err := v.GetVersion(ctx, "provider/a", 1); !errors.Is(err, ErrTampered) {
		t.Fatalf("GetVersion returning another record: err = %v, want ErrTampered", err)
	}
}

func TestVaultWrongKEK(t *testing.T) {
	ctx := context.Background()
	st := newMemStorage()
	if _, err := New(testKEK(t), st).Put(ctx, "provider/a", testSecret(t)); err != nil {
		t.Fatal(err)
	}
	other := New(testKEK(t), st)
	_, _, err := other.Get(ctx, "provider/a")
	if !errors.Is(err, ErrWrongKEK) {
		t.Fatalf("err = %v, want ErrWrongKEK", err)
	}
}

func TestVaultEnsure(t *testing.T) {
	ctx := context.Background()
	st := newMemStorage()
	kek := testKEK(t)
	v := New(kek, st)
	first, err := v.Ensure(ctx, "system/pepper", 32)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Reveal()) != 32 {
		t.Fatalf("generated %d bytes, want 32", len(first.Reveal()))
	}
	again, err := New(kek, st).Ensure(ctx, "system/pepper", 32)
	if err != nil || !again.Equal(first) {
		t.Fatalf("second Ensure: equal=%v err=%v; want the stored value", again.Equal(first), err)
	}
	if _, err := v.Ensure(ctx, "system/other", 0); err == nil {
		t.Fatal("Ensure with size 0 succeeded")
	}
}

func TestVaultEnsureConcurrent(t *testing.T) {
	ctx := context.Background()
	st := newMemStorage()
	kek := testKEK(t)
	const n = 8
	vals := make([]secret.String, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := New(kek, st).Ensure(ctx, "system/pepper", 32)
			if err != nil {
				t.Error(err)
			}
			vals[i] = s
		})
	}
	wg.Wait()
	for i := 1; i < n; i++ {
		if !vals[i].Equal(vals[0]) {
			t.Fatal("concurrent Ensure calls returned different values")
		}
	}
	if len(st.recs["system/pepper"]) != 1 {
		t.Fatalf("%d versions stored, want 1", len(st.recs["system/pepper"]))
	}
}

func TestVaultErrorsHideSecrets(t *testing.T) {
	ctx := context.Background()
	st := newMemStorage()
	v := New(testKEK(t), st)
	s := testSecret(t)
	if _, err := v.Put(ctx, "provider/a", s); err != nil {
		t.Fatal(err)
	}
	sv := st.recs["provider/a"][1]
	sv.Ciphertext = append([]byte(nil), sv.Ciphertext...)
	sv.Ciphertext[len(sv.Ciphertext)-1] ^= 1
	st.set(sv)
	_, _, err := v.Get(ctx, "provider/a")
	if err == nil {
		t.Fatal("tampered record opened")
	}
	msg := err.Error()
	for _, bad := range []string{s.Reveal(), string(sv.Ciphertext), string(sv.WrappedDEK)} {
		if strings.Contains(msg, bad) {
			t.Fatalf("error message contains secret material: %s", msg)
		}
	}
	for _, want := range []string{`"provider/a"`, "version 1"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("error %q does not name %s", msg, want)
		}
	}
}
