package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/keygate/keygate/internal/mcpgate"
)

// askingServer is an MCP server (the official Go SDK's) whose tools ask
// the calling client for input while they run: summarize asks for
// sampling, confirm for an elicitation, where for the client's roots,
// all as input requests in the call's result, which the SDK turns into
// requests on the call's stream for a client before protocol 2026-07-28
// (a stateful server); wait blocks until the call is cancelled. states records the requestState the
// server got back, to show it is the server's own.
type askingServer struct {
	srv       *mcp.Server
	url       string
	mu        sync.Mutex
	states    []string
	cancelled chan string
	started   chan string
}

func newAskingServer(t *testing.T, stateless bool) *askingServer {
	a := &askingServer{cancelled: make(chan string, 4), started: make(chan string, 4)}
	a.srv = mcp.NewServer(&mcp.Implementation{Name: "asker", Version: "1.0.0"}, nil)
	type textIn struct {
		Text string `json:"text"`
	}
	mcp.AddTool(a.srv, &mcp.Tool{Name: "summarize", Description: "summarizes a text with the client's model"},
		func(ctx context.Context, req *mcp.CallToolRequest, in textIn) (*mcp.CallToolResult, any, error) {
			ans, ok := req.Params.InputResponses["llm"]
			if !ok {
				// A log message about the call goes to its client alone.
				_ = req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Logger: "asker", Data: "summarizing " + in.Text})
				return &mcp.CallToolResult{InputRequests: mcp.InputRequestMap{"llm": &mcp.CreateMessageParams{MaxTokens: 50,
					Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "summarize: " + in.Text}}}}},
					RequestState: "summarizing " + in.Text}, nil, nil
			}
			a.mu.Lock()
			a.states = append(a.states, req.Params.RequestState)
			a.mu.Unlock()
			r, _ := ans.(*mcp.CreateMessageWithToolsResult)
			text := ""
			if r != nil && len(r.Content) == 1 {
				if tc, ok := r.Content[0].(*mcp.TextContent); ok {
					text = tc.Text
				}
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "summary: " + text}}}, nil, nil
		})
	mcp.AddTool(a.srv, &mcp.Tool{Name: "confirm", Description: "asks the user to confirm"},
		func(ctx context.Context, req *mcp.CallToolRequest, in textIn) (*mcp.CallToolResult, any, error) {
			ans, ok := req.Params.InputResponses["ok"]
			if !ok {
				return &mcp.CallToolResult{InputRequests: mcp.InputRequestMap{"ok": &mcp.ElicitParams{Message: "Proceed with " + in.Text + "?",
					RequestedSchema: map[string]any{"type": "object", "properties": map[string]any{"name": map[string]any{"type": "string"}}}}}}, nil, nil
			}
			r, _ := ans.(*mcp.ElicitResult)
			if r == nil || r.Action != "accept" {
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "declined"}}}, nil, nil
			}
			name, _ := r.Content["name"].(string)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Text + " confirmed by " + name}}}, nil, nil
		})
	mcp.AddTool(a.srv, &mcp.Tool{Name: "stray", Description: "asks for sampling on no call's stream"},
		func(ctx context.Context, req *mcp.CallToolRequest, in textIn) (*mcp.CallToolResult, any, error) {
			// Sent apart from the call (the session's standalone stream):
			// keygate cannot tell whose it is.
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			res, err := req.Session.CreateMessage(sctx, &mcp.CreateMessageParams{MaxTokens: 5,
				Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "stray " + in.Text}}}})
			if err != nil {
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "refused: " + err.Error()}}}, nil, nil
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprint("answered: ", res.Content)}}}, nil, nil
		})
	mcp.AddTool(a.srv, &mcp.Tool{Name: "wait", Description: "waits until cancelled"},
		func(ctx context.Context, req *mcp.CallToolRequest, in textIn) (*mcp.CallToolResult, any, error) {
			a.started <- in.Text
			select {
			case <-ctx.Done():
				a.cancelled <- in.Text
				return nil, nil, ctx.Err()
			case <-time.After(20 * time.Second):
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "not cancelled"}}}, nil, nil
			}
		})
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return a.srv }, &mcp.StreamableHTTPOptions{Stateless: stateless, PropagateRequestCancellation: true}))
	// keygate holds a stream open to the server until it stops, which
	// may come after this cleanup.
	t.Cleanup(func() { ts.CloseClientConnections(); ts.Close() })
	a.url = ts.URL
	return a
}

// inputClient is an agent through keygate that answers sampling with its
// own name and elicitation with its name, when it declares them.
type inputClient struct {
	cs       *mcp.ClientSession
	mu       sync.Mutex
	prompts  []string // what sampling asked it
	messages []string // what elicitation asked it
	logs     []string // the server's log messages it got
	changed  int      // tools/list_changed notifications
}

