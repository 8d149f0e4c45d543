package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
)

// helperEnv makes TestHelperProcess act as the command `keygate run` starts:
// the test binary runs itself as that command.
const helperEnv = "KEYGATE_TEST_HELPER_PROCESS"

// TestHelperProcess is not a test: it is the command the `keygate run` tests
// start. It is steered by its environment:
//
//	HELPER_OUT=FILE    write the variables named in HELPER_VARS (comma-separated; * for all) to FILE as JSON
//	HELPER_PRINT=NAME  print the value of NAME on stdout and stderr, each in two writes
//	HELPER_READY=FILE  create FILE, then wait for SIGTERM and exit 42
//	HELPER_KILL_SELF=1 die of SIGTERM
//	HELPER_EXIT=N      exit with code N
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		return
	}
	if out := os.Getenv("HELPER_OUT"); out != "" {
		vars := map[string]*string{}
		if os.Getenv("HELPER_VARS") == "*" {
			for _, kv := range os.Environ() {
				k, v, _ := strings.Cut(kv, "=")
				vars[k] = &v
			}
		}
		for _, name := range strings.Split(os.Getenv("HELPER_VARS"), ",") {
			if v, ok := os.LookupEnv(name); ok {
				vars[name] = &v
			} else {
				vars[name] = nil
			}
		}
		b, _ := json.Marshal(vars)
		if err := os.WriteFile(out, b, 0o600); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(99)
		}
	}
	fmt.Println("hello from the command")
	fmt.Fprintln(os.Stderr, "note from the command")
	if name := os.Getenv("HELPER_PRINT"); name != "" {
		// The value in two writes, split in the middle, on both streams.
		v := os.Getenv(name)
		for _, f := range []*os.File{os.Stdout, os.Stderr} {
			fmt.Fprintf(f, "the value is %s", v[:len(v)/2])
			f.Sync()
			fmt.Fprintf(f, "%s, twice: %s.\n", v[len(v)/2:], v)
		}
	}
	if ready := os.Getenv("HELPER_READY"); ready != "" {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		if err := os.WriteFile(ready, nil, 0o600); err != nil {
			os.Exit(98)
		}
		select {
		case <-c:
			os.Exit(42)
		case <-time.After(20 * time.Second):
			os.Exit(97)
		}
	}
	if os.Getenv("HELPER_KILL_SELF") == "1" {
		p, _ := os.FindProcess(os.Getpid())
		_ = p.Signal(syscall.SIGTERM)
		time.Sleep(20 * time.Second)
		os.Exit(96)
	}
	code, _ := strconv.Atoi(os.Getenv("HELPER_EXIT"))
	os.Exit(code)
}

// helperCommand returns the arguments after `keygate run ... --` that start
// TestHelperProcess, and sets h.environ so that it writes the variables
// named in vars to the returned file. extra entries are added to h.environ.
func (h *harness) helperCommand(vars []string, extra ...string) (args []string, outFile string) {
	h.t.Helper()
	exe, err := os.Executable()
	if err != nil {
		h.t.Fatal(err)
	}
	outFile = filepath.Join(h.t.TempDir(), "env.json")
	h.environ = append([]string{
		helperEnv + "=1", "HELPER_OUT=" + outFile, "HELPER_VARS=" + strings.Join(vars, ","),
		"GORACE=atexit_sleep_ms=0", // a -race build otherwise waits a second before exiting
	}, extra...)
	return []string{exe, "-test.run=^TestHelperProcess$"}, outFile
}

// childVars reads what TestHelperProcess wrote; nil means it never ran.
func childVars(t *testing.T, file string) map[string]*string {
	t.Helper()
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]*string
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("helper output: %v", err)
	}
	return m
}

func wantVar(t *testing.T, vars map[string]*string, name, want string) {
	t.Helper()
	switch v := vars[name]; {
	case v == nil:
		t.Errorf("the command's environment lacks %s", name)
	case *v != want:
		t.Errorf("the command's %s = %q, want %q", name, *v, want)
	}
}

