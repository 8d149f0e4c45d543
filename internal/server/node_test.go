package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/store/storetest"
)

// syncBuffer collects a node's output safely across goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// databases names the stores the node tests run against: SQLite in the
// data directory always, PostgreSQL when KEYGATE_TEST_POSTGRES_URL is set.
var databases = []struct {
	name string
	url  func(t *testing.T) string
}{
	{"sqlite", func(*testing.T) string { return "" }},
	{"postgres", func(t *testing.T) string { return storetest.PostgresURL(t) }},
}

// testConfig is a small configuration on kernel-chosen loopback ports,
// with the refresh and janitor timers short enough for a test to watch
// them work, and keys trusted for an hour so that only a revocation can
// end a cached key early.
func testConfig(dataDir, dbURL string) config.Config {
	cfg := config.Default(filepath.Dir(dataDir))
	cfg.DataDir = dataDir
	cfg.Database = dbURL
	cfg.Listen = "127.0.0.1:0"
	cfg.AdminListen = "127.0.0.1:0"
	cfg.ShutdownGrace = 5 * time.Second
	cfg.KeyCacheTTL = time.Hour
	cfg.ProviderRefresh = 100 * time.Millisecond
	cfg.Vault.JanitorInterval = 100 * time.Millisecond
	cfg.Sources.Poll = 100 * time.Millisecond
	cfg.Log.Requests = false
	return cfg
}

// testNode is a node a test built and serves.
type testNode struct {
	*Node
	t      *testing.T
	stdout *syncBuffer
	stderr *syncBuffer
	cancel context.CancelFunc
	served chan error
	done   bool
}

