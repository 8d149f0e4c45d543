package vault

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/store/storetest"
)

// databases runs fn against a fresh SQLite database and, when configured, a
// fresh PostgreSQL schema.
func databases(t *testing.T, fn func(t *testing.T, newURL func(testing.TB) string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, storetest.SQLiteURL) })
	t.Run("postgres", func(t *testing.T) { fn(t, storetest.PostgresURL) })
}

// keks is a set of test KEKs reachable by URL, as a KMS would be.
type keks struct {
	mu    sync.Mutex
	byURL map[string]KEK
}

func newKEKs(t *testing.T, urls ...string) *keks {
	k := &keks{byURL: map[string]KEK{}}
	for _, u := range urls {
		k.byURL[u] = testKEK(t)
	}
	return k
}

func (k *keks) get(url string) KEK {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.byURL[url]
}

func (k *keks) open(_ context.Context, url string) (KEK, error) {
	if kek := k.get(url); kek != nil {
		return kek, nil
	}
	return nil, fmt.Errorf("no test KEK at %s", url)
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// node is one keygate process's vault and rotator over a shared database.
type node struct {
	v   *Vault
	rot *Rotator
	st  *store.Store
}

func newNode(t *testing.T, url string, k *keks, kekURL string) *node {
	t.Helper()
	st := storetest.Open(t, url)
	kek := k.get(kekURL)
	v := New(kek, st, WithKEKOpener(k.open))
	v.SetKEKURL(kek.ID(), secret.New(kekURL))
	ctx, cancel := context.WithCancel(context.Background())
	rot := NewRotator(ctx, v, st, quietLog())
	t.Cleanup(func() { cancel(); rot.Wait() })
	return &node{v: v, rot: rot, st: st}
}

func fill(t *testing.T, v *Vault, n int) map[string]secret.String {
	t.Helper()
	want := map[string]secret.String{}
	for i := range n {
		id := fmt.Sprintf("secret/s%03d", i)
		s := testSecret(t)
		if _, err := v.Put(t.Context(), id, s); err != nil {
			t.Fatal(err)
		}
		want[id] = s
	}
	return want
}

func checkAll(t *testing.T, v *Vault, want map[string]secret.String) {
	t.Helper()
	for id, s := range want {
		got, _, err := v.Get(t.Context(), id)
		if err != nil {
			t.Fatalf("open %s: %v", id, err)
		}
		if !got.Equal(s) {
			t.Fatalf("%s opened to a different value", id)
		}
	}
}

func waitFinished(t *testing.T, r *Rotator) RotationStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := r.Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if st.State == "finished" {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("rotation did not finish: %+v remaining=%d", st.Latest, st.Remaining)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRotateKEK(t *testing.T) {
	databases(t, func(t *testing.T, newURL func(testing.TB) string) {
		k := newKEKs(t, "test://old", "test://new")
		n := newNode(t, newURL(t), k, "test://old")
		want := fill(t, n.v, 53)
		oldID, newKEK := n.v.KEKID(), k.get("test://new")

		rot, err := n.rot.Start(t.Context(), newKEK, secret.New("test://new"), 7, 0)
		if err != nil {
			t.Fatal(err)
		}
		if rot.FromKEK != oldID || rot.ToKEK != newKEK.ID() || n.v.KEKID() != newKEK.ID() {
			t.Fatalf("rotation %+v; vault now seals under %s", rot, n.v.KEKID())
		}
		// Writes during the rotation go under the new KEK at once.
		extra := testSecret(t)
		if _, err := n.v.Put(t.Context(), "secret/during", extra); err != nil {
			t.Fatal(err)
		}
		want["secret/during"] = extra

		st := waitFinished(t, n.rot)
		if st.Remaining != 0 || st.Latest.Rewrapped < 53 {
			t.Fatalf("finished with %d remaining, %d rewrapped", st.Remaining, st.Latest.Rewrapped)
		}
		// Everything but the KEK URL records is under the new KEK.
		for _, c := range st.Counts {
			if c.KEKID != newKEK.ID() && c.Versions != 1 {
				t.Errorf("after rotation %d versions remain under %s (only its sealed URL record should)", c.Versions, c.KEKID)
			}
		}
		checkAll(t, n.v, want)

		// A keygate holding only the new KEK opens everything, and the
		// rotated records no longer need the old one.
		only := New(newKEK, n.st)
		checkAll(t, only, want)

		_, err = n.rot.Start(t.Context(), newKEK, secret.New("test://new"), 0, 0)
		if err == nil || !strings.Contains(err.Error(), "already the current") {
			t.Fatalf("rotating to the current KEK: %v", err)
		}
	})
}

func TestRotationRefusesASecondWhileRunning(t *testing.T) {
	k := newKEKs(t, "test://a", "test://b", "test://c")
	n := newNode(t, storetest.SQLiteURL(t), k, "test://a")
	fill(t, n.v, 20)
	if _, err := n.rot.Start(t.Context(), k.get("test://b"), secret.New("test://b"), 1, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	_, err := n.rot.Start(t.Context(), k.get("test://c"), secret.New("test://c"), 1, 0)
	if !errors.Is(err, ErrRotationRunning) {
		t.Fatalf("second rotation: err = %v, want ErrRotationRunning", err)
	}
}

// A node still configured with the old KEK follows a rotation another node
// started, through the new KEK's URL sealed under the old one.
func TestOtherNodeFollowsRotation(t *testing.T) {
	databases(t, func(t *testing.T, newURL func(testing.TB) string) {
		url := newURL(t)
		k := newKEKs(t, "test://old", "test://new")
		a := newNode(t, url, k, "test://old")
		b := newNode(t, url, k, "test://old")
		want := fill(t, a.v, 10)
		if _, err := a.rot.Start(t.Context(), k.get("test://new"), secret.New("test://new"), 3, 0); err != nil {
			t.Fatal(err)
		}
		waitFinished(t, a.rot)
		// b opens rewrapped records by finding the new KEK on its own.
		checkAll(t, b.v, want)
		if err := b.rot.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		if b.v.KEKID() != k.get("test://new").ID() {
			t.Fatalf("after Sync node b seals under %s, want the new KEK", b.v.KEKID())
		}
	})
}

// A rotation stopped half way (every node stopped) is finished by the next
// node to start, even one configured with only the new KEK.
func TestRotationResumes(t *testing.T) {
	databases(t, func(t *testing.T, newURL func(testing.TB) string) {
		url := newURL(t)
		k := newKEKs(t, "test://old", "test://new")
		st := storetest.Open(t, url)
		old := k.get("test://old")
		v := New(old, st, WithKEKOpener(k.open))
		v.SetKEKURL(old.ID(), secret.New("test://old"))
		want := fill(t, v, 40)
		ctx, stop := context.WithCancel(context.Background())
		r := NewRotator(ctx, v, st, quietLog())
		if _, err := r.Start(t.Context(), k.get("test://new"), secret.New("test://new"), 4, 20*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		time.Sleep(60 * time.Millisecond)
		stop()
		r.Wait()
		status, err := r.Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if status.State == "finished" || status.Remaining == 0 {
			t.Fatalf("the rotation finished before it could be interrupted: %+v", status)
		}

		n := newNode(t, url, k, "test://new")
		if err := n.rot.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		waitFinished(t, n.rot)
		checkAll(t, New(k.get("test://new"), n.st), want)
	})
}

// A version whose data key cannot be unwrapped does not stop the others;
// the rotation reports it and keeps the error until it is resolved.
func TestRotationSkipsBrokenVersion(t *testing.T) {
	k := newKEKs(t, "test://old", "test://new")
	n := newNode(t, storetest.SQLiteURL(t), k, "test://old")
	want := fill(t, n.v, 12)
	bad := &tamperingStore{Store: n.st, broken: "secret/s005"}
	r := NewRotator(t.Context(), n.v, bad, quietLog())
	t.Cleanup(r.Wait)
	if _, err := r.Start(t.Context(), k.get("test://new"), secret.New("test://new"), 5, 0); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := r.Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if st.Remaining == 1 && st.Latest.LastError != "" {
			if !strings.Contains(st.Latest.LastError, "secret/s005") {
				t.Fatalf("rotation error %q does not name the broken record", st.Latest.LastError)
			}
			if st.State == "finished" {
				t.Fatal("rotation finished with a version left under the old KEK")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rotation state: remaining %d, error %q", st.Remaining, st.Latest.LastError)
		}
		time.Sleep(10 * time.Millisecond)
	}
	delete(want, "secret/s005")
	checkAll(t, New(k.get("test://new"), n.st, WithPrevious()), want)
}

// tamperingStore hands the rotator a corrupted wrapped data key for one
// record, as a damaged database would.
type tamperingStore struct {
	*store.Store
	broken string
}

func (s *tamperingStore) RewrapCandidates(ctx context.Context, kekID, exclude, afterID string, afterVersion, limit int) ([]store.SecretVersion, error) {
	vs, err := s.Store.RewrapCandidates(ctx, kekID, exclude, afterID, afterVersion, limit)
	for i := range vs {
		if vs[i].ID == s.broken {
			vs[i].WrappedDEK = append([]byte(nil), vs[i].WrappedDEK...)
			vs[i].WrappedDEK[len(vs[i].WrappedDEK)/2] ^= 1
		}
	}
	return vs, err
}

// countingKEK counts unwraps, standing in for the calls a KMS is paid for.
type countingKEK struct {
	KEK
	unwraps atomic.Int64
}

func (c *countingKEK) Unwrap(ctx context.Context, w []byte) ([]byte, error) {
	c.unwraps.Add(1)
	return c.KEK.Unwrap(ctx, w)
}

func TestDataKeyCacheCallsKEKOncePerDataKey(t *testing.T) {
	st := storetest.Open(t, storetest.SQLiteURL(t))
	kek := &countingKEK{KEK: testKEK(t)}
	v := New(kek, st)
	s := testSecret(t)
	if _, err := v.Put(t.Context(), "provider/a", s); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		got, _, err := v.Get(t.Context(), "provider/a")
		if err != nil || !got.Equal(s) {
			t.Fatalf("Get: %v", err)
		}
	}
	if n := kek.unwraps.Load(); n != 1 {
		t.Fatalf("50 reads unwrapped the data key %d times, want 1", n)
	}
	// Disabled, every read goes to the KEK.
	kek.unwraps.Store(0)
	uncached := New(kek, st, WithDEKCacheSize(0))
	for range 5 {
		if _, _, err := uncached.Get(t.Context(), "provider/a"); err != nil {
			t.Fatal(err)
		}
	}
	if n := kek.unwraps.Load(); n != 5 {
		t.Fatalf("without a cache 5 reads unwrapped %d times", n)
	}
}

func TestGetCached(t *testing.T) {
	st := storetest.Open(t, storetest.SQLiteURL(t))
	kek := testKEK(t)
	now := time.Now()
	v := New(kek, st, WithReadCache(time.Minute))
	v.now = func() time.Time { return now }
	first, second := testSecret(t), testSecret(t)
	if _, err := v.Put(t.Context(), "secret/x", first); err != nil {
		t.Fatal(err)
	}
	got, ver, err := v.GetCached(t.Context(), "secret/x")
	if err != nil || ver != 1 || !got.Equal(first) {
		t.Fatalf("GetCached = v%d, %v", ver, err)
	}
	// Another node writes version 2: within the TTL this node still reads 1.
	other := New(kek, st)
	if _, err := other.Put(t.Context(), "secret/x", second); err != nil {
		t.Fatal(err)
	}
	if _, ver, _ := v.GetCached(t.Context(), "secret/x"); ver != 1 {
		t.Fatalf("within the TTL GetCached read version %d, want the cached 1", ver)
	}
	if _, ver, _ := v.Get(t.Context(), "secret/x"); ver != 2 {
		t.Fatalf("Get read version %d, want 2: Get always reads the database", ver)
	}
	now = now.Add(2 * time.Minute)
	got, ver, err = v.GetCached(t.Context(), "secret/x")
	if err != nil || ver != 2 || !got.Equal(second) {
		t.Fatalf("after the TTL GetCached = v%d, %v; want version 2", ver, err)
	}
	// A write through this vault is seen at once.
	third := testSecret(t)
	if _, err := v.Put(t.Context(), "secret/x", third); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := v.GetCached(t.Context(), "secret/x"); !got.Equal(third) {
		t.Fatal("GetCached missed this vault's own write")
	}
}

func TestPreviousKEKOpensOldRecords(t *testing.T) {
	st := storetest.Open(t, storetest.SQLiteURL(t))
	old, cur := testKEK(t), testKEK(t)
	s := testSecret(t)
	if _, err := New(old, st).Put(t.Context(), "provider/a", s); err != nil {
		t.Fatal(err)
	}
	if _, _, err := New(cur, st).Get(t.Context(), "provider/a"); !errors.Is(err, ErrWrongKEK) {
		t.Fatalf("without the old KEK: err = %v, want ErrWrongKEK", err)
	}
	v := New(cur, st, WithPrevious(old))
	got, _, err := v.Get(t.Context(), "provider/a")
	if err != nil || !got.Equal(s) {
		t.Fatalf("with the old KEK as previous: %v", err)
	}
	if _, err := v.Put(t.Context(), "provider/b", s); err != nil {
		t.Fatal(err)
	}
	sv, _ := st.LatestSecretVersion(t.Context(), "provider/b")
	if sv.KEKID != cur.ID() {
		t.Fatalf("new version sealed under %s, want the current KEK", sv.KEKID)
	}
}
