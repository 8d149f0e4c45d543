package cli

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/limitspec"
)

// canaryEnviron is a parent environment full of credentials, each value
// unique to the test, and a few harmless variables.
func canaryEnviron(t *testing.T) (environ []string, canaries map[string]string) {
	canaries = map[string]string{}
	for _, name := range []string{
		"AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN", "GITHUB_TOKEN", "GH_TOKEN", "NPM_TOKEN",
		"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "AZURE_CLIENT_SECRET",
		"STRIPE_SECRET", "DB_PASSWORD", "SLACK_BOT_TOKEN", "SSH_AUTH_SOCK", "CI_JOB_JWT", "VAULT_TOKEN",
		"KUBECONFIG", "DOCKER_AUTH_CONFIG", "MY_APP_CONFIG", EnvAdminToken,
	} {
		canaries[name] = canary(t)
		environ = append(environ, name+"="+canaries[name])
	}
	// Credentials inside allowed names' values.
	canaries["HTTPS_PROXY"] = "http://proxyuser:" + canary(t) + "@proxy.test:3128"
	canaries["DATABASE_URL"] = "postgres://app:" + canary(t) + "@db.test/app"
	environ = append(environ, "HTTPS_PROXY="+canaries["HTTPS_PROXY"], "DATABASE_URL="+canaries["DATABASE_URL"],
		"PATH=/usr/bin:/bin", "HOME=/home/test", "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "TERM=xterm-256color",
		"HTTP_PROXY=http://proxy.test:3128")
	return environ, canaries
}

// TestRunCleanEnvironment: a parent environment full of canary
// credentials reaches none of them to the command; the allow-list does,
// --keep-env adds what it names, and --inherit-env passes everything with
// a warning that names (never shows) what it passes.
func TestRunCleanEnvironment(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.mustRun("", "key", "create", "--name", "agents")
	h.mustRun(canary(t), "secret", "put", "db/password", "--stdin")
	environ, canaries := canaryEnviron(t)
	child, file := h.helperCommand([]string{"*"})
	h.environ = append(h.environ, environ...)

	out, errOut := h.mustRun("", h.runArgs([]string{"--key", "agents", "--agent", "generic"}, child)...)
	vars := childVars(t, file)
	if vars == nil {
		t.Fatal("the command did not run")
	}
	for name, v := range vars {
		if v == nil {
			continue
		}
		for cname, c := range canaries {
			if strings.Contains(*v, c) || strings.Contains(c, *v) && len(*v) > 8 {
				t.Errorf("the command's %s holds the canary of %s", name, cname)
			}
		}
	}
	for _, name := range []string{"PATH", "HOME", "LANG", "LC_ALL", "TERM", "HTTP_PROXY"} {
		if vars[name] == nil {
			t.Errorf("the command lacks %s, which the allow-list passes", name)
		}
	}
	if np := vars["NO_PROXY"]; np == nil || !strings.Contains(*np, "127.0.0.1") {
		t.Errorf("NO_PROXY = %v: with a proxy set, loopback must bypass it so the command reaches keygate's local gateway", np)
	}
	k := h.admin.keys[len(h.admin.keys)-1]
	wantVar(t, vars, envOpenAIKey, h.admin.keySecrets[k.ID]) // the run's own, not the parent's
	for _, c := range canaries {
		h.assertNotExposed(c, out, errOut)
	}

	// --keep-env passes what it names, prefixes included.
	h.mustRun("", h.runArgs([]string{"--secret", "X=db/password", "--keep-env", "GITHUB_TOKEN", "--keep-env", "AWS_*"}, child)...)
	vars = childVars(t, file)
	wantVar(t, vars, "GITHUB_TOKEN", canaries["GITHUB_TOKEN"])
	wantVar(t, vars, "AWS_SESSION_TOKEN", canaries["AWS_SESSION_TOKEN"])
	if vars["GH_TOKEN"] != nil || vars[EnvAdminToken] != nil {
		t.Error("--keep-env passed a variable it did not name")
	}

	// --inherit-env: everything but the admin credential, and a warning.
	_, errOut = h.mustRun("", h.runArgs([]string{"--secret", "X=db/password", "--inherit-env"}, child)...)
	vars = childVars(t, file)
	wantVar(t, vars, "AZURE_CLIENT_SECRET", canaries["AZURE_CLIENT_SECRET"])
	if vars[EnvAdminToken] != nil {
		t.Error("--inherit-env passed the admin credential")
	}
	for _, want := range []string{"warning: --inherit-env", "look like credentials", "AZURE_CLIENT_SECRET", "DATABASE_URL", "--keep-env"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("the warning lacks %q:\n%s", want, errOut)
		}
	}
	for _, c := range canaries {
		h.assertNotExposed(c, errOut)
	}

	for _, bad := range []string{"*", "A-B", "1X", ""} {
		if _, _, err := h.run("", "run", "--keep-env", bad, "--secret", "X=db/password", "--", "true"); err == nil || !strings.Contains(err.Error(), "--keep-env") {
			t.Errorf("--keep-env %q: %v", bad, err)
		}
	}
}

