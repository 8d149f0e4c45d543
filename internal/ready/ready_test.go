package ready_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/ready"
)

// part is a dependency whose health the test switches, counting probes.
type part struct {
	mu    sync.Mutex
	err   error
	calls atomic.Int64
}

func (p *part) set(err error) { p.mu.Lock(); p.err = err; p.mu.Unlock() }

func (p *part) probe(context.Context) error {
	p.calls.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// clock is a manual clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func get(t *testing.T, h http.Handler, method string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, "/readyz", nil))
	return rec.Code, rec.Body.String()
}

// TestReadyOnlyWhileEveryPartServes: a load balancer sees 200 while every
// part serves, 503 naming the failing part as soon as it is re-checked, and
// 200 again once it recovers; the cause (an internal address here) stays
// out of the answer and goes to the log, once.
func TestReadyOnlyWhileEveryPartServes(t *testing.T) {
	store, kek := &part{}, &part{}
	clk := &clock{now: time.Unix(1_800_000_000, 0)}
	var logs bytes.Buffer
	c := ready.New(ready.Options{Log: slog.New(slog.NewTextHandler(&logs, nil)), Now: clk.Now},
		ready.Check{Name: "store", Probe: store.probe},
		ready.Check{Name: "kek", Probe: kek.probe, Every: time.Minute})

	code, body := get(t, c, http.MethodGet)
	if code != 200 || body != "ready\nstore ok\nkek ok\n" {
		t.Fatalf("all parts up: %d %q", code, body)
	}

	store.set(errors.New("dial tcp 10.1.2.3:5432: connection refused"))
	code, body = get(t, c, http.MethodGet)
	if code != 200 {
		t.Fatalf("within the check interval the last result stands: %d %q", code, body)
	}
	clk.add(ready.MinInterval)
	for range 3 {
		code, body = get(t, c, http.MethodGet)
		if code != 503 || body != "not ready\nstore failing\nkek ok\n" {
			t.Fatalf("store down: %d %q", code, body)
		}
		clk.add(ready.MinInterval)
	}
	if strings.Contains(body, "10.1.2.3") {
		t.Fatalf("the probe's answer carries the cause: %q", body)
	}
	if n := strings.Count(logs.String(), "not ready: store"); n != 1 {
		t.Fatalf("the failure is logged %d times, want once per change:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "10.1.2.3:5432") {
		t.Fatalf("the log does not say why the store failed:\n%s", logs.String())
	}

	store.set(nil)
	code, body = get(t, c, http.MethodGet)
	if code != 200 || body != "ready\nstore ok\nkek ok\n" {
		t.Fatalf("store back: %d %q", code, body)
	}
	if !strings.Contains(logs.String(), "ready again: store") {
		t.Fatalf("recovery not logged:\n%s", logs.String())
	}

	// The KEK is probed at most once a minute, however often the probe comes.
	kek.set(errors.New("kms: AccessDeniedException"))
	before := kek.calls.Load()
	for range 20 {
		clk.add(time.Second)
		if code, _ := get(t, c, http.MethodGet); code != 200 {
			t.Fatalf("the KEK was probed again before its interval")
		}
	}
	if got := kek.calls.Load() - before; got != 0 {
		t.Fatalf("%d KEK probes within its interval, want 0", got)
	}
	clk.add(time.Minute)
	if code, body := get(t, c, http.MethodGet); code != 503 || !strings.Contains(body, "kek failing") {
		t.Fatalf("KEK down after its interval: %d %q", code, body)
	}
}

// TestAHungPartIsNotReady: a check that does not answer within the timeout
// fails instead of holding the probe.
func TestAHungPartIsNotReady(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	c := ready.New(ready.Options{Timeout: 50 * time.Millisecond},
		ready.Check{Name: "limits", Probe: func(ctx context.Context) error {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return ctx.Err()
		}})
	res := c.Check(context.Background())
	if len(res) != 1 || res[0].Err == nil || !strings.Contains(res[0].Err.Error(), "no answer within") {
		t.Fatalf("hung check: %+v", res)
	}
}

// TestAPanickingCheckIsNotReady: a check that panics fails; the probe
// itself keeps answering.
func TestAPanickingCheckIsNotReady(t *testing.T) {
	c := ready.New(ready.Options{}, ready.Check{Name: "audit", Probe: func(context.Context) error { panic("boom") }})
	if code, body := get(t, c, http.MethodGet); code != 503 || body != "not ready\naudit failing\n" {
		t.Fatalf("panicking check: %d %q", code, body)
	}
}

// TestStoppingIsNotReady: once shutdown begins every probe says so, so the
// load balancer stops sending new requests while in-flight ones drain.
func TestStoppingIsNotReady(t *testing.T) {
	c := ready.New(ready.Options{}, ready.Check{Name: "store", Probe: func(context.Context) error { return nil }})
	if code, _ := get(t, c, http.MethodGet); code != 200 {
		t.Fatal("not ready before stopping")
	}
	c.Stop()
	if code, body := get(t, c, http.MethodGet); code != 503 || body != "not ready\nstore shutting down\n" {
		t.Fatalf("after Stop: %d %q", code, body)
	}
}

// TestOnlyGetAndHead: the probe changes nothing and takes no body.
func TestOnlyGetAndHead(t *testing.T) {
	c := ready.New(ready.Options{}, ready.Check{Name: "store", Probe: func(context.Context) error { return nil }})
	if code, _ := get(t, c, http.MethodHead); code != 200 {
		t.Fatalf("HEAD: %d", code)
	}
	rec := httptest.NewRecorder()
	c.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/readyz", strings.NewReader("x")))
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
		t.Fatalf("POST: %d %q %v", rec.Code, body, rec.Header())
	}
}