// startNode builds a node from cfg, lets tune adjust it (its task table)
// before it serves, and serves it until the test ends or shutdown is called.
func startNode(t *testing.T, cfg config.Config, tune func(*Node)) *testNode {
	t.Helper()
	tn := &testNode{t: t, stdout: &syncBuffer{}, stderr: &syncBuffer{}, served: make(chan error, 1)}
	ready := make(chan Listening, 1)
	n, err := Build(context.Background(), cfg, tn.stdout, tn.stderr, WithReady(func(l Listening) { ready <- l }))
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	tn.Node = n
	if tune != nil {
		tune(n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tn.cancel = cancel
	go func() { tn.served <- n.Serve(ctx) }()
	select {
	case <-ready:
	case err := <-tn.served:
		t.Fatalf("serve: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the node did not serve within 30s")
	}
	t.Cleanup(func() {
		if !tn.done {
			if err := tn.shutdown(); err != nil {
				t.Errorf("shutdown: %v", err)
			}
		}
		if t.Failed() {
			t.Logf("node log:\n%s", tn.stderr.String())
		}
	})
	return tn
}

// shutdown ends Serve and shuts the node down.
func (tn *testNode) shutdown() error {
	tn.done = true
	tn.cancel()
	if err := <-tn.served; err != nil {
		return fmt.Errorf("serve returned %w", err)
	}
	return tn.Shutdown(context.Background())
}

// setEvery changes a task's interval; call it before the node serves.
func setEvery(t *testing.T, n *Node, name string, every time.Duration) {
	t.Helper()
	for i := range n.runner.tasks {
		if n.runner.tasks[i].name == name {
			n.runner.tasks[i].every = every
			return
		}
	}
	t.Fatalf("no task named %q", name)
}

// taskRuns reports how often the named task has run.
func taskRuns(n *Node, name string) int64 {
	for i, tk := range n.runner.tasks {
		if tk.name == name {
			return n.runner.stats[i].runs.Load()
		}
	}
	return -1
}

// waitFor polls cond until it holds or 10 seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within 10s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const fakeUpstreamKey = "upstream-test-key-not-real"

// fakeUpstream is an OpenAI-compatible upstream for the test.
func fakeUpstream(t *testing.T) string {
	srv := httptest.NewServer(fakeprovider.NewOpenAI(fakeprovider.Options{APIKey: fakeUpstreamKey}))
	t.Cleanup(srv.Close)
	return srv.URL + "/v1"
}

// addProvider registers a provider the way another node sharing the
// database would: its key sealed in the vault, its row in the store. It
// serves gpt-* models.
func addProvider(t *testing.T, n *Node, name, baseURL string) {
	t.Helper()
	ctx := context.Background()
	p := store.Provider{ID: "prv_" + name, Name: name, Dialect: "openai", BaseURL: baseURL, Models: []string{"gpt-*"},
		IsDefault: true, CreatedAt: time.Now().UTC()}
	p.SecretID = "provider/" + p.ID
	if _, err := n.core.vault.Put(ctx, p.SecretID, secret.New(fakeUpstreamKey)); err != nil {
		t.Fatal(err)
	}
	if err := n.core.st.CreateProvider(ctx, p); err != nil {
		t.Fatal(err)
	}
}

// addKey issues a keygate key straight into the store, and returns its id
// and its secret.
func addKey(t *testing.T, n *Node, name string, mod func(*store.Key)) (string, string) {
	t.Helper()
	raw, err := apikey.Generate("test")
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := apikey.Parse(raw.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	h := n.core.hasher.Hash(raw.Reveal())
	k := store.Key{ID: "key_" + name, Name: name, Env: "test", Prefix: parsed.Prefix, Hash: h[:], CreatedAt: time.Now().UTC()}
	if mod != nil {
		mod(&k)
	}
	if err := n.core.st.CreateKey(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	return k.ID, raw.Reveal()
}

// chat sends one chat completion through the node's gateway and returns its status.
func chat(t *testing.T, n *Node, key string) int {
	t.Helper()
	req, err := http.NewRequest("POST", n.Listening().Gateway+"/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

var adminCredential = regexp.MustCompile(`kg_admin_[0-9A-Za-z]+`)

// TestBuildServeShutdown: a node built from the smallest configuration
// serves both listeners (the admin API with the credential its first start
// printed), proxies a call, and shuts down cleanly, closing its store.
func TestBuildServeShutdown(t *testing.T) {
	for _, db := range databases {
		t.Run(db.name, func(t *testing.T) {
			cfg := testConfig(filepath.Join(t.TempDir(), "data"), db.url(t))
			tn := startNode(t, cfg, nil)
			cred := adminCredential.FindString(tn.stdout.String())
			if cred == "" {
				t.Fatalf("a first start printed no admin credential:\n%s", tn.stdout.String())
			}
			if !strings.Contains(tn.stdout.String(), "keygate gateway listening on "+tn.Listening().Gateway) {
				t.Fatalf("no listening line:\n%s", tn.stdout.String())
			}
			req, _ := http.NewRequest("GET", tn.Listening().Admin+adminapi.Prefix+"/keys", nil)
			req.Header.Set("Authorization", "Bearer "+cred)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("admin API with the printed credential: %d", resp.StatusCode)
			}
			addProvider(t, tn.Node, "fake", fakeUpstream(t))
			_, key := addKey(t, tn.Node, "app", nil)
			waitFor(t, "a call through the gateway", func() bool { return chat(t, tn.Node, key) == http.StatusOK })

			if err := tn.shutdown(); err != nil {
				t.Fatalf("shutdown: %v", err)
			}
			if _, err := tn.core.st.ListKeys(context.Background()); err == nil {
				t.Fatal("the store is still open after shutdown")
			}
			if _, err := http.Get(tn.Listening().Gateway + "/"); err == nil {
				t.Fatal("the gateway still accepts connections after shutdown")
			}
			if err := tn.Shutdown(context.Background()); err != nil {
				t.Fatalf("a second Shutdown: %v", err)
			}
		})
	}
}

// TestSecondBuildReusesTheDataDirectory: after a clean shutdown, a second
// node on the same data directory and database opens the same vault (the
// key issued before works), prints no new admin credential, and continues
// the audit chain.
func TestSecondBuildReusesTheDataDirectory(t *testing.T) {
	for _, db := range databases {
		t.Run(db.name, func(t *testing.T) {
			cfg := testConfig(filepath.Join(t.TempDir(), "data"), db.url(t))
			upstream := fakeUpstream(t)
			first := startNode(t, cfg, nil)
			addProvider(t, first.Node, "fake", upstream)
			_, key := addKey(t, first.Node, "app", nil)
			waitFor(t, "a call through the first node", func() bool { return chat(t, first.Node, key) == http.StatusOK })
			if err := first.shutdown(); err != nil {
				t.Fatal(err)
			}

			second := startNode(t, cfg, nil)
			if adminCredential.MatchString(second.stdout.String()) {
				t.Fatal("a second start printed a new admin credential")
			}
			if got := chat(t, second.Node, key); got != http.StatusOK {
				t.Fatalf("the key issued before the restart: %d", got)
			}
			if err := second.shutdown(); err != nil {
				t.Fatal(err)
			}
			st := storetest.Open(t, cfg.DatabaseURL())
			recs, err := st.SearchAudit(context.Background(), store.AuditFilter{Type: "request"})
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) < 2 || recs[0].Node != recs[len(recs)-1].Node {
				t.Fatalf("want both nodes' requests on one chain, got %d records", len(recs))
			}
			if strings.Contains(second.stderr.String(), "tampered") || strings.Contains(second.stderr.String(), "audit trail was cut") {
				t.Fatalf("the restart reported a broken audit chain:\n%s", second.stderr.String())
			}
		})
	}
}

// TestShutdownFlushes: what the last requests left in memory reaches the
// database at shutdown though no timer fired: the audit trail (flush
// interval one hour), last-used times, usage and risk histories.
func TestShutdownFlushes(t *testing.T) {
	for _, db := range databases {
		t.Run(db.name, func(t *testing.T) {
			cfg := testConfig(filepath.Join(t.TempDir(), "data"), db.url(t))
			cfg.Audit.FlushInterval = time.Hour
			tn := startNode(t, cfg, func(n *Node) {
				for _, name := range []string{"last-used", "usage", "risk-histories"} {
					setEvery(t, n, name, time.Hour)
				}
			})
			addProvider(t, tn.Node, "fake", fakeUpstream(t))
			id, key := addKey(t, tn.Node, "app", nil)
			waitFor(t, "a call through the gateway", func() bool { return chat(t, tn.Node, key) == http.StatusOK })
			ctx := context.Background()
			st := tn.core.st
			if k, _ := st.GetKey(ctx, id); k.LastUsedAt != nil {
				t.Fatal("last use was written before shutdown; the test proves nothing")
			}
			if recs, _ := st.SearchAudit(ctx, store.AuditFilter{KeyID: id, Type: "request"}); len(recs) != 0 {
				t.Fatal("the request's audit event was written before shutdown; the test proves nothing")
			}

			if err := tn.shutdown(); err != nil {
				t.Fatal(err)
			}
			st = storetest.Open(t, cfg.DatabaseURL())
			k, err := st.GetKey(ctx, id)
			if err != nil || k.LastUsedAt == nil {
				t.Fatalf("last use after shutdown: %v %v", k.LastUsedAt, err)
			}
			recs, err := st.SearchAudit(ctx, store.AuditFilter{KeyID: id, Type: "request"})
			if err != nil || len(recs) == 0 {
				t.Fatalf("the request's audit event after shutdown: %d (%v)", len(recs), err)
			}
			rows, err := st.ListUsage(ctx, id, "2000-01-01")
			if err != nil || len(rows) == 0 || rows[0].Requests == 0 {
				t.Fatalf("usage after shutdown: %+v (%v)", rows, err)
			}
			h, err := st.LoadKeyHistory(ctx, id)
			if err != nil || len(h) == 0 {
				t.Fatalf("risk history after shutdown: %q (%v)", h, err)
			}
		})
	}
}

// TestServeReturnsOnContextEnd: Serve returns nil when its context ends,
// and the listeners keep answering until Shutdown, so in-flight requests
// can finish.
func TestServeReturnsOnContextEnd(t *testing.T) {
	cfg := testConfig(filepath.Join(t.TempDir(), "data"), "")
	n, err := Build(context.Background(), cfg, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := n.Serve(ctx); err != nil {
		t.Fatalf("serve: %v", err)
	}
	if err := n.Serve(context.Background()); err == nil {
		t.Fatal("a second Serve was accepted")
	}
	resp, err := http.Get(n.Listening().Admin + adminapi.Prefix + "/keys")
	if err != nil {
		t.Fatalf("the admin listener stopped before Shutdown: %v", err)
	}
	resp.Body.Close()
	if err := n.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(n.Listening().Admin + adminapi.Prefix + "/keys"); err == nil {
		t.Fatal("the admin listener answers after Shutdown")
	}
}

// TestShutdownWithoutServe: a node built and never served shuts down
// cleanly: its ports are free again and its store is closed.
func TestShutdownWithoutServe(t *testing.T) {
	cfg := testConfig(filepath.Join(t.TempDir(), "data"), "")
	n, err := Build(context.Background(), cfg, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{n.Listening().Gateway, n.Listening().Admin} {
		ln, err := net.Listen("tcp", strings.TrimPrefix(u, "http://"))
		if err != nil {
			t.Fatalf("%s stayed bound: %v", u, err)
		}
		ln.Close()
	}
	if _, err := n.core.st.ListKeys(context.Background()); err == nil {
		t.Fatal("the store is still open after shutdown")
	}
}
