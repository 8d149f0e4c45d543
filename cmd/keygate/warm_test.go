package main

import (
	"fmt"
	"maps"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/netfault"
	"github.com/keygate/keygate/internal/store/storetest"
)

// TestNewKeyServedThroughADatabaseOutageOnEveryNode: a key created or
// rotated through one node is read ahead by every other node within a
// second, so a database outage that starts just after does not find it
// unknown on a node that has not served it yet (it would answer 503
// auth_unavailable there).
func TestNewKeyServedThroughADatabaseOutageOnEveryNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two keygate processes")
	}
	db, through, link := postgresThroughLink(t)
	up := newUpstreams(t, fakeprovider.Options{}, fakeprovider.Options{})
	env := map[string]string{"KEYGATE_DATABASE": db, "KEYGATE_KEK": randomKeyURL(t), "KEYGATE_PROVIDER_REFRESH": "200ms"}
	var nodes []*proc
	for i := range 2 {
		e := maps.Clone(env)
		if i == 1 {
			e["KEYGATE_DATABASE"] = through // only node 2's database link is cut
		}
		nodes = append(nodes, startProc(t, e, "serve", "--data-dir", filepath.Join(t.TempDir(), fmt.Sprint(i)), "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"))
	}
	in := &instance{t: t, admin: nodes[0].admin}
	in.addrs.Admin = nodes[0].adminU
	in.register(up)
	other := gatewayOf(t, nodes[1])
	chat := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
	// Node 2 knows the providers before its database goes.
	deadline := time.Now().Add(15 * time.Second)
	warm := in.createKey("--name", "served-before")
	for {
		if code, _ := postJSON(t, other+"/v1/chat/completions", warm, chat); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node 2 never served a key")
		}
		time.Sleep(50 * time.Millisecond)
	}

	created := in.createKey("--name", "created-just-before")
	time.Sleep(2 * time.Second) // every change reaches every node within a second
	link.Cut(true)
	if code, body := postJSON(t, other+"/v1/chat/completions", created, chat); code != 200 {
		t.Fatalf("a key created through node 1 a moment before node 2 lost its database: %d %s", code, body)
	}
	if code, body := postJSON(t, other+"/v1/chat/completions", "kg_test_notakeyatall", chat); code == 200 {
		t.Fatalf("a key keygate never issued, with the database down: %d %s", code, body)
	}
}

// postgresThroughLink returns the test PostgreSQL's URL, the same database
// reached through a fault proxy, and the proxy, which the test cuts.
func postgresThroughLink(t *testing.T) (direct, through string, link *netfault.Proxy) {
	t.Helper()
	db, err := url.Parse(storetest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	link, err = netfault.New(db.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { link.Close() })
	via := *db
	via.Host = link.Addr()
	return db.String(), via.String(), link
}
