package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// readyz fetches the gateway's readiness probe, unauthenticated, as a load
// balancer or the kubelet does.
func readyz(t *testing.T, in *instance) (int, string) {
	t.Helper()
	resp, err := http.Get(in.addrs.Gateway + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestReadyzOnDefaults: keygate on its embedded defaults is ready once it
// listens: the SQLite store answers, the local KEK wraps and unwraps, and
// the audit trail keeps up. /healthz stays plain.
func TestReadyzOnDefaults(t *testing.T) {
	for name, db := range databases(t) {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
			cfg.Database = db(t)
			in := start(t, cfg, "")
			code, body := readyz(t, in)
			if code != http.StatusOK || body != "ready\nstore ok\nkek ok\naudit ok\n" {
				t.Fatalf("/readyz = %d %q", code, body)
			}
		})
	}
}

// TestReadyzWithoutItsRedis: a node whose limits live in a Redis it has
// never reached is alive (/healthz) but not ready, with outage leases or
// without: it may be a wrong address, and it holds no lease to serve
// from. (A Redis that answered once and then stopped only degrades a node
// with leases: TestQuotaThroughARedisOutage.) The answer names the part
// and not the address; the log says why.
func TestReadyzWithoutItsRedis(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // nothing listens there now: connections are refused

	for _, tc := range []struct {
		lease     float64
		code      int
		body, log string
	}{
		{0.05, http.StatusServiceUnavailable, "not ready\nstore ok\nkek ok\nlimits failing\naudit ok\n", "not ready: limits"},
		{0, http.StatusServiceUnavailable, "not ready\nstore ok\nkek ok\nlimits failing\naudit ok\n", "not ready: limits"},
	} {
		t.Run(fmt.Sprintf("outage_lease=%g", tc.lease), func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
			cfg.Limits.Redis = "redis://" + dead + "/0"
			cfg.Limits.OutageLease = tc.lease
			in := start(t, cfg, "")
			code, body := readyz(t, in)
			if code != tc.code || body != tc.body {
				t.Fatalf("/readyz = %d %q, want %d %q", code, body, tc.code, tc.body)
			}
			if strings.Contains(body, dead) {
				t.Fatalf("the unauthenticated probe names the Redis address: %q", body)
			}
			resp, err := http.Get(in.addrs.Gateway + "/healthz")
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("/healthz while not ready: %v %v", resp, err)
			}
			resp.Body.Close()
			deadline := time.Now().Add(5 * time.Second)
			for !strings.Contains(in.stderr.String(), tc.log) {
				if time.Now().After(deadline) {
					t.Fatalf("the log does not say why keygate is %s:\n%s", tc.log, in.stderr.String())
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// TestReadyzWithRedis: with its Redis up the same node is ready.
func TestReadyzWithRedis(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Limits.Redis = redisURL(t)
	in := start(t, cfg, "")
	if code, body := readyz(t, in); code != http.StatusOK || body != "ready\nstore ok\nkek ok\nlimits ok\naudit ok\n" {
		t.Fatalf("/readyz = %d %q", code, body)
	}
}