// runArgs is `keygate run FLAGS -- CHILD`, passing on the variables that
// steer TestHelperProcess.
func (h *harness) runArgs(flags []string, child []string) []string {
	keep := []string{"--keep-env", helperEnv + ",HELPER_*,GORACE"}
	if slices.Contains(flags, "--inherit-env") {
		keep = nil
	}
	return slices.Concat([]string{"run"}, keep, flags, []string{"--"}, child)
}

func TestRunSecrets(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	v1, v2, v3 := canary(t), canary(t), canary(t)
	h.mustRun(v1, "secret", "put", "db/password", "--stdin")
	h.mustRun(v2, "secret", "put", "db/password", "--stdin")
	h.mustRun(v3, "secret", "put", "payments/stripe", "--stdin")

	child, file := h.helperCommand([]string{"DB_PASSWORD", "OLD_PASSWORD", "STRIPE_KEY", "KEEP", EnvAdminToken},
		"KEEP=kept", "DB_PASSWORD=stale", EnvAdminToken+"="+h.admin.token)
	out, errOut := h.mustRun("", h.runArgs([]string{
		"--secret", "DB_PASSWORD=db/password", "--secret", "OLD_PASSWORD=db/password@1", "--secret", "STRIPE_KEY=payments/stripe", "--keep-env", "KEEP",
	}, child)...)
	vars := childVars(t, file)
	if vars == nil {
		t.Fatal("the command did not run")
	}
	wantVar(t, vars, "DB_PASSWORD", v2)
	wantVar(t, vars, "OLD_PASSWORD", v1)
	wantVar(t, vars, "STRIPE_KEY", v3)
	wantVar(t, vars, "KEEP", "kept")
	if vars[EnvAdminToken] != nil {
		t.Errorf("the command got the admin credential in %s", EnvAdminToken)
	}
	if out != "hello from the command\n" || errOut != "note from the command\n" {
		t.Errorf("stdout %q stderr %q: want only the command's own output", out, errOut)
	}
	for _, v := range []string{v1, v2, v3} {
		h.assertNotExposed(v, out, errOut)
	}
}

func TestRunExitCode(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.mustRun(canary(t), "secret", "put", "db/password", "--stdin")
	child, _ := h.helperCommand(nil)
	h.environ = append(h.environ, "HELPER_EXIT=7")
	_, _, err := h.run("", h.runArgs([]string{"--secret", "X=db/password"}, child)...)
	var exit *ExitCodeError
	if !errors.As(err, &exit) || exit.Code != 7 {
		t.Fatalf("err = %v, want an *ExitCodeError with code 7", err)
	}

	_, _, err = h.run("", h.runArgs([]string{"--secret", "X=db/password"}, []string{filepath.Join(t.TempDir(), "no-such-command")})...)
	if err == nil || errors.As(err, &exit) || !strings.Contains(err.Error(), "run: starting") {
		t.Fatalf("missing command: %v", err)
	}
}

func TestRunSignalDeath(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no SIGTERM to die of")
	}
	h := newHarness(t)
	h.mustRun(canary(t), "secret", "put", "db/password", "--stdin")
	child, _ := h.helperCommand(nil)
	h.environ = append(h.environ, "HELPER_KILL_SELF=1")
	_, _, err := h.run("", h.runArgs([]string{"--secret", "X=db/password"}, child)...)
	var exit *ExitCodeError
	if !errors.As(err, &exit) || exit.Code != 128+int(syscall.SIGTERM) {
		t.Fatalf("err = %v, want an *ExitCodeError with code %d", err, 128+int(syscall.SIGTERM))
	}
}

// TestRunForwardsSignals sends SIGTERM to the test process itself, so it
// must not run in parallel with another `keygate run`, which would forward
// it too.
func TestRunForwardsSignals(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no SIGTERM to forward")
	}
	h := newHarness(t)
	h.mustRun(canary(t), "secret", "put", "db/password", "--stdin")
	child, _ := h.helperCommand(nil)
	ready := filepath.Join(t.TempDir(), "ready")
	h.environ = append(h.environ, "HELPER_READY="+ready)
	done := make(chan error, 1)
	go func() {
		_, _, err := h.run("", h.runArgs([]string{"--secret", "X=db/password"}, child)...)
		done <- err
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the command never became ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	self, _ := os.FindProcess(os.Getpid())
	if err := self.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := <-done
	var exit *ExitCodeError
	if !errors.As(err, &exit) || exit.Code != 42 {
		t.Fatalf("err = %v, want the code 42 the command exits with on SIGTERM", err)
	}
}

func TestRunFailedFetchStartsNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	v := canary(t)
	h.mustRun(v, "secret", "put", "db/password", "--stdin")
	h.mustRun("", "key", "create", "--name", "agents")
	child, file := h.helperCommand([]string{"A"})

	out, errOut, err := h.run("", h.runArgs([]string{"--secret", "A=db/password", "--secret", "B=db/missing", "--key", "agents"}, child)...)
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"--secret B", "db/missing", "not found", "was not started"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if childVars(t, file) != nil {
		t.Error("the command ran although a secret could not be fetched")
	}
	if n := len(h.admin.keys); n != 1 {
		t.Errorf("%d keys exist, want only the template: no short-lived key may be made", n)
	}
	h.assertNotExposed(v, out, errOut, err.Error())

	h.admin.mu.Lock()
	h.admin.role = adminapi.RoleOperator
	h.admin.mu.Unlock()
	_, _, err = h.run("", h.runArgs([]string{"--secret", "A=db/password"}, child)...)
	if err == nil || !strings.Contains(err.Error(), "operator credentials cannot read secret values") {
		t.Errorf("operator: %v", err)
	}
	if childVars(t, file) != nil {
		t.Error("the command ran although the credential may not read secrets")
	}
}

func TestRunKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.mustRun("", "key", "create", "--name", "agents", "--env", "dev", "--allow-model", "gpt-4o*,claude-*", "--allow-provider", "openai,anthropic")
	four := []string{envOpenAIKey, envAnthropicKey, envOpenAIBase, envAnthropicBase}
	stale := canary(t) // an upstream key left in the environment must not reach the command
	child, file := h.helperCommand(four, envOpenAIKey+"="+stale, envAnthropicKey+"="+stale)

	out, errOut := h.mustRun("", h.runArgs([]string{"--key", "agents"}, child)...)
	vars := childVars(t, file)
	if vars == nil {
		t.Fatal("the command did not run")
	}
	if len(h.admin.keys) != 2 {
		t.Fatalf("keys = %+v, want the template and one short-lived key", h.admin.keys)
	}
	k := h.admin.keys[1]
	tok := h.admin.keySecrets[k.ID]
	if !regexp.MustCompile(`^agents\.run-[a-z0-9]{6}$`).MatchString(k.Name) {
		t.Errorf("short-lived key name %q", k.Name)
	}
	if k.Env != "dev" || strings.Join(k.AllowModels, ",") != "gpt-4o*,claude-*" || strings.Join(k.AllowProviders, ",") != "openai,anthropic" {
		t.Errorf("short-lived key %+v does not copy the template's env and allow lists", k)
	}
	if k.ExpiresAt == nil || k.ExpiresAt.Sub(k.CreatedAt) != time.Hour {
		t.Errorf("short-lived key expires at %v, want one hour after %v", k.ExpiresAt, k.CreatedAt)
	}
	if k.Status != "revoked" {
		t.Errorf("short-lived key is %s after the command exited, want revoked", k.Status)
	}
	if !strings.HasPrefix(tok, "kg_dev_") {
		t.Fatalf("short-lived key secret %q", tok)
	}
	wantVar(t, vars, envOpenAIKey, tok)
	wantVar(t, vars, envAnthropicKey, tok)
	wantVar(t, vars, envOpenAIBase, "https://gateway.test:8787/v1")
	wantVar(t, vars, envAnthropicBase, "https://gateway.test:8787")
	if out != "hello from the command\n" || errOut != "note from the command\n" {
		t.Errorf("stdout %q stderr %q: want only the command's own output", out, errOut)
	}
	h.assertNotExposed(tok, out, errOut)
	h.assertNotExposed(stale, out, errOut)

	// The environment names the gateway ahead of keygate's report; the flag goes first of all.
	h.env[EnvGatewayURL] = "https://gw.example.test/"
	h.mustRun("", h.runArgs([]string{"--key", "agents"}, child)...)
	wantVar(t, childVars(t, file), envOpenAIBase, "https://gw.example.test/v1")
	h.mustRun("", h.runArgs([]string{"--key", "key_test1", "--gateway", "http://127.0.0.1:9999", "--ttl", "30m"}, child)...)
	vars = childVars(t, file)
	wantVar(t, vars, envAnthropicBase, "http://127.0.0.1:9999")
	k = h.admin.keys[len(h.admin.keys)-1]
	if k.ExpiresAt == nil || k.ExpiresAt.Sub(k.CreatedAt) != 30*time.Minute || k.Status != "revoked" || !strings.HasPrefix(k.Name, "agents.run-") {
		t.Errorf("--ttl 30m: key %+v", k)
	}
}

