package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/keygate/keygate/internal/mcpgate"
)

// TestMCPProgressReachesTheCaller: a server's progress notifications for
// a tool call reach the client that made it, under the client's own
// token. Two clients call at once with the same token ("1"): the server
// sees two distinct tokens of keygate's, neither the clients', and each
// client gets only its own call's progress.
func TestMCPProgressReachesTheCaller(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []any
	)
	srv := mcp.NewServer(&mcp.Implementation{Name: "builder", Version: "1.0.0"}, nil)
	type buildIn struct {
		Target string `json:"target"`
	}
	mcp.AddTool(srv, &mcp.Tool{Name: "build", Description: "builds a target, reporting progress"},
		func(ctx context.Context, req *mcp.CallToolRequest, in buildIn) (*mcp.CallToolResult, any, error) {
			token := req.Params.GetProgressToken()
			mu.Lock()
			seen = append(seen, token)
			mu.Unlock()
			for i := 1; i <= 3; i++ {
				if err := req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: token, Progress: float64(i), Total: 3,
					Message: fmt.Sprintf("step %d of 3 for %s", i, in.Target)}); err != nil {
					return nil, nil, err
				}
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "built " + in.Target}}}, nil, nil
		})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)

	in := start(t, testConfig(t, t.TempDir()), "")
	in.mustCLI(nil, "", "mcp", "add", "builder", "--url", ts.URL, "--allow-private")
	key := in.createKey("--name", "agent", "--allow-tool", "builder/*")
	type client struct {
		cs       *mcp.ClientSession
		mu       sync.Mutex
		messages []string
		tokens   []any
	}
	connect := func() *client {
		cl := &client{}
		c := mcp.NewClient(&mcp.Implementation{Name: "test-agent", Version: "1.0.0"}, &mcp.ClientOptions{
			ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
				cl.mu.Lock()
				cl.messages = append(cl.messages, req.Params.Message)
				cl.tokens = append(cl.tokens, req.Params.ProgressToken)
				cl.mu.Unlock()
			}})
		cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: in.addrs.Gateway + mcpgate.Path,
			HTTPClient: &http.Client{Transport: bearer{key}}, MaxRetries: -1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cs.Close() })
		cl.cs = cs
		return cl
	}
	a, b := connect(), connect()
	var wg sync.WaitGroup
	for name, cl := range map[string]*client{"alpha": a, "beta": b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := &mcp.CallToolParams{Name: "builder__build", Arguments: map[string]any{"target": name}}
			p.SetProgressToken("1")
			res, err := cl.cs.CallTool(context.Background(), p)
			if err != nil || resultText(res) != "built "+name {
				t.Errorf("build %s: %v", name, err)
			}
		}()
	}
	wg.Wait()
	for name, cl := range map[string]*client{"alpha": a, "beta": b} {
		// Notifications are handled apart from answers: wait for them.
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			cl.mu.Lock()
			n := len(cl.messages)
			cl.mu.Unlock()
			if n >= 3 {
				break
			}
		}
		cl.mu.Lock()
		if len(cl.messages) != 3 {
			t.Errorf("%s got %d progress notifications, want 3: %v", name, len(cl.messages), cl.messages)
		}
		for i, m := range cl.messages {
			if !strings.HasSuffix(m, " for "+name) || cl.tokens[i] != "1" {
				t.Errorf("%s got progress %q with token %v", name, m, cl.tokens[i])
			}
		}
		cl.mu.Unlock()
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0] == seen[1] || seen[0] == "1" || seen[1] == "1" {
		t.Fatalf("the server saw progress tokens %v, want two distinct ones of keygate's", seen)
	}
}
