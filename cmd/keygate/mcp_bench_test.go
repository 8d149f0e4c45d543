package main

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/keygate/keygate/internal/mcpgate"
	"github.com/keygate/keygate/internal/server"
)

// BenchmarkMCPToolCall measures what keygate adds to an MCP tools/call:
// the same official-SDK client calls the same official-SDK server's echo
// tool directly, then through keygate serve (key check, tool scope,
// per-key limits, forwarding, size bound, scrub, audit), in one run. It
// reports each path's p50 and the difference (added-p50-µs).
//
//	go test ./cmd/keygate -run '^$' -bench MCPToolCall -benchtime 2000x
func BenchmarkMCPToolCall(b *testing.B) {
	up := newFakeToolServer(b)
	dir := b.TempDir()
	cfg := testConfig(&testing.T{}, dir)
	cfg.Log.Level = "warn"
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan server.Listening, 1)
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx, cfg, &stdout, &stderr, func(l server.Listening) { ready <- l }) }()
	var addrs server.Listening
	select {
	case addrs = <-ready:
	case err := <-done:
		b.Fatalf("keygate did not start: %v\n%s", err, stderr.String())
	case <-time.After(30 * time.Second):
		b.Fatal("keygate did not start")
	}
	defer func() { cancel(); <-done }()
	admin := regexp.MustCompile(`kg_admin_[0-9A-Za-z]+`).FindString(stdout.String())
	cli := func(stdin string, args ...string) string {
		e := map[string]string{"KEYGATE_ADMIN_URL": addrs.Admin, "KEYGATE_ADMIN_TOKEN": admin, "HOME": dir}
		var out, errb bytes.Buffer
		if err := run(context.Background(), args, func(k string) string { return e[k] }, strings.NewReader(stdin), &out, &errb); err != nil {
			b.Fatalf("keygate %s: %v\n%s", strings.Join(args, " "), err, errb.String())
		}
		return out.String()
	}
	cli(up.token, "secret", "put", "gh-token", "--stdin")
	cli("", "mcp", "add", "github", "--url", up.url, "--secret", "gh-token", "--allow-private", "--rpm", "1000000")
	key := regexp.MustCompile(`kg_[a-z0-9]+_[0-9A-Za-z]+`).FindString(cli("", "key", "create", "--name", "bench", "--allow-tool", "github/*"))

	direct := connectDirect(b, up)
	through := connectMCP(b, addrs.Gateway+mcpgate.Path, key)
	args := map[string]any{"text": "benchmark"}
	measure := func(cs *mcp.ClientSession, name string, n int) []time.Duration {
		ds := make([]time.Duration, 0, n)
		for range n {
			t0 := time.Now()
			if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args}); err != nil {
				b.Fatal(err)
			}
			ds = append(ds, time.Since(t0))
		}
		return ds
	}
	// Warm both paths (connections, caches), then alternate in rounds so
	// both see the same machine load.
	measure(direct, "echo", 50)
	measure(through, "github__echo", 50)
	var d, k []time.Duration
	b.ResetTimer()
	for left := b.N; left > 0; left -= 100 {
		n := min(left, 100)
		d = append(d, measure(direct, "echo", n)...)
		k = append(k, measure(through, "github__echo", n)...)
	}
	b.StopTimer()
	p50 := func(ds []time.Duration) float64 {
		slices.Sort(ds)
		return float64(ds[len(ds)/2].Nanoseconds()) / 1e3
	}
	dp, kp := p50(d), p50(k)
	b.ReportMetric(dp, "direct-p50-µs")
	b.ReportMetric(kp, "keygate-p50-µs")
	b.ReportMetric(kp-dp, "added-p50-µs")
	b.Log(fmt.Sprintf("tools/call p50: direct %.0f µs, through keygate %.0f µs, added %.0f µs", dp, kp, kp-dp))
}

// connectDirect opens a session straight to the fake server, with its
// credential, as an agent holding the real token would.
func connectDirect(b *testing.B, up *fakeToolServer) *mcp.ClientSession {
	return connectMCP(b, up.url, up.token)
}