func TestRunKeyEdgeCases(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	long := strings.Repeat("a", 60)
	h.mustRun("", "key", "create", "--name", long)
	child, _ := h.helperCommand(nil)
	h.mustRun("", h.runArgs([]string{"--key", long}, child)...)
	k := h.admin.keys[1]
	if len(k.Name) > 64 || !strings.HasPrefix(k.Name, long[:53]+".run-") {
		t.Errorf("short-lived key name %q (%d characters)", k.Name, len(k.Name))
	}

	h.admin.mu.Lock()
	h.admin.failRevoke = true
	h.admin.mu.Unlock()
	out, errOut := h.mustRun("", h.runArgs([]string{"--key", long}, child)...)
	k = h.admin.keys[2]
	for _, want := range []string{"warning: could not revoke", k.ID, "keygate key revoke " + k.ID} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q: %s", want, errOut)
		}
	}
	h.assertNotExposed(h.admin.keySecrets[k.ID], out, errOut)

	h.admin.mu.Lock()
	h.admin.failRevoke = false
	h.admin.mu.Unlock()
	h.mustRun("", "key", "revoke", "key_test1")
	if _, _, err := h.run("", h.runArgs([]string{"--key", long}, child)...); err == nil || !strings.Contains(err.Error(), "is revoked") {
		t.Errorf("revoked template: %v", err)
	}
}

func TestRunFlagErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	v := canary(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"run", "--secret", "A=db/password"}, "no command given"},
		{[]string{"run", "--", "true"}, "nothing to add"},
		{[]string{"run", "--secret", v, "--", "true"}, "ENV=NAME"},
		{[]string{"run", "--secret", "A=", "--", "true"}, "ENV=NAME"},
		{[]string{"run", "--secret", "1A=db/password", "--", "true"}, "environment variable name"},
		{[]string{"run", "--secret", "A-B=db/password", "--", "true"}, "environment variable name"},
		{[]string{"run", "--secret", "A=db/password", "--secret", "A=db/other", "--", "true"}, "A is set twice"},
		{[]string{"run", "--secret", "OPENAI_API_KEY=db/password", "--key", "agents", "--", "true"}, "OPENAI_API_KEY is set twice"},
		{[]string{"run", "--secret", "A=db/password@0", "--", "true"}, "version after '@'"},
		{[]string{"run", "--secret", "A=db/password@x", "--", "true"}, "version after '@'"},
		{[]string{"run", "--secret", "A=db//password", "--", "true"}, "empty segment"},
		{[]string{"run", "--secret", "A=db/password", "--ttl", "2h", "--", "true"}, "--ttl goes with --key"},
		{[]string{"run", "--secret", "A=db/password", "--gateway", "http://x", "--", "true"}, "--gateway goes with --key"},
		{[]string{"run", "--key", "agents", "--ttl", "forever", "--", "true"}, "--ttl"},
		{[]string{"run", "--key", "agents", "--gateway", "gateway.test:8787", "--", "true"}, "--gateway"},
		{[]string{"run", "--key", "agents", "--gateway", "http://gateway.test:8787", "--", "true"}, "plain HTTP"},
	}
	for _, c := range cases {
		out, errOut, err := h.run("", c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one with %q", c.args, err, c.want)
			continue
		}
		h.assertNotExposed(v, out, errOut, err.Error())
	}
	if n := h.requestCount(); n != 0 {
		t.Errorf("%d requests reached the admin API, want none", n)
	}
}