func connectInputClient(t *testing.T, url, key, name string, sampling, elicitation bool) *inputClient {
	t.Helper()
	ic := &inputClient{}
	opts := &mcp.ClientOptions{ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
		ic.mu.Lock()
		ic.changed++
		ic.mu.Unlock()
	}, LoggingMessageHandler: func(_ context.Context, req *mcp.LoggingMessageRequest) {
		ic.mu.Lock()
		ic.logs = append(ic.logs, fmt.Sprint(req.Params.Data))
		ic.mu.Unlock()
	}}
	if sampling {
		opts.CreateMessageHandler = func(_ context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			text := ""
			if len(req.Params.Messages) > 0 {
				if tc, ok := req.Params.Messages[0].Content.(*mcp.TextContent); ok {
					text = tc.Text
				}
			}
			ic.mu.Lock()
			ic.prompts = append(ic.prompts, text)
			ic.mu.Unlock()
			return &mcp.CreateMessageResult{Role: "assistant", Model: "model-of-" + name, Content: &mcp.TextContent{Text: name + " read " + strings.TrimPrefix(text, "summarize: ")}}, nil
		}
	}
	if elicitation {
		opts.ElicitationHandler = func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			ic.mu.Lock()
			ic.messages = append(ic.messages, req.Params.Message)
			ic.mu.Unlock()
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": name}}, nil
		}
	}
	c := mcp.NewClient(&mcp.Implementation{Name: "agent-" + name, Version: "1.0.0"}, opts)
	cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: bearer{key}}, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatalf("connect %s: %v", name, err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	ic.cs = cs
	return ic
}

// TestMCPServerAsksTheCaller: a server's requests for input while it
// handles a tools/call reach the client that made the call and no other,
// and the client's answer reaches the server. The server asks either way
// MCP allows: as requests on the call's response stream (a stateful
// server, protocol 2025-11-25), or as input requests in the call's result
// (a stateless server, 2026-07-28). A client that did not declare the
// capability gets a clean JSON-RPC error.
func TestMCPServerAsksTheCaller(t *testing.T) {
	in := start(t, testConfig(t, t.TempDir()), "")
	key := in.createKey("--name", "agent", "--allow-tool", "asker*/*")
	url := in.addrs.Gateway + mcpgate.Path
	for _, mode := range []string{"in-band", "input-requests"} {
		a := newAskingServer(t, mode == "input-requests")
		server := "asker" + strings.ReplaceAll(mode, "-", "")
		in.mustCLI(nil, "", "mcp", "add", server, "--url", a.url, "--allow-private")
		t.Run("sampling/"+mode, func(t *testing.T) {
			alpha := connectInputClient(t, url, key, "alpha", true, true)
			beta := connectInputClient(t, url, key, "beta", true, true)
			for _, ic := range []*inputClient{alpha, beta} {
				if err := ic.cs.SetLoggingLevel(context.Background(), &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
					t.Fatalf("logging/setLevel: %v", err)
				}
			}
			// Two callers at once, each gets only its own question and
			// its own answer.
			var wg sync.WaitGroup
			for name, ic := range map[string]*inputClient{"alpha": alpha, "beta": beta} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					res, err := ic.cs.CallTool(context.Background(), &mcp.CallToolParams{Name: server + "__summarize", Arguments: map[string]any{"text": "notes of " + name}})
					if err != nil {
						t.Errorf("%s: summarize: %v", name, err)
						return
					}
					if got, want := resultText(res), "summary: "+name+" read notes of "+name; got != want {
						t.Errorf("%s: summarize answered %q, want %q", name, got, want)
					}
				}()
			}
			wg.Wait()
			for name, ic := range map[string]*inputClient{"alpha": alpha, "beta": beta} {
				// Notifications are handled apart from answers: wait for them.
				for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
					ic.mu.Lock()
					n := len(ic.logs)
					ic.mu.Unlock()
					if n > 0 {
						break
					}
				}
				ic.mu.Lock()
				if len(ic.prompts) != 1 || ic.prompts[0] != "summarize: notes of "+name {
					t.Errorf("%s was asked %q, want only its own text", name, ic.prompts)
				}
				if len(ic.logs) != 1 || ic.logs[0] != "summarizing notes of "+name {
					t.Errorf("%s got log messages %q, want only its own call's", name, ic.logs)
				}
				ic.mu.Unlock()
			}
		})
		t.Run("elicitation/"+mode, func(t *testing.T) {
			gamma := connectInputClient(t, url, key, "gamma", false, true)
			res, err := gamma.cs.CallTool(context.Background(), &mcp.CallToolParams{Name: server + "__confirm", Arguments: map[string]any{"text": "the deploy"}})
			if err != nil {
				t.Fatalf("confirm: %v", err)
			}
			if got := resultText(res); got != "the deploy confirmed by gamma" {
				t.Fatalf("confirm answered %q", got)
			}
			if gamma.messages[0] != "Proceed with the deploy?" {
				t.Fatalf("gamma was asked %q", gamma.messages)
			}
		})
		if mode == "in-band" {
			t.Run("sampling on no call's stream", func(t *testing.T) {
				eps := connectInputClient(t, url, key, "epsilon", true, true)
				res, err := eps.cs.CallTool(context.Background(), &mcp.CallToolParams{Name: server + "__stray", Arguments: map[string]any{"text": "question"}})
				if err != nil {
					t.Fatalf("stray: %v", err)
				}
				if got := resultText(res); !strings.HasPrefix(got, "refused: ") || !strings.Contains(got, "cannot tell which call") {
					t.Fatalf("a request tied to no call was answered %q, want keygate's JSON-RPC error", got)
				}
				eps.mu.Lock()
				defer eps.mu.Unlock()
				if len(eps.prompts) != 0 {
					t.Fatalf("a request tied to no call reached a client: %q", eps.prompts)
				}
			})
		}
		t.Run("no sampling capability/"+mode, func(t *testing.T) {
			delta := connectInputClient(t, url, key, "delta", false, false)
			_, err := delta.cs.CallTool(context.Background(), &mcp.CallToolParams{Name: server + "__summarize", Arguments: map[string]any{"text": "x"}})
			if rpcCode(err) != mcpgate.CodeCapability || !strings.Contains(err.Error(), "sampling") {
				t.Fatalf("a client without sampling got %v, want a JSON-RPC error %d naming sampling", err, mcpgate.CodeCapability)
			}
		})
		a.mu.Lock()
		for _, s := range a.states {
			if !strings.HasPrefix(s, "summarizing notes of ") {
				t.Errorf("the server got back requestState %q, want its own", s)
			}
		}
		a.mu.Unlock()
	}
	// Per mode: two calls of summarize, one of confirm, one refused; and
	// the stray call.
	evs := mcpEvents(t, in, 9)
	asked := map[string]int{}
	for _, ev := range evs {
		if f, _ := ev["fields"].(map[string]any); f != nil {
			asked[fmt.Sprint(f["mcp_server"], " ", f["input_requested"])]++
		}
	}
	for _, server := range []string{"askerinband", "askerinputrequests"} {
		if asked[server+" sampling/createMessage"] != 3 || asked[server+" elicitation/create"] != 1 {
			t.Errorf("the mcp.call events of %s record the server's requests for input as %v", server, asked)
		}
	}
}

