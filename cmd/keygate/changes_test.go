package main

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/store/storetest"
)

// TestChangesReachEveryNodeWithinASecond: with the periodic reload set to an
// hour, a provider added and a key group's limit tightened through one node
// are in force on another node within a second, on a shared PostgreSQL
// database (pushed by NOTIFY) and on a shared SQLite file (read from the
// change generations). A new user adding a provider and sending traffic
// through a load balancer no longer meets 404 "no provider serves model"
// from the other nodes.
func TestChangesReachEveryNodeWithinASecond(t *testing.T) {
	if testing.Short() {
		t.Skip("starts keygate processes")
	}
	dbs := map[string]func() string{
		"sqlite":   func() string { return "sqlite://" + filepath.Join(t.TempDir(), "shared.db") },
		"postgres": func() string { return storetest.PostgresURL(t) },
	}
	for name, db := range dbs {
		t.Run(name, func(t *testing.T) {
			up := newUpstreams(t, fakeprovider.Options{}, fakeprovider.Options{})
			env := map[string]string{
				"KEYGATE_DATABASE": db(), "KEYGATE_KEK": randomKeyURL(t),
				"KEYGATE_PROVIDER_REFRESH": "1h", "KEYGATE_LOG_REQUESTS": "false",
			}
			var nodes []*proc
			for i := range 2 {
				nodes = append(nodes, startProc(t, env, "serve", "--data-dir", filepath.Join(t.TempDir(), fmt.Sprint(i)), "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"))
			}
			in := &instance{t: t, admin: nodes[0].admin}
			in.addrs.Admin = nodes[0].adminU
			other := gatewayOf(t, nodes[1])
			in.mustCLI(nil, "", "group", "create", "agents")
			key := in.createKey("--name", "agent", "--group", "agents")
			chat := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
			if code, _ := postJSON(t, other+"/v1/chat/completions", key, chat); code != 404 {
				t.Fatalf("before any provider, node 2 answered %d, want 404", code)
			}

			in.register(up)
			start := time.Now()
			waitWithin(t, time.Second, "the provider added through node 1 serving on node 2", func() bool {
				code, _ := postJSON(t, other+"/v1/chat/completions", key, chat)
				return code == 200
			})
			t.Logf("%s: provider added through node 1 served by node 2 after %v", name, time.Since(start))

			in.mustCLI(nil, "", "group", "update", "agents", "--rpm", "1")
			start = time.Now()
			waitWithin(t, time.Second, "the group's new limit refusing on node 2", func() bool {
				code, _ := postJSON(t, other+"/v1/chat/completions", key, chat)
				return code == 429
			})
			t.Logf("%s: group limit set through node 1 in force on node 2 after %v", name, time.Since(start))
		})
	}
}

// waitWithin polls cond every 20ms and fails the test if it is not true
// within d of the call.
func waitWithin(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