// TestRunMasksOutput: the command printing an injected secret, or its
// keygate credential, shows a placeholder in its place on stdout and
// stderr, even when the value is split across two writes.
func TestRunMasksOutput(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	v := canary(t)
	h.mustRun(v, "secret", "put", "db/password", "--stdin")
	h.mustRun("", "key", "create", "--name", "agents")
	child, _ := h.helperCommand(nil)
	h.environ = append(h.environ, "HELPER_PRINT=DB_PASSWORD")
	out, errOut := h.mustRun("", h.runArgs([]string{"--secret", "DB_PASSWORD=db/password"}, child)...)
	for _, o := range []string{out, errOut} {
		if strings.Count(o, maskText) != 2 || !strings.Contains(o, "the value is "+maskText+", twice: "+maskText+".") {
			t.Errorf("output %q: want the value concealed twice", o)
		}
	}
	h.assertNotExposed(v, out, errOut)

	h.environ = append(h.environ[:len(h.environ)-1], "HELPER_PRINT="+envOpenAIKey)
	out, errOut = h.mustRun("", h.runArgs([]string{"--key", "agents", "--agent", "generic"}, child)...)
	k := h.admin.keys[len(h.admin.keys)-1]
	h.assertNotExposed(h.admin.keySecrets[k.ID], out, errOut)
	if !strings.Contains(out, maskText) {
		t.Errorf("stdout %q: the keygate credential is not concealed", out)
	}
}

// fakeAgent writes a shell script named like an agent that records its
// arguments and environment, and what its profile's files hold, in dir.
func fakeAgent(t *testing.T, name string) (path, record string) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the fake agents are shell scripts")
	}
	dir := t.TempDir()
	record = filepath.Join(dir, "record")
	script := `#!/bin/sh
{
  echo "ARGS:$*"
  env | sed 's/^/ENV:/'
  if [ -n "$CODEX_HOME" ]; then sed 's/^/CODEX:/' "$CODEX_HOME/config.toml"; fi
  if [ -n "$GEMINI_CLI_HOME" ]; then sed 's/^/GEMINI:/' "$GEMINI_CLI_HOME/.gemini/settings.json"; fi
  if [ "$1" = "--settings" ]; then
    sed 's/^/SETTINGS:/' "$2"
    helper=$(sed -n 's/.*"apiKeyHelper": "\(.*\)",*$/\1/p' "$2")
    echo "HELPER:$(sh -c "$helper")"
    ls -ld "$2" | sed 's/^/MODE:/'
  fi
} > "$FAKE_AGENT_RECORD"
echo "$PPID" > "$FAKE_AGENT_RECORD.ppid"
[ -n "$FAKE_AGENT_KILL" ] && kill -9 $$
exit 0
`
	path = filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return path, record
}

type agentRecord struct {
	args     string
	env      map[string]string
	lines    []string
	helper   string
	settings string
}

func readRecord(t *testing.T, file string) agentRecord {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("the fake agent did not run: %v", err)
	}
	r := agentRecord{env: map[string]string{}}
	for _, l := range strings.Split(string(b), "\n") {
		r.lines = append(r.lines, l)
		switch {
		case strings.HasPrefix(l, "ARGS:"):
			r.args = strings.TrimPrefix(l, "ARGS:")
		case strings.HasPrefix(l, "ENV:"):
			k, v, _ := strings.Cut(strings.TrimPrefix(l, "ENV:"), "=")
			r.env[k] = v
		case strings.HasPrefix(l, "HELPER:"):
			r.helper = strings.TrimPrefix(l, "HELPER:")
		case strings.HasPrefix(l, "SETTINGS:"):
			r.settings += strings.TrimPrefix(l, "SETTINGS:") + "\n"
		}
	}
	return r
}

