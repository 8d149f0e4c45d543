package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The browser tests run a real `keygate serve` binary, built once, and
// drive Debian's Chromium through the DevTools protocol.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// keygateBinary builds cmd/keygate once per test run.
func keygateBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "keygate-console-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "keygate")
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/keygate")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/keygate: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// chromium returns the browser to drive, or skips: never under CI=true.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("KEYGATE_TEST_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed; .ci/run installs it with apt-get install chromium")
	}
	t.Skip("chromium is not installed: apt-get install chromium (or set KEYGATE_TEST_CHROMIUM) to run the browser tests")
	return ""
}

// server is one running `keygate serve`.
type server struct {
	admin, gateway string
	token          string // the bootstrap admin credential
	stderr         *syncWriter
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// serve starts keygate with a fresh data directory and extra config (YAML),
// in which {{admin}} stands for the admin listener's address.
func serve(t *testing.T, config string) *server {
	t.Helper()
	bin := keygateBinary(t)
	dir := t.TempDir()
	gw, adm := freePort(t), freePort(t)
	args := []string{"serve", "--data-dir", filepath.Join(dir, "data"), "--listen", gw, "--admin-listen", adm}
	config = strings.ReplaceAll(config, "{{admin}}", adm)
	if config != "" {
		p := filepath.Join(dir, "keygate.yaml")
		if err := os.WriteFile(p, []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config", p)
	}
	if u := os.Getenv("KEYGATE_TEST_CONSOLE_DATABASE"); u != "" {
		args = append(args, "--database", u)
	}
	var out, errb bytes.Buffer
	cmd := exec.Command(bin, args...)
	outW, errW := &syncWriter{w: &out}, &syncWriter{w: &errb}
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.Env = append(os.Environ(), "HOME="+dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	s := &server{admin: "http://" + adm, gateway: "http://" + gw, stderr: errW}
	re := regexp.MustCompile(`kg_admin_[0-9A-Za-z]+`)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindString(outW.String()); m != "" {
			if resp, err := http.Get(s.admin + "/api/v1/auth/methods"); err == nil {
				resp.Body.Close()
				s.token = m
				return s
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("keygate serve did not start:\n%s\n%s", outW.String(), errW.String())
	return nil
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// String returns what was written so far, safe while the process writes.
func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

// api calls the admin API with the bootstrap credential (test setup only).
func (s *server) api(t *testing.T, method, path string, in, out any) int {
	t.Helper()
	return s.apiAs(t, s.token, method, path, in, out)
}

func (s *server) apiAs(t *testing.T, token, method, path string, in, out any) int {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.admin+"/api/v1"+path, body)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	if resp.StatusCode >= 300 && out != nil {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode
}

// browser starts a fresh headless Chromium; phone sets a phone-sized window.
func browser(t *testing.T, width, height int) context.Context {
	t.Helper()
	exe := chromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// run runs browser actions; on failure it saves a screenshot (named in the
// failure) and fails the test.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		shot := screenshotOnFailure(t, ctx)
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		t.Fatalf("%s: %v (page %s; screenshot %s)", what, err, loc, shot)
	}
}

func screenshotOnFailure(t *testing.T, ctx context.Context) string {
	dir := os.Getenv("KEYGATE_TEST_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "keygate-console-failures")
	}
	_ = os.MkdirAll(dir, 0o755)
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	buf, err := chromedp.Run(sctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		return "none: " + err.Error()
	}
	p := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".png")
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		return "none: " + err.Error()
	}
	return p
}

// signInWithToken signs the browser in with an admin token.
func signInWithToken(t *testing.T, ctx context.Context, s *server, token string) {
	t.Helper()
	run(t, ctx, "sign in with a token",
		chromedp.Navigate(s.admin+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#token`)),
		chromedp.SendKeys(chromedp.CSS(`#token`), token),
		chromedp.Submit(chromedp.CSS(`#token`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="whoami"]`)),
	)
}

// readInto is a step that runs a reading action and keeps its value in
// *dst (converted for numbers read by Evaluate).
func readInto[T, R any](dst *T, a chromedp.Action[R]) func(ctx context.Context, t *chromedp.Target) error {
	return func(ctx context.Context, tg *chromedp.Target) error {
		v, err := a(ctx, tg)
		if err != nil {
			return err
		}
		switch d := any(dst).(type) {
		case *int:
			switch x := any(v).(type) {
			case float64:
				*d = int(x)
			case int:
				*d = x
			}
			return nil
		case *string:
			if s, ok := any(v).(string); ok {
				*d = s
				return nil
			}
			*d = fmt.Sprint(v)
			return nil
		}
		return fmt.Errorf("cannot keep a %T", v)
	}
}
