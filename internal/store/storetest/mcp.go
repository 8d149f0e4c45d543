package storetest

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/store"
)

// testMCPServers: MCP servers round-trip with every field, are listed by
// name, refuse a second of one name, are removed, and survive a restart
// seen from a second node.
func testMCPServers(t *testing.T, newURL func(testing.TB) string) {
	url := newURL(t)
	s := Open(t, url)
	remote := store.MCPServer{ID: "mcp_1", Name: "github", Transport: "http", URL: "https://mcp.example.test/mcp",
		Auth: "header", AuthHeader: "X-Api-Token", Secret: "github-token", Options: []byte(`{"call_timeout":"30s"}`),
		AllowPrivate: true, CreatedAt: at(time.Hour)}
	local := store.MCPServer{ID: "mcp_2", Name: "everything", Transport: "stdio", Auth: "none",
		Command: []string{"node", "dist/index.js", "stdio"}, Env: map[string]string{"DATABASE_URL": "secret:pg-url", "MODE": "x"},
		CreatedAt: at(2 * time.Hour)}
	must(t, s.CreateMCPServer(ctx(t), remote))
	must(t, s.CreateMCPServer(ctx(t), local))
	wantErr(t, s.CreateMCPServer(ctx(t), store.MCPServer{ID: "mcp_3", Name: "github", Transport: "http", CreatedAt: at(0)}), store.ErrConflict, "CreateMCPServer with a duplicate name")

	other := Open(t, url) // another node on the same database
	check := func(got, want store.MCPServer) {
		t.Helper()
		if got.ID != want.ID || got.Name != want.Name || got.Transport != want.Transport || got.URL != want.URL ||
			got.Auth != want.Auth || got.AuthHeader != want.AuthHeader || got.Secret != want.Secret || got.AllowPrivate != want.AllowPrivate {
			t.Errorf("MCP server = %+v, want %+v", got, want)
		}
		if !slices.Equal(got.Command, want.Command) || !maps.Equal(got.Env, want.Env) {
			t.Errorf("MCP server %s command/env = %v %v, want %v %v", got.Name, got.Command, got.Env, want.Command, want.Env)
		}
		wantOpts := string(want.Options)
		if wantOpts == "" {
			wantOpts = "{}"
		}
		if string(got.Options) != wantOpts {
			t.Errorf("MCP server %s options = %s, want %s", got.Name, got.Options, wantOpts)
		}
		checkTime(t, "CreatedAt", got.CreatedAt, want.CreatedAt)
	}
	got, err := other.GetMCPServer(ctx(t), "github")
	must(t, err)
	check(got, remote)
	list, err := other.ListMCPServers(ctx(t))
	must(t, err)
	if len(list) != 2 {
		t.Fatalf("ListMCPServers returned %d servers, want 2", len(list))
	}
	check(list[0], local) // everything < github
	check(list[1], remote)

	// Options are replaced whole, and seen by the other node.
	limited := remote
	limited.Options = []byte(`{"rpm":5,"tool_limits":[{"tool":"delete_*","per_day":3}]}`)
	set, err := s.SetMCPServerOptions(ctx(t), "github", limited.Options)
	must(t, err)
	check(set, limited)
	got, err = other.GetMCPServer(ctx(t), "github")
	must(t, err)
	check(got, limited)
	_, err = s.SetMCPServerOptions(ctx(t), "missing", []byte("{}"))
	wantErr(t, err, store.ErrNotFound, "SetMCPServerOptions of an unknown server")

	must(t, other.DeleteMCPServer(ctx(t), "github"))
	_, err = s.GetMCPServer(ctx(t), "github")
	wantErr(t, err, store.ErrNotFound, "GetMCPServer after delete")
	wantErr(t, s.DeleteMCPServer(ctx(t), "github"), store.ErrNotFound, "second DeleteMCPServer")

	// A key's tool patterns, allow and deny, round-trip and are replaced whole.
	k := bareKey("key_tools", "agent")
	k.AllowTools = []string{"github/*", "!github/delete_*"}
	must(t, s.CreateKey(ctx(t), k))
	back, err := other.GetKey(ctx(t), k.ID)
	must(t, err)
	checkList(t, "AllowTools", back.AllowTools, k.AllowTools)
	upd, err := s.SetKeyTools(ctx(t), k.ID, []string{"everything/echo"})
	must(t, err)
	checkList(t, "AllowTools", upd.AllowTools, []string{"everything/echo"})
	_, err = s.SetKeyTools(ctx(t), "key_missing", nil)
	wantErr(t, err, store.ErrNotFound, "SetKeyTools of an unknown key")

	// A key's leak action round-trips, is set and cleared.
	lk := bareKey("key_leaks", "researcher")
	lk.LeakAction = "alert"
	must(t, s.CreateKey(ctx(t), lk))
	if back, err = other.GetKey(ctx(t), lk.ID); err != nil || back.LeakAction != "alert" {
		t.Fatalf("GetKey leak action = %q, %v; want alert", back.LeakAction, err)
	}
	if upd, err = s.SetKeyLeakAction(ctx(t), lk.ID, "redact"); err != nil || upd.LeakAction != "redact" {
		t.Fatalf("SetKeyLeakAction = %q, %v; want redact", upd.LeakAction, err)
	}
	if upd, err = s.SetKeyLeakAction(ctx(t), lk.ID, ""); err != nil || upd.LeakAction != "" {
		t.Fatalf("SetKeyLeakAction to the default = %q, %v", upd.LeakAction, err)
	}
	_, err = s.SetKeyLeakAction(ctx(t), "key_missing", "alert")
	wantErr(t, err, store.ErrNotFound, "SetKeyLeakAction of an unknown key")
}