// TestRunAgentProfiles: each profile, picked by --agent auto from the
// command's name, points the agent at the gateway its own way, and hands
// it only the run's credential; nothing it wrote outlives the run.
func TestRunAgentProfiles(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tmp := t.TempDir()
	h.env["TMPDIR"] = tmp
	h.mustRun("", "key", "create", "--name", "agents")
	const gw = "https://gateway.test:8787"
	for _, c := range []struct {
		agent string
		check func(t *testing.T, r agentRecord, cred string)
	}{
		{"claude", func(t *testing.T, r agentRecord, cred string) {
			if !strings.HasPrefix(r.args, "--settings "+tmp) || !strings.HasSuffix(r.args, " -p hello") {
				t.Errorf("args %q: want --settings FILE before the user's own", r.args)
			}
			if r.helper != cred {
				t.Errorf("the apiKeyHelper printed %q, want the run's credential", r.helper)
			}
			var st struct {
				Env map[string]string `json:"env"`
			}
			if err := json.Unmarshal([]byte(r.settings), &st); err != nil || st.Env[envAnthropicBase] != gw {
				t.Errorf("settings %s: want env.ANTHROPIC_BASE_URL pinned to the gateway (%v)", r.settings, err)
			}
			if r.env[envAnthropicBase] != gw || r.env[envAnthropicKey] != "" {
				t.Errorf("env: base %q key %q: want the base URL and no key variable (the helper gives it)", r.env[envAnthropicBase], r.env[envAnthropicKey])
			}
		}},
		{"codex", func(t *testing.T, r agentRecord, cred string) {
			if !strings.HasPrefix(r.args, `-c model_provider="keygate" -c model_providers.keygate.base_url="`+gw+`/v1" exec`) {
				t.Errorf("args %q", r.args)
			}
			if !strings.HasPrefix(r.env["CODEX_HOME"], tmp) || r.env[envOpenAIKey] != cred {
				t.Errorf("CODEX_HOME %q, OPENAI_API_KEY %q", r.env["CODEX_HOME"], r.env[envOpenAIKey])
			}
			if !strings.Contains(strings.Join(r.lines, "\n"), `CODEX:base_url = "`+gw+`/v1"`) {
				t.Errorf("config.toml lacks the gateway: %v", r.lines)
			}
		}},
		{"gemini", func(t *testing.T, r agentRecord, cred string) {
			if r.env["GOOGLE_GEMINI_BASE_URL"] != gw || r.env["GOOGLE_VERTEX_BASE_URL"] != gw || r.env["GEMINI_API_KEY"] != cred || r.env["GOOGLE_GENAI_USE_VERTEXAI"] != "false" {
				t.Errorf("env %v", r.env)
			}
			if !strings.HasPrefix(r.env["GEMINI_CLI_HOME"], tmp) || !strings.Contains(strings.Join(r.lines, "\n"), `GEMINI:      "selectedType": "gemini-api-key"`) {
				t.Errorf("GEMINI_CLI_HOME %q holds no settings selecting API-key authentication: %v", r.env["GEMINI_CLI_HOME"], r.lines)
			}
		}},
		{"aider", func(t *testing.T, r agentRecord, cred string) {
			if !strings.HasPrefix(r.args, "--openai-api-base "+gw+"/v1 ") || r.env["OPENAI_API_BASE"] != gw+"/v1" || r.env[envOpenAIKey] != cred {
				t.Errorf("args %q env %v", r.args, r.env)
			}
		}},
		{"opencode", func(t *testing.T, r agentRecord, cred string) {
			var cfg map[string]any
			if err := json.Unmarshal([]byte(r.env["OPENCODE_CONFIG_CONTENT"]), &cfg); err != nil || !strings.Contains(r.env["OPENCODE_CONFIG_CONTENT"], gw+"/v1") {
				t.Errorf("OPENCODE_CONFIG_CONTENT %q (%v)", r.env["OPENCODE_CONFIG_CONTENT"], err)
			}
			if strings.Contains(r.env["OPENCODE_CONFIG_CONTENT"], cred) || r.env[envOpenAIKey] != cred {
				t.Error("opencode's inline config must name the key variable, not hold the key")
			}
		}},
		{"openclaw", func(t *testing.T, r agentRecord, cred string) {
			if r.env[envOpenAIBase] != gw+"/v1" || r.env[envAnthropicKey] != cred {
				t.Errorf("env %v", r.env)
			}
		}},
	} {
		t.Run(c.agent, func(t *testing.T) {
			bin, record := fakeAgent(t, c.agent)
			h.environ = []string{"FAKE_AGENT_RECORD=" + record, "PATH=/usr/bin:/bin"}
			args := []string{"-p", "hello"}
			if c.agent == "codex" {
				args = []string{"exec", "hello"}
			}
			h.mustRun("", append([]string{"run", "--keep-env", "FAKE_AGENT_RECORD", "--key", "agents", "--"}, append([]string{bin}, args...)...)...)
			r := readRecord(t, record)
			k := h.admin.keys[len(h.admin.keys)-1]
			c.check(t, r, h.admin.keySecrets[k.ID])
			if n := runDirsLeft(t, tmp); n != 0 {
				t.Errorf("%d run directories left after the run", n)
			}
			if k.Status != "revoked" {
				t.Errorf("the run's key is %s after the run", k.Status)
			}
		})
	}
}

func runDirsLeft(t *testing.T, tmp string) int {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(tmp, "keygate-run.*", runDirPrefix+"*"))
	return len(m)
}

