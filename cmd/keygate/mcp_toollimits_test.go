package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/keygate/keygate/internal/mcpgate"
)

// TestMCPToolLimits: limits per tool, set with keygate mcp add and
// changed with keygate mcp update, refuse a key's calls past them with a
// JSON-RPC error naming the tool, the limit and when to retry, before the
// call reaches the server; a glob's tools share its limit; tools without
// one are held only to the server's limits.
func TestMCPToolLimits(t *testing.T) {
	var (
		mu    sync.Mutex
		calls = map[string]int{}
	)
	release := make(chan struct{})
	srv := mcp.NewServer(&mcp.Implementation{Name: "forge", Version: "1.0.0"}, nil)
	for _, name := range []string{"create_issue", "delete_repo", "delete_branch", "echo", "slow"} {
		mcp.AddTool(srv, &mcp.Tool{Name: name, Description: "the " + name + " tool"},
			func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
				mu.Lock()
				calls[name]++
				mu.Unlock()
				if name == "slow" {
					select {
					case <-release:
					case <-ctx.Done():
					}
				}
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: name + " done"}}}, nil, nil
			})
	}
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	t.Cleanup(func() { ts.CloseClientConnections(); ts.Close() })

	in := start(t, testConfig(t, t.TempDir()), "")
	// A limit keygate cannot read is refused with the form it takes.
	_, stderr, err := in.cli(nil, "", "mcp", "add", "forge", "--url", ts.URL, "--allow-private", "--tool-limit", "create_issue=rpm:ten")
	if err == nil || !strings.Contains(err.Error()+stderr, "TOOL=rpm:N,concurrency:N,per_day:N") {
		t.Fatalf("mcp add with an unreadable --tool-limit: err %v, stderr %q", err, stderr)
	}
	out := in.mustCLI(nil, "", "mcp", "add", "forge", "--url", ts.URL, "--allow-private",
		"--tool-limit", "create_issue=rpm:2", "--tool-limit", "delete_*=per_day:1", "--tool-limit", "slow=concurrency:1")
	if !strings.Contains(out, "create_issue=rpm:2") || !strings.Contains(out, "delete_*=per_day:1") {
		t.Fatalf("mcp add shows no tool limits:\n%s", out)
	}
	key := in.createKey("--name", "agent", "--allow-tool", "forge/*")
	cs := connectMCP(t, in.addrs.Gateway+mcpgate.Path+"/forge", key)
	call := func(tool string) error {
		t.Helper()
		_, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: tool, Arguments: map[string]any{}})
		return err
	}
	refused := func(err error, reason string, words ...string) {
		t.Helper()
		var w *jsonrpc.Error
		if !errors.As(err, &w) || w.Code != mcpgate.CodeLimited || !strings.Contains(string(w.Data), `"`+reason+`"`) {
			t.Fatalf("got %v, want JSON-RPC error %d with reason %s", err, mcpgate.CodeLimited, reason)
		}
		for _, word := range words {
			if !strings.Contains(w.Message, word) {
				t.Fatalf("refusal %q does not say %q", w.Message, word)
			}
		}
	}
	seen := func(tool string) int {
		mu.Lock()
		defer mu.Unlock()
		return calls[tool]
	}

	for range 2 {
		if err := call("create_issue"); err != nil {
			t.Fatalf("create_issue within its limit: %v", err)
		}
	}
	refused(call("create_issue"), "tool_limit_exceeded", "create_issue", "2 calls per minute", "retry in ")
	if n := seen("create_issue"); n != 2 {
		t.Fatalf("the server got %d calls of create_issue, want 2: the refused one must not reach it", n)
	}
	for range 3 {
		if err := call("echo"); err != nil {
			t.Fatalf("echo has no tool limit: %v", err)
		}
	}
	// delete_* is one budget for every tool it matches.
	if err := call("delete_repo"); err != nil {
		t.Fatalf("delete_repo within the delete_* limit: %v", err)
	}
	refused(call("delete_branch"), "tool_limit_exceeded", "delete_branch", "1 calls per day", "delete_*")
	if n := seen("delete_branch"); n != 0 {
		t.Fatalf("the server got %d calls of delete_branch, want none", n)
	}
	// One slow call in flight at a time.
	done := make(chan error, 1)
	go func() { done <- call("slow") }()
	for deadline := time.Now().Add(10 * time.Second); seen("slow") == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first slow call never reached the server")
		}
	}
	refused(call("slow"), "tool_limit_exceeded", "slow", "1 calls of tool slow", "in flight", "retry when a call ends")
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("the first slow call: %v", err)
	}

	// keygate mcp update replaces the tool limits.
	_, stderr, err = in.cli(nil, "", "mcp", "update", "forge", "--tool-limit", "a=bogus:1")
	if err == nil || !strings.Contains(err.Error()+stderr, "rpm, concurrency and per_day") {
		t.Fatalf("mcp update with an unknown limit: err %v, stderr %q", err, stderr)
	}
	out = in.mustCLI(nil, "", "mcp", "update", "forge", "--tool-limit", "create_issue=rpm:5,per_day:100")
	if !strings.Contains(out, "create_issue=rpm:5,per_day:100") || strings.Contains(out, "delete_*") {
		t.Fatalf("mcp update shows:\n%s", out)
	}
	// The new limits apply once the gateway has read them.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		cs = connectMCP(t, in.addrs.Gateway+mcpgate.Path+"/forge", key)
		if err := call("delete_branch"); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("delete_branch after its limit was removed: %v", err)
		}
	}
	// The minute's use carries over (the limiter paces calls), so the
	// raised limit shows in what a refusal names.
	if err := call("create_issue"); err != nil {
		refused(err, "tool_limit_exceeded", "5 calls per minute of tool create_issue")
	}
	in.mustCLI(nil, "", "mcp", "update", "forge", "--clear-tool-limits")

	// The refusals are on the audit trail.
	var reasons []string
	for _, ev := range mcpEvents(t, in, 10) {
		if rs, _ := ev["reasons"].([]any); len(rs) > 0 {
			reasons = append(reasons, rs[0].(string))
		}
	}
	if strings.Count(strings.Join(reasons, " "), "tool_limit_exceeded") < 3 {
		t.Fatalf("audit reasons %v, want three tool_limit_exceeded", reasons)
	}
}
