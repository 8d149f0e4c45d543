package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/server"
)

// proc is one running server under test.
type proc struct {
	url   string // base URL
	admin string // keygate only: admin API URL
	cred  string // keygate only: the admin credential printed at first start
	pid   int    // 0 when in-process
	stop  func() error
}

// launcher starts the servers, as child processes of binary (so each
// one's memory is its own) or, when binary is "", inside this process.
type launcher struct {
	binary string
	dir    string
	logs   io.Writer
}

// upstream starts the fake provider: OpenAI's API, or Anthropic's when
// anthropic is set.
func (l launcher) upstream(ctx context.Context, key string, anthropic bool) (*proc, error) {
	if l.binary == "" {
		serve := ServeUpstream
		if anthropic {
			serve = ServeAnthropicUpstream
		}
		return inProcess(func(ctx context.Context, ln net.Listener) error { return serve(ctx, ln, key) })
	}
	args := []string{"bench", "serve-upstream"}
	if anthropic {
		args = append(args, "--anthropic")
	}
	return l.child(ctx, args, []string{"KEYGATE_BENCH_UPSTREAM_KEY=" + key}, readyLine)
}

func (l launcher) baseline(ctx context.Context, upstream, key string, pooled bool) (*proc, error) {
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, err
	}
	if l.binary == "" {
		return inProcess(func(ctx context.Context, ln net.Listener) error { return ServeBaseline(ctx, ln, u, key, pooled) })
	}
	args := []string{"bench", "serve-baseline", "--upstream", upstream}
	if pooled {
		args = append(args, "--pooled")
	}
	return l.child(ctx, args, []string{"KEYGATE_BENCH_UPSTREAM_KEY=" + key}, readyLine)
}

// variant is how a benchmarked keygate differs from its defaults.
type variant struct {
	redis    string  // limits kept in this Redis
	otlp     string  // traces exported here...
	ratio    float64 // ...at this sample ratio
	leaksOff bool    // the credential check on the data path turned off
}

// keygate starts a real keygate on its defaults (SQLite, local master key,
// access log on, credential check on) in a fresh data directory named
// name, changed as v says.
func (l launcher) keygate(ctx context.Context, name string, v variant) (*proc, error) {
	redis, otlp, ratio := v.redis, v.otlp, v.ratio
	dataDir := filepath.Join(l.dir, name)
	if l.binary == "" {
		cfg := config.Default(l.dir)
		cfg.DataDir, cfg.Listen, cfg.AdminListen = dataDir, "127.0.0.1:0", "127.0.0.1:0"
		cfg.Limits.Redis = redis
		cfg.Tracing.Endpoint, cfg.Tracing.SampleRatio = otlp, ratio
		cfg.Leaks.Off = v.leaksOff
		var out bytes.Buffer
		ready := make(chan server.Listening, 1)
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- server.Run(cctx, cfg, &out, l.logs, func(s server.Listening) { ready <- s }) }()
		select {
		case s := <-ready:
			cred := adminCred.FindString(out.String())
			return &proc{url: s.Gateway, admin: s.Admin, cred: cred, stop: func() error { cancel(); return <-done }}, nil
		case err := <-done:
			cancel()
			return nil, fmt.Errorf("keygate did not start: %w", err)
		}
	}
	args := []string{"serve", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}
	if redis != "" {
		args = append(args, "--redis", redis)
	}
	env := []string{"HOME=" + l.dir}
	if otlp != "" {
		env = append(env, "KEYGATE_TRACING_ENDPOINT="+otlp, "KEYGATE_TRACING_SAMPLE_RATIO="+strconv.FormatFloat(ratio, 'f', -1, 64))
	}
	if v.leaksOff {
		env = append(env, "KEYGATE_LEAKS_OFF=true")
	}
	return l.child(ctx, args, env, keygateLines)
}

var (
	adminCred   = regexp.MustCompile(`kg_admin_[0-9A-Za-z]+`)
	gatewayLine = regexp.MustCompile(`keygate gateway listening on (\S+)`)
	adminLine   = regexp.MustCompile(`keygate admin API listening on (\S+)`)
)

// readyLine parses a bench child's "ready URL" line.
func readyLine(line string, p *proc) bool {
	if u, ok := strings.CutPrefix(line, "ready "); ok {
		p.url = strings.TrimSpace(u)
		return true
	}
	return false
}

// keygateLines parses `keygate serve` start-up output.
func keygateLines(line string, p *proc) bool {
	if m := adminCred.FindString(line); m != "" {
		p.cred = m
	}
	if m := gatewayLine.FindStringSubmatch(line); m != nil {
		p.url = m[1]
	}
	if m := adminLine.FindStringSubmatch(line); m != nil {
		p.admin = m[1]
		return true
	}
	return false
}

func (l launcher) child(ctx context.Context, args, env []string, parse func(string, *proc) bool) (*proc, error) {
	cmd := exec.Command(l.binary, args...)
	cmd.Env = append(os.Environ(), env...)
	// Logs go to a file, as in a deployment: a pipe would add a reader
	// process's scheduling to every log write.
	logf, err := os.CreateTemp(l.dir, "log-*.txt")
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s %s: %w", l.binary, strings.Join(args, " "), err)
	}
	p := &proc{pid: cmd.Process.Pid}
	var once sync.Once
	p.stop = func() error {
		var err error
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err = <-done:
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				err = <-done
			}
		})
		return err
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		signalled := false
		for sc.Scan() {
			if !signalled && parse(sc.Text(), p) {
				signalled = true
				ready <- true
			}
		}
		if !signalled {
			ready <- false
		}
	}()
	select {
	case ok := <-ready:
		if !ok {
			_ = p.stop()
			return nil, fmt.Errorf("%s %s exited before it was ready", l.binary, strings.Join(args, " "))
		}
	case <-time.After(30 * time.Second):
		_ = p.stop()
		return nil, fmt.Errorf("%s %s was not ready within 30s", l.binary, strings.Join(args, " "))
	case <-ctx.Done():
		_ = p.stop()
		return nil, ctx.Err()
	}
	return p, nil
}

func inProcess(serve func(context.Context, net.Listener) error) (*proc, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln) }()
	return &proc{url: "http://" + ln.Addr().String(), stop: func() error { cancel(); return <-done }}, nil
}

// rss reads a process's resident memory (current, peak and anonymous)
// from /proc, in bytes.
func rss(pid int) (cur, peak, anon int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			cur = n << 10
		case "VmHWM:":
			peak = n << 10
		case "RssAnon:":
			anon = n << 10
		}
	}
	return cur, peak, anon
}