// TestRunCleansUp: an agent killed with SIGKILL still has its files
// removed and keygate exits 137; a run directory whose keygate was killed
// is removed by the next run, and one whose keygate lives is left alone.
func TestRunCleansUp(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tmp := t.TempDir()
	h.env["TMPDIR"] = tmp
	h.mustRun("", "key", "create", "--name", "agents")

	// Leftovers: one of a keygate that is gone, one of a live process.
	root := filepath.Join(tmp, "keygate-run."+strconv.Itoa(os.Getuid()))
	os.MkdirAll(root, 0o700)
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	for name, pid := range map[string]int{"keygate-run-dead": gone.Process.Pid, "keygate-run-live": os.Getpid()} {
		os.MkdirAll(filepath.Join(root, name, "claude"), 0o700)
		os.WriteFile(filepath.Join(root, name, "owner"), []byte(strconv.Itoa(pid)), 0o600)
		os.WriteFile(filepath.Join(root, name, "claude", "credential"), []byte("kgl_left"), 0o600)
	}

	bin, record := fakeAgent(t, "claude")
	h.environ = []string{"FAKE_AGENT_RECORD=" + record, "FAKE_AGENT_KILL=1", "PATH=/usr/bin:/bin"}
	_, _, err := h.run("", "run", "--keep-env", "FAKE_AGENT_*", "--key", "agents", "--", bin, "-p", "x")
	var exit *ExitCodeError
	if !errors.As(err, &exit) || exit.Code != 137 {
		t.Fatalf("err = %v, want exit code 137 after SIGKILL", err)
	}
	if _, err := os.Stat(filepath.Join(root, "keygate-run-dead")); !errors.Is(err, os.ErrNotExist) {
		t.Error("the directory of a keygate that is gone was not removed")
	}
	if _, err := os.Stat(filepath.Join(root, "keygate-run-live")); err != nil {
		t.Error("the directory of a live run was removed")
	}
	os.RemoveAll(filepath.Join(root, "keygate-run-live"))
	if n := runDirsLeft(t, tmp); n != 0 {
		t.Errorf("%d run directories left after the agent was killed", n)
	}
	if k := h.admin.keys[len(h.admin.keys)-1]; k.Status != "revoked" {
		t.Errorf("the run's key is %s after the agent was killed", k.Status)
	}
}

// TestRunLimits: --max-requests and --max-spend become total quotas and
// budgets of the run's key, never above the template's.
func TestRunLimits(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.mustRun("", "key", "create", "--name", "agents", "--quota", "100", "--budget", "50usd/month")
	child, _ := h.helperCommand(nil)
	h.mustRun("", h.runArgs([]string{"--key", "agents", "--max-requests", "500", "--max-spend", "5usd"}, child)...)
	l := h.admin.keys[len(h.admin.keys)-1].Limits
	want := limitspec.Limits{
		Quotas:  []limitspec.Quota{{Limit: 100, Unit: "requests", Period: "total"}},
		Budgets: []limitspec.Budget{{MicroUSD: 50_000_000, Period: "month"}, {MicroUSD: 5_000_000, Period: "total"}},
	}
	if got, _ := json.Marshal(l); string(got) != mustJSON(want) {
		t.Errorf("limits %s, want %s", got, mustJSON(want))
	}
	for _, c := range []struct{ args []string }{
		{[]string{"--key", "agents", "--max-spend", "5usd/day"}},
		{[]string{"--key", "agents", "--max-spend", "lots"}},
		{[]string{"--key", "agents", "--max-requests", "-1"}},
		{[]string{"--secret", "X=db/password", "--max-requests", "5"}},
		{[]string{"--secret", "X=db/password", "--agent", "claude"}},
		{[]string{"--key", "agents", "--agent", "vim"}},
	} {
		if _, _, err := h.run("", h.runArgs(c.args, child)...); err == nil {
			t.Errorf("%v: want an error", c.args)
		}
	}
}

// TestRunPrintConfig shows what a profile sets without making a key or
// showing a credential.
func TestRunPrintConfig(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	out, _ := h.mustRun("", "run", "--agent", "claude", "--print-config")
	for _, want := range []string{"Claude Code", "ANTHROPIC_BASE_URL=" + placeholderGateway, "apiKeyHelper", "--settings " + placeholderDir} {
		if !strings.Contains(out, want) {
			t.Errorf("--print-config lacks %q:\n%s", want, out)
		}
	}
	out, _ = h.mustRun("", "run", "--print-config", "--", "/usr/local/bin/codex", "exec")
	if !strings.Contains(out, "Codex CLI") || !strings.Contains(out, "wire_api") {
		t.Errorf("--agent auto with codex:\n%s", out)
	}
	if n := h.requestCount(); n != 0 {
		t.Errorf("--print-config made %d requests", n)
	}
}