// TestMCPToolListChangedReachesTheClients: a server that changes its tools
// tells keygate, keygate tells the sessions that can see the server (and
// not one that cannot), and tools/list shows the new tool.
func TestMCPToolListChangedReachesTheClients(t *testing.T) {
	a := newAskingServer(t, false)
	in := start(t, testConfig(t, t.TempDir()), "")
	in.mustCLI(nil, "", "mcp", "add", "asker", "--url", a.url, "--allow-private")
	key := in.createKey("--name", "agent", "--allow-tool", "asker/*")
	blind := in.createKey("--name", "blind", "--allow-tool", "nothing/*")
	url := in.addrs.Gateway + mcpgate.Path
	for _, version := range []string{"aggregate", "one server"} {
		if version == "one server" {
			url += "/asker"
		}
		ic := connectInputClient(t, url, key, "alpha", false, false)
		other := connectInputClient(t, in.addrs.Gateway+mcpgate.Path, blind, "blind", false, false)
		prefix := "asker__"
		if version == "one server" {
			prefix = ""
		}
		if names := toolNames(t, ic.cs); slices.Contains(names, prefix+"added") {
			t.Fatalf("tools before the change: %v", names)
		}
		_ = toolNames(t, other.cs)
		name := "added" + strings.ReplaceAll(version, " ", "")
		mcp.AddTool(a.srv, &mcp.Tool{Name: name, Description: "a tool added while clients are connected"},
			func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "new"}}}, nil, nil
			})
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			ic.mu.Lock()
			n := ic.changed
			ic.mu.Unlock()
			if n > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the client got no notifications/tools/list_changed", version)
			}
		}
		if names := toolNames(t, ic.cs); !slices.Contains(names, prefix+name) {
			t.Fatalf("%s: tools/list after the change: %v, want %s%s", version, names, prefix, name)
		}
		other.mu.Lock()
		if other.changed != 0 {
			t.Errorf("%s: a session that cannot see the server got %d list_changed", version, other.changed)
		}
		other.mu.Unlock()
	}
}

// TestMCPCancellationReachesTheServer: a client that cancels its call
// (notifications/cancelled) cancels the server's handling of it.
func TestMCPCancellationReachesTheServer(t *testing.T) {
	in := start(t, testConfig(t, t.TempDir()), "")
	key := in.createKey("--name", "agent", "--allow-tool", "asker*/*")
	for _, version := range []string{"stateful", "stateless"} {
		a := newAskingServer(t, version == "stateless")
		in.mustCLI(nil, "", "mcp", "add", "asker"+version, "--url", a.url, "--allow-private")
		ic := connectInputClient(t, in.addrs.Gateway+mcpgate.Path, key, "alpha", false, false)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := ic.cs.CallTool(ctx, &mcp.CallToolParams{Name: "asker" + version + "__wait", Arguments: map[string]any{"text": "job " + version}})
			done <- err
		}()
		select {
		case <-a.started:
		case <-time.After(10 * time.Second):
			t.Fatal("the server never started the call")
		}
		cancel()
		select {
		case got := <-a.cancelled:
			if got != "job "+version {
				t.Fatalf("the server cancelled %q", got)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the server's handler was not cancelled", version)
		}
		<-done
	}
}
