package mcpgate

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestTagStream: on a call's response stream, the server's requests for
// input and its log and resource notifications get the call's route, data
// split over lines included; answers, progress and everything else pass
// unchanged, and a server's own tag is replaced, never trusted.
func TestTagStream(t *testing.T) {
	in := "id: 1\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"sampling/createMessage\",\"params\":{\"maxTokens\":5}}\n\n" +
		": a comment\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\ndata: \"params\":{\"level\":\"info\",\"data\":\"x\",\"_meta\":{\"io.keygate/call\":\"forged\"}}}\n\n" +
		"data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":\"t\",\"progress\":1}}\n\n" +
		"id: 3\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[]}}\n\n"
	out, err := io.ReadAll(tagStream(io.NopCloser(strings.NewReader(in)), "route-1"))
	if err != nil {
		t.Fatal(err)
	}
	events := strings.Split(strings.TrimSuffix(string(out), "\n\n"), "\n\n")
	if len(events) != 4 {
		t.Fatalf("got %d events, want 4:\n%s", len(events), out)
	}
	route := func(ev string) string {
		var data []byte
		for _, l := range strings.Split(ev, "\n") {
			if v, ok := strings.CutPrefix(l, "data: "); ok {
				data = append(data, v...)
			}
		}
		var m struct {
			Params struct {
				Meta map[string]any `json:"_meta"`
			} `json:"params"`
		}
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("event %q: %v", ev, err)
		}
		s, _ := m.Params.Meta[routeMetaKey].(string)
		return s
	}
	if !strings.HasPrefix(events[0], "id: 1\nevent: message\n") || route(events[0]) != "route-1" {
		t.Errorf("a sampling request was not tagged, or lost its id: %q", events[0])
	}
	if !strings.HasPrefix(events[1], ": a comment\n") || route(events[1]) != "route-1" {
		t.Errorf("a log message split over data lines was not tagged as the call's: %q", events[1])
	}
	if route(events[2]) != "" || !bytes.Contains(out, []byte("id: 3\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\"")) {
		t.Errorf("progress or the answer was changed:\n%s", out)
	}
}

// TestSendAs: a resource notification for one call reaches that call's
// client session as notifications/resources/updated, though the SDK sends
// one session only progress and log notifications of its own accord.
func TestSendAs(t *testing.T) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "keygate", Version: "test"}, nil)
	srv.AddSendingMiddleware(sendAs)
	got := make(chan string, 1)
	c := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "test"}, &mcp.ClientOptions{
		ResourceUpdatedHandler: func(_ context.Context, req *mcp.ResourceUpdatedNotificationRequest) { got <- req.Params.URI },
		ProgressNotificationHandler: func(context.Context, *mcp.ProgressNotificationClientRequest) {
			got <- "progress"
		}})
	st, ct := mcp.NewInMemoryTransports()
	ss, err := srv.Connect(context.Background(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := c.Connect(context.Background(), ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	ctx := context.WithValue(context.Background(), sendAsKey{}, &mcp.ResourceUpdatedNotificationParams{URI: "file:///notes.txt"})
	if err := ss.NotifyProgress(ctx, &mcp.ProgressNotificationParams{}); err != nil {
		t.Fatal(err)
	}
	select {
	case uri := <-got:
		if uri != "file:///notes.txt" {
			t.Fatalf("the client got %q, want the resource's update", uri)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the client got nothing")
	}
}
