package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/keygate/keygate/internal/mcpgate"
)

// TestMCPUpstreamFailureIsNotAClosedConnection: a server's answer keygate
// cannot pass on (here, larger than the server's max_result_bytes) reaches
// an official-SDK client as keygate's upstream_failed error, with its
// code and reason, and the session stays usable. Codes the SDKs give a
// meaning of their own (the Go SDK's -32003 "client is closing" made such
// an error read as a closed connection) are not keygate's.
func TestMCPUpstreamFailureIsNotAClosedConnection(t *testing.T) {
	up := newFakeToolServer(t)
	in := start(t, testConfig(t, t.TempDir()), "")
	in.mustCLI(nil, up.token, "secret", "put", "gh-token", "--stdin")
	in.mustCLI(nil, "", "mcp", "add", "github", "--url", up.url, "--secret", "gh-token", "--allow-private", "--max-result-bytes", "64")
	key := in.createKey("--name", "agent", "--allow-tool", "github/*")
	cs := connectMCP(t, in.addrs.Gateway+mcpgate.Path, key)

	_, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "github__echo", Arguments: map[string]any{"text": strings.Repeat("too long for 64 bytes ", 10)}})
	var werr *jsonrpc.Error
	if err == nil || errors.Is(err, mcp.ErrConnectionClosed) || !errors.As(err, &werr) || werr.Code != mcpgate.CodeUpstream || !strings.Contains(string(werr.Data), "upstream_failed") {
		t.Fatalf("an answer too large: %v (code %v)", err, werr)
	}
	for _, c := range []int64{-32000, -32001, -32002, -32003, -32004, -32042} {
		if mcpgate.CodeUpstream == c {
			t.Fatalf("keygate's upstream_failed code %d is one an MCP SDK reads as its own", c)
		}
	}
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "github__echo", Arguments: map[string]any{"text": "short"}})
	if err != nil || resultText(res) != "short" {
		t.Fatalf("the session after an upstream failure: %v %+v", err, res)
	}
}
