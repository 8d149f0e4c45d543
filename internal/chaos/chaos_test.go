package chaos

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestShortForm runs `keygate chaos --short` through the real binary:
// three nodes, PostgreSQL, the suite's own Redis and HAProxy, every fault
// and a one-minute soak. It fails when the run does.
func TestShortForm(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a three-node cluster through every fault for a few minutes; run without -short")
	}
	pg := os.Getenv("KEYGATE_TEST_POSTGRES_URL")
	if pg == "" {
		t.Skip("set KEYGATE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable to run the chaos suite's short form (.ci/run does)")
	}
	for _, bin := range []string{"haproxy", "redis-server", "go"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed; the chaos suite needs haproxy and redis-server (Debian: apt-get install haproxy redis-server), and go to build keygate", bin)
		}
	}
	// The test builds keygate itself, so go test cannot see what it
	// depends on: stat every source file of the module, which go test
	// records, so a change anywhere in keygate runs the suite again
	// instead of reusing a cached pass.
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || (d.IsDir() && strings.HasPrefix(d.Name(), ".") && p != root) {
			return filepath.SkipDir
		}
		if n := d.Name(); !d.IsDir() && (strings.HasSuffix(n, ".go") || strings.HasSuffix(n, ".sql") || n == "go.mod" || n == "go.sum") {
			_, _ = os.Stat(p)
		}
		return nil
	})
	exe := filepath.Join(t.TempDir(), "keygate")
	if out, err := exec.Command("go", "build", "-o", exe, "github.com/keygate/keygate/cmd/keygate").CombinedOutput(); err != nil {
		t.Fatalf("build keygate: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
	defer cancel()
	// The short form is held to the long form's bar, 99.9%.
	cmd := exec.CommandContext(ctx, exe, "chaos", "--short", "--postgres", pg)
	var table bytes.Buffer
	cmd.Stdout = &table
	progress, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	sc := bufio.NewScanner(progress)
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
	}
	err = cmd.Wait()
	t.Logf("keygate chaos --short:\n%s", table.String())
	if err != nil {
		t.Fatalf("keygate chaos --short failed: %v\n%s", err, tail(log.String(), 40))
	}
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := bytes.Split([]byte(s), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

func TestUsageOf(t *testing.T) {
	for _, c := range []struct {
		name    string
		body    string
		in, out int64
	}{
		{"openai", `{"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}`, 12, 7},
		{"embeddings", `{"data":[],"usage":{"prompt_tokens":5,"total_tokens":5}}`, 5, 0},
		{"anthropic", `{"type":"message","usage":{"input_tokens":9,"output_tokens":4}}`, 9, 4},
		{"anthropic stream", "event: message_start\ndata: {\"message\":{\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\nevent: message_delta\ndata: {\"usage\":{\"output_tokens\":6}}\n\n", 9, 6},
		{"openai stream", "data: {\"choices\":[]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n", 3, 2},
		{"nothing", `{"error":{}}`, 0, 0},
	} {
		if in, out := usageOf([]byte(c.body)); in != c.in || out != c.out {
			t.Errorf("%s: usage %d/%d, want %d/%d", c.name, in, out, c.in, c.out)
		}
	}
}

func TestJudge(t *testing.T) {
	now := time.Now()
	plain := &apiKey{class: plainKey}
	budget := &apiKey{class: budgetKey, limit: 10_000}
	spent := &apiKey{class: budgetKey, limit: 600}
	spent.spent.Store(500)
	revoked := &apiKey{class: churnKey}
	revoked.retire(now.Add(-3*time.Second), now.Add(-2*time.Second))
	for _, c := range []struct {
		name   string
		key    *apiKey
		status int
		body   string
		ok     bool
	}{
		{"served", plain, 200, `{"object":"chat.completion"}`, true},
		{"served, wrong body", plain, 200, `{}`, false},
		{"budget refused by design", budget, 429, `{"error":{"code":"budget_exceeded"}}`, true},
		{"plain key refused", plain, 429, `{"error":{"code":"budget_exceeded"}}`, false},
		{"limits unavailable is a failure", budget, 503, `{"error":{"code":"limits_unavailable"}}`, false},
		{"limits unavailable for a spent budget is a refusal", spent, 503, `{"error":{"code":"limits_unavailable"}}`, true},
		{"revoked key refused", revoked, 401, `{"error":{"code":"invalid_api_key"}}`, true},
		{"revoked key served", revoked, 200, `{"object":"chat.completion"}`, false},
	} {
		r := result{start: now, end: now, status: c.status}
		judge(&r, c.key, []byte(c.body), `"chat.completion"`)
		if r.ok != c.ok {
			t.Errorf("%s: ok=%v (%s), want %v", c.name, r.ok, r.why, c.ok)
		}
	}
}

func TestLongestFailure(t *testing.T) {
	t0 := time.Now()
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	rs := []result{
		{start: at(0), end: at(0.1), ok: true},
		{start: at(1), end: at(1.2)}, {start: at(1.5), end: at(3)}, {start: at(2), end: at(2.1)}, // one stretch: 1 -> 3
		{start: at(5), end: at(5.1), ok: true},
		{start: at(9), end: at(9.5)}, // apart: 0.5
	}
	row := summarize("x", rs)
	if row.Failed != 4 || row.LongestFailure != 2*time.Second {
		t.Fatalf("failed %d, longest %v; want 4 and 2s", row.Failed, row.LongestFailure)
	}
}

// TestLink: a cut link resets what it carried and refuses or swallows new
// connections; healed, it forwards again.
func TestLink(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	l, err := newLink(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	echo := func() error {
		c, err := net.DialTimeout("tcp", l.Addr(), time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		b := make([]byte, 4)
		_, err = io.ReadFull(c, b)
		return err
	}
	if err := echo(); err != nil {
		t.Fatalf("through the link: %v", err)
	}
	for _, mode := range []cutMode{linkRefused, linkBlackholed} {
		l.Cut(mode)
		if err := echo(); err == nil {
			t.Fatalf("mode %d: answered through a cut link", mode)
		}
		l.Heal()
		if err := echo(); err != nil {
			t.Fatalf("mode %d: after healing: %v", mode, err)
		}
	}
}
