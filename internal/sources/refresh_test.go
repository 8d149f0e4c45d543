package sources_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/fakecloud"
	"github.com/keygate/keygate/internal/route"
	"github.com/keygate/keygate/internal/sources"
	"github.com/keygate/keygate/internal/sources/sourcestest"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/store/storetest"
	"github.com/keygate/keygate/internal/vault"
)

// node is one keygate node's view: its own database connection, vault and
// refresher, sharing the database and the key-encryption key with the others.
type node struct {
	st  *store.Store
	v   *vault.Vault
	ref *sources.Refresher
}

// clock is a settable time shared by the nodes.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type alerts struct {
	mu   sync.Mutex
	seen []sources.Alert
}

func (a *alerts) add(x sources.Alert) { a.mu.Lock(); a.seen = append(a.seen, x); a.mu.Unlock() }
func (a *alerts) kinds() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var k []string
	for _, x := range a.seen {
		k = append(k, x.Kind)
	}
	return k
}

func newNode(t *testing.T, url string, kek vault.KEK, src sources.Reader, clk *clock, al *alerts) *node {
	t.Helper()
	st, err := store.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	// The production read cache is on: a node may see a rotation a few seconds late.
	v := vault.New(kek, st, vault.WithReadCache(5*time.Second))
	return &node{st: st, v: v, ref: &sources.Refresher{Store: st, Vault: v, Reader: src, Alert: al.add, Now: clk.Now}}
}

