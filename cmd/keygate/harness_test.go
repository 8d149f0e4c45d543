package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/server"
	"github.com/keygate/keygate/internal/store/storetest"
)

// syncBuffer collects a running keygate's output safely across goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// instance is one running `keygate serve`, started in-process on loopback
// ports chosen by the kernel.
type instance struct {
	t       *testing.T
	cfg     config.Config
	stdout  *syncBuffer
	stderr  *syncBuffer
	addrs   server.Listening
	admin   string // the admin credential
	cancel  context.CancelFunc
	done    chan error
	stopped bool
	// lastTOTP is the code enrolTOTP confirmed with, and when.
	lastTOTP struct {
		code string
		at   time.Time
	}
}

// testConfig is a configuration for a keygate in dir, on ephemeral loopback ports.
func testConfig(t *testing.T, dir string) config.Config {
	cfg := config.Default(dir)
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Listen = "127.0.0.1:0"
	cfg.AdminListen = "127.0.0.1:0"
	cfg.ShutdownGrace = 10 * time.Second
	cfg.Log.Level = "debug"
	return cfg
}

// databases lists the stores end-to-end tests run against: SQLite always,
// PostgreSQL when KEYGATE_TEST_POSTGRES_URL is set.
func databases(t *testing.T) map[string]func(t *testing.T) string {
	return map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "" },
		"postgres": func(t *testing.T) string { return storetest.PostgresURL(t) },
	}
}

// start runs keygate with cfg and waits until both listeners are open. The
// admin credential is read from the first start's output, or given.
func start(t *testing.T, cfg config.Config, admin string, opts ...server.Option) *instance {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	in := &instance{t: t, cfg: cfg, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan error, 1), admin: admin}
	ctx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	ready := make(chan server.Listening, 1)
	go func() {
		in.done <- server.Run(ctx, cfg, in.stdout, in.stderr, func(l server.Listening) { ready <- l }, opts...)
	}()
	select {
	case in.addrs = <-ready:
	case err := <-in.done:
		t.Fatalf("keygate did not start: %v\n%s", err, in.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("keygate did not start within 30s")
	}
	if in.admin == "" {
		m := regexp.MustCompile(`kg_admin_[0-9A-Za-z]+`).FindString(in.stdout.String())
		if m == "" {
			t.Fatalf("first start printed no admin credential:\n%s", in.stdout.String())
		}
		in.admin = m
	}
	t.Cleanup(in.stop)
	return in
}

// stop shuts keygate down and waits for it.
func (in *instance) stop() {
	if in.stopped {
		return
	}
	in.stopped = true
	in.cancel()
	select {
	case err := <-in.done:
		if err != nil {
			in.t.Errorf("keygate stopped with an error: %v", err)
		}
	case <-time.After(30 * time.Second):
		in.t.Error("keygate did not stop within 30s")
	}
}

// cli runs a keygate CLI command against this instance's admin API.
func (in *instance) cli(env map[string]string, stdin string, args ...string) (string, string, error) {
	e := map[string]string{"KEYGATE_ADMIN_URL": in.addrs.Admin, "KEYGATE_ADMIN_TOKEN": in.admin, "HOME": in.t.TempDir()}
	for k, v := range env {
		e[k] = v
	}
	var out, errb bytes.Buffer
	err := run(context.Background(), args, func(k string) string { return e[k] }, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), err
}

// mustCLI runs a CLI command and fails the test if it fails.
func (in *instance) mustCLI(env map[string]string, stdin string, args ...string) string {
	in.t.Helper()
	out, errb, err := in.cli(env, stdin, args...)
	if err != nil {
		in.t.Fatalf("keygate %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errb)
	}
	return out
}

// createKey makes a keygate key through the CLI and returns its secret.
func (in *instance) createKey(args ...string) string {
	in.t.Helper()
	out := in.mustCLI(nil, "", append([]string{"key", "create"}, args...)...)
	k := regexp.MustCompile(`kg_[a-z0-9]+_[0-9A-Za-z]+`).FindString(out)
	if k == "" {
		in.t.Fatalf("key create printed no key: %q", out)
	}
	return k
}

// upstreams is a pair of fake providers with run-time generated keys.
type upstreams struct {
	openai, anthropic       *fakeprovider.Server
	openaiURL, anthropicURL string
	openaiKey, anthropicKey string
}

func newUpstreams(t *testing.T, o, a fakeprovider.Options) *upstreams {
	u := &upstreams{openaiKey: canary("openai"), anthropicKey: canary("anthropic")}
	o.APIKey, a.APIKey = u.openaiKey, u.anthropicKey
	u.openai, u.anthropic = fakeprovider.NewOpenAI(o), fakeprovider.NewAnthropic(a)
	so, sa := httptest.NewServer(u.openai), httptest.NewServer(u.anthropic)
	t.Cleanup(func() { u.openai.Close(); u.anthropic.Close(); so.Close(); sa.Close() })
	u.openaiURL, u.anthropicURL = so.URL+"/v1", sa.URL
	return u
}

// canary makes an upstream key that is unique to this run and obviously fake,
// so finding it anywhere but the upstream's request headers is a leak.
func canary(name string) string {
	return fmt.Sprintf("canary-%s-upstream-key-%d", name, time.Now().UnixNano())
}

// register adds both fake providers to keygate through the CLI.
func (in *instance) register(u *upstreams) {
	in.t.Helper()
	in.mustCLI(map[string]string{"FAKE_OPENAI_KEY": u.openaiKey}, "",
		"provider", "add", "openai", "--base-url", u.openaiURL, "--api-key-env", "FAKE_OPENAI_KEY", "--models", "gpt-*,o4*,text-embedding-*")
	in.mustCLI(nil, u.anthropicKey+"\n",
		"provider", "add", "anthropic", "--base-url", u.anthropicURL, "--api-key-stdin")
}

// recorder is an http.RoundTripper that keeps every response a client
// received, headers and body, so tests can search them for leaks.
type recorder struct {
	mu  sync.Mutex
	all bytes.Buffer
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	r.mu.Lock()
	fmt.Fprintf(&r.all, "%d\n", resp.StatusCode)
	resp.Header.Write(&r.all)
	r.all.Write(body)
	r.mu.Unlock()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.all.String()
}

// postJSON sends a raw request to the gateway and returns status and body.
func postJSON(t *testing.T, url, key string, body string, header ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// filesUnder returns the concatenated bytes of every file under dir.
func filesUnder(t *testing.T, dir string) []byte {
	var all []byte
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			all = append(all, b...)
		}
		return nil
	})
	return all
}
