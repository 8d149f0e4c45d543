package main

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/mcpgate"
	"github.com/keygate/keygate/internal/store/storetest"
)

// TestMCPGrantChangeReachesTheOtherNode: two nodes on one database; a
// person's authorization at an OAuth MCP server, made again or revoked
// through one node, is used (or refused) by the other at once, not when
// the grant it holds is next read (30 s): the change goes through the
// revocation log every node follows. SQLite always, PostgreSQL when
// KEYGATE_TEST_POSTGRES_URL is set.
func TestMCPGrantChangeReachesTheOtherNode(t *testing.T) {
	for name, db := range databases(t) {
		t.Run(name, func(t *testing.T) {
			if name == "postgres" && os.Getenv(storetest.PostgresEnv) == "" {
				t.Skip("set " + storetest.PostgresEnv + " to run against PostgreSQL")
			}
			cfg := testConfig(t, t.TempDir())
			cfg.Database = db(t)
			testMCPGrantOnTwoNodes(t, cfg)
		})
	}
}

func testMCPGrantOnTwoNodes(t *testing.T, cfg config.Config) {
	as := newFakeAS(t)
	up := newFakeOAuthMCP(t, as, as.srv.URL)
	as.resource = up.url
	a := start(t, cfg, "")
	b := start(t, secondNode(t, cfg), a.admin)
	a.mustCLI(nil, "", "mcp", "add", "notes", "--url", up.url, "--auth", "oauth", "--allow-private")
	alice := a.addUser("alice", "--role", "admin")
	aliceKey := a.keyAs(alice, "alice-agent", "--allow-tool", "notes/*")

	// authorize is alice authorizing keygate at the server through node a,
	// signed in there as upstreamUser.
	authorize := func(upstreamUser string) {
		t.Helper()
		ab := newBrowser(t)
		ab.signIn(a.addrs.Admin, alice)
		asURL, _ := url.Parse(as.srv.URL)
		ab.hc.Jar.SetCookies(asURL, []*http.Cookie{{Name: "as_user", Value: upstreamUser, Path: "/authorize"}})
		resp, body := ab.get(a.addrs.Admin + "/api/v1/me/mcp/notes/oauth/start")
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("start: %d %s", resp.StatusCode, body)
		}
		if resp, body = ab.get(resp.Header.Get("Location")); resp.StatusCode != http.StatusFound {
			t.Fatalf("authorize: %d %s", resp.StatusCode, body)
		}
		if resp, body = ab.get(resp.Header.Get("Location")); resp.StatusCode != http.StatusOK {
			t.Fatalf("callback: %d %s", resp.StatusCode, body)
		}
	}
	// whoami is alice's call through node b: the subject the server saw,
	// or the error.
	var cs *mcp.ClientSession
	whoami := func() (string, error) {
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}})
		if err != nil {
			return "", err
		}
		subject, _, _ := strings.Cut(resultText(res), " ")
		return subject, nil
	}
	// within waits at most a second for node b's answer to be want.
	within := func(what string, ok func(string, error) bool) {
		t.Helper()
		start := time.Now()
		for {
			got, err := whoami()
			if ok(got, err) {
				t.Logf("%s took effect on the other node after %v", what, time.Since(start).Round(time.Millisecond))
				return
			}
			if time.Since(start) > time.Second {
				t.Fatalf("%s: the other node still answers %q %v after a second", what, got, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	authorize("alice-upstream")
	until(t, "node b to serve the server", func() bool {
		if cs == nil {
			c := mcp.NewClient(&mcp.Implementation{Name: "test-agent", Version: "1.0.0"}, nil)
			s, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: b.addrs.Gateway + mcpgate.PathPrefix + "notes",
				HTTPClient: &http.Client{Transport: bearer{aliceKey}}, MaxRetries: -1}, nil)
			if err != nil {
				return false
			}
			cs = s
			t.Cleanup(func() { _ = cs.Close() })
		}
		got, err := whoami()
		return err == nil && got == "subject=alice-upstream"
	})

	// Authorized again as another account at the server, through node a:
	// node b drops the grant it holds and uses the new one.
	authorize("alice-second")
	within("a new authorization", func(got string, err error) bool { return err == nil && got == "subject=alice-second" })

	// Revoked through node a: node b refuses at once.
	a.mustAs(alice, "mcp", "auth", "notes", "--revoke")
	within("a revocation", func(_ string, err error) bool {
		return err != nil && rpcCode(err) == mcpgate.CodeForbidden && strings.Contains(err.Error(), "keygate mcp auth notes")
	})
}