func (n *node) load(t *testing.T, clk *clock) *route.Table {
	t.Helper()
	tbl, err := route.Load(context.Background(), n.st, sources.Guard{Opener: n.v, Refs: n.st, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

func keyOf(t *testing.T, tbl *route.Table) (string, error) {
	t.Helper()
	up, _, err := tbl.Resolve("openai", "up/gpt-x")
	if err != nil {
		return "", err
	}
	return up.Key.Reveal(), nil
}

// TestReferenceRotationReachesEveryNodeAndGraceBounds runs, for each
// source, two keygate nodes over one database (SQLite file, and PostgreSQL
// when KEYGATE_TEST_POSTGRES_URL is set): a rotation at the source reaches
// both without a restart, a failing source is served from the sealed cache
// for its grace with an alert, and after the grace the key is refused.
func TestReferenceRotationReachesEveryNodeAndGraceBounds(t *testing.T) {
	dbs := map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "kg.db") },
		"postgres": func(t *testing.T) string { return storetest.PostgresURL(t) },
	}
	c := fakecloud.Start(t)
	src := sources.New(sourcestest.Config(c))
	type source struct {
		ref  string
		put  func(string)
		fail func(bool)
	}
	all := map[string]source{
		"aws": {"awssm://team/openai", func(v string) { c.SM.Put("team/openai", v) }, func(on bool) {
			if on {
				c.SM.Fail("AccessDeniedException")
			} else {
				c.SM.Fail("")
			}
		}},
		"azure": {"azkv://teamvault/openai", func(v string) { c.KeyVault.Put("openai", v) }, c.KeyVault.Fail},
		"gcp":   {"gcpsm://" + fakecloud.GCPProject + "/openai", func(v string) { c.GCPSM.Put(fakecloud.GCPProject, "openai", v) }, c.GCPSM.Fail},
		"vault": {"vault://kv/team/openai#api_key", func(v string) { c.Vault.Put("kv", "team/openai", map[string]any{"api_key": v}) }, c.Vault.Fail},
	}
	for dbName, newURL := range dbs {
		for name, s := range all {
			t.Run(dbName+"/"+name, func(t *testing.T) {
				url := newURL(t)
				kekBytes := make([]byte, 32)
				rand.Read(kekBytes)
				kek, err := vault.NewLocalKEK(kekBytes)
				if err != nil {
					t.Fatal(err)
				}
				clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
				al := &alerts{}
				a := newNode(t, url, kek, src, clk, al)
				b := newNode(t, url, kek, src, clk, al)
				ctx := context.Background()
				first, second := "fake-"+name+"-key-one", "fake-"+name+"-key-two"
				s.put(first)

				if err := a.st.CreateProvider(ctx, store.Provider{ID: "prv_up", Name: "up", Dialect: "openai", BaseURL: "https://upstream.invalid/v1",
					SecretID: "provider/prv_up", CreatedAt: clk.Now()}); err != nil {
					t.Fatal(err)
				}
				if err := a.st.PutSourceRef(ctx, store.SourceRef{RecordID: "provider/prv_up", Target: "provider:up", Ref: s.ref,
					RefreshEvery: time.Minute, Grace: 10 * time.Minute, NextRefreshAt: clk.Now(), CreatedAt: clk.Now()}); err != nil {
					t.Fatal(err)
				}
				// Never read: not served.
				if _, err := keyOf(t, b.load(t, clk)); !isUnavailable(err) {
					t.Fatalf("a reference never read must not be served: %v", err)
				}
				if n, err := a.ref.RefreshDue(ctx); err != nil || n != 1 {
					t.Fatalf("node a refreshed %d, %v", n, err)
				}
				if n, _ := b.ref.RefreshDue(ctx); n != 0 {
					t.Fatalf("node b read the source again within the interval (%d reads)", n)
				}
				for _, n := range []*node{a, b} {
					if k, err := keyOf(t, n.load(t, clk)); err != nil || k != first {
						t.Fatalf("before rotation: got %d bytes, %v", len(k), err)
					}
				}

				// Rotate at the source; node b's schedule picks it up, both serve it.
				s.put(second)
				clk.Add(61 * time.Second)
				if n, err := b.ref.RefreshDue(ctx); err != nil || n != 1 {
					t.Fatalf("node b refreshed %d, %v", n, err)
				}
				b.v.Forget("provider/prv_up")
				a.v.Forget("provider/prv_up") // its read cache would show the rotation within 5 s
				for _, n := range []*node{a, b} {
					if k, err := keyOf(t, n.load(t, clk)); err != nil || k != second {
						t.Fatalf("after rotation: got %d bytes, %v", len(k), err)
					}
				}

				// On demand: a refresh without waiting for the schedule.
				third := "fake-" + name + "-key-three"
				s.put(third)
				if err := a.ref.Refresh(ctx, "provider/prv_up"); err != nil {
					t.Fatal(err)
				}
				b.v.Forget("provider/prv_up")
				if k, _ := keyOf(t, b.load(t, clk)); k != third {
					t.Fatal("an on-demand refresh did not reach the other node")
				}

				// The source fails: the cache is served through the grace, with an alert.
				s.fail(true)
				clk.Add(61 * time.Second)
				if _, err := a.ref.RefreshDue(ctx); err != nil {
					t.Fatal(err)
				}
				if got := al.kinds(); len(got) != 1 || got[0] != sources.AlertUnreadable {
					t.Fatalf("alerts after the first failure: %v", got)
				}
				clk.Add(5 * time.Minute)
				if k, err := keyOf(t, b.load(t, clk)); err != nil || k != third {
					t.Fatalf("within the grace the cached key is served: %v", err)
				}
				ref, _ := a.st.GetSourceRef(ctx, "provider/prv_up")
				if ref.LastError == "" || strings.Contains(ref.LastError, third) {
					t.Fatalf("the failure is recorded without the value: %q", ref.LastError)
				}
				// Past the grace: refused on every node, and alerted.
				clk.Add(10 * time.Minute)
				for _, n := range []*node{a, b} {
					tbl := n.load(t, clk)
					_, err := keyOf(t, tbl)
					if !isUnavailable(err) || !strings.Contains(err.Error(), s.ref) {
						t.Fatalf("past the grace the key must not be served: %v", err)
					}
					if up, _ := tbl.Get("up"); !up.Key.IsZero() {
						t.Fatal("an unavailable provider carries no key")
					}
				}
				if _, err := b.ref.RefreshDue(ctx); err != nil {
					t.Fatal(err)
				}
				if got := al.kinds(); got[len(got)-1] != sources.AlertGraceExpired {
					t.Fatalf("alerts past the grace: %v", got)
				}
				// The source heals: served again, recovery alerted.
				s.fail(false)
				if err := b.ref.Refresh(ctx, "provider/prv_up"); err != nil {
					t.Fatal(err)
				}
				if k, err := keyOf(t, a.load(t, clk)); err != nil || k != third {
					t.Fatalf("after recovery: %v", err)
				}
				if got := al.kinds(); got[len(got)-1] != sources.AlertRecovered {
					t.Fatalf("alerts after recovery: %v", got)
				}
				// A value put into the record by anything but a source read is refused.
				if _, err := a.v.Put(ctx, "provider/prv_up", secretOf("fake-injected-value")); err != nil {
					t.Fatal(err)
				}
				a.v.Forget("provider/prv_up")
				if _, err := keyOf(t, a.load(t, clk)); !isUnavailable(err) {
					t.Fatalf("a value not read from the source must not be served: %v", err)
				}
				// Canary: no value in clear in the database.
				vs, _ := a.st.ListSecretVersions(ctx, "provider/prv_up")
				for _, v := range vs {
					for _, val := range []string{first, second, third} {
						if bytes.Contains(v.Ciphertext, []byte(val)) || bytes.Contains(v.WrappedDEK, []byte(val)) {
							t.Fatal("a referenced value is stored in clear")
						}
					}
				}
			})
		}
	}
}

func isUnavailable(err error) bool {
	var u *route.UnavailableError
	return errors.As(err, &u)
}