// TestADegradingPartKeepsTheNodeReady: a shared part the node can serve
// without reads "degraded" when it fails after having passed, and the node
// stays ready; before it ever passed it keeps the node out; a failing part
// that is needed still makes it not ready; stopping overrides all.
func TestADegradingPartKeepsTheNodeReady(t *testing.T) {
	limits, store := &part{}, &part{}
	clk := &clock{now: time.Unix(1_800_000_000, 0)}
	var logs bytes.Buffer
	c := ready.New(ready.Options{Log: slog.New(slog.NewTextHandler(&logs, nil)), Now: clk.Now},
		ready.Check{Name: "store", Probe: store.probe},
		ready.Check{Name: "limits", Probe: limits.probe, Degrades: true})
	// A shared part that never answered since the start keeps the node
	// out: it may be a wrong address.
	limits.set(errors.New("dial tcp 10.9.8.7:6379: connection refused"))
	if code, body := get(t, c, http.MethodGet); code != 503 || body != "not ready\nstore ok\nlimits failing\n" {
		t.Fatalf("a degrading part that never passed: %d %q", code, body)
	}
	limits.set(nil)
	clk.add(ready.MinInterval)
	if code, _ := get(t, c, http.MethodGet); code != 200 {
		t.Fatalf("all parts up: %d", code)
	}
	limits.set(errors.New("dial tcp 10.9.8.7:6379: connection refused"))
	clk.add(ready.MinInterval)
	if code, body := get(t, c, http.MethodGet); code != 200 || body != "ready\nstore ok\nlimits degraded\n" {
		t.Fatalf("degraded part: %d %q", code, body)
	}
	if !strings.Contains(logs.String(), "degraded: limits") || !strings.Contains(logs.String(), "10.9.8.7") {
		t.Fatalf("the log does not say the node is degraded and why:\n%s", logs.String())
	}
	store.set(errors.New("database is locked"))
	clk.add(ready.MinInterval)
	if code, body := get(t, c, http.MethodGet); code != 503 || body != "not ready\nstore failing\nlimits degraded\n" {
		t.Fatalf("needed part down too: %d %q", code, body)
	}
	store.set(nil)
	c.Stop()
	if code, body := get(t, c, http.MethodGet); code != 503 || body != "not ready\nstore shutting down\nlimits shutting down\n" {
		t.Fatalf("stopping: %d %q", code, body)
	}
}
