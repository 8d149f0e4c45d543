package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/cli"
	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/scan/scantest"
)

// git runs git in dir for a test, with a fixed identity and no user config.
func gitIn(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=Ada Lovelace", "GIT_AUTHOR_EMAIL=ada@example.com", "GIT_COMMITTER_NAME=ci", "GIT_COMMITTER_EMAIL=ci@example.com")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func exitCode(err error) int {
	var e *cli.ExitCodeError
	if errors.As(err, &e) {
		return e.Code
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestScanFindsImportsAndRuns is the end to end of `keygate scan`: a
// repository holds planted credentials in its files and in its history.
// `scan --git --format sarif` finds them all, naming the commit that added
// the one only history holds; `scan --import --rewrite --revoke-found`
// moves the provider key into the vault as a new version of the provider's
// key, the password as a secret, replaces both in the file by references
// and revokes the keygate key; `keygate run --env-file` gives them back to
// a child, which reaches the provider through keygate with the imported
// key. No value is printed or logged on the way.
func TestScanFindsImportsAndRuns(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	g := scantest.NewGen(uint64(time.Now().UnixNano()))
	planted := g.Positive("openai-project-key").Secret // made at run time
	password := "Pw-" + g.Positive("generic-secret").Secret
	ghToken := g.CRC32Token("ghp_")

	// The fake OpenAI accepts only the planted key: a call succeeds only
	// if --import made it the provider's key.
	fake := fakeprovider.NewOpenAI(fakeprovider.Options{APIKey: planted})
	srv := httptest.NewServer(fake)
	t.Cleanup(func() { fake.Close(); srv.Close() })
	in := start(t, testConfig(t, t.TempDir()), "")
	in.mustCLI(map[string]string{"OLD_KEY": canary("old-openai")}, "",
		"provider", "add", "openai", "--base-url", srv.URL+"/v1", "--api-key-env", "OLD_KEY", "--models", "gpt-*")
	leakedKey := in.createKey("--name", "leaked-agent")

	repo := t.TempDir()
	gitIn(t, repo, nil, "init", "-q", "-b", "main")
	writeFile(t, repo, "scripts/deploy.py", "GITHUB_TOKEN = \""+ghToken+"\"\n")
	writeFile(t, repo, "README.md", "# app\n")
	gitIn(t, repo, nil, "add", "-A")
	gitIn(t, repo, []string{"GIT_AUTHOR_DATE=2024-05-01T12:00:00Z", "GIT_COMMITTER_DATE=2024-05-01T12:00:00Z"}, "commit", "-q", "-m", "deploy script")
	first := gitIn(t, repo, nil, "rev-parse", "HEAD")
	writeFile(t, repo, "scripts/deploy.py", "GITHUB_TOKEN = os.environ[\"GITHUB_TOKEN\"]\n")
	writeFile(t, repo, ".env", "OPENAI_API_KEY="+planted+"\nAPP_SECRET="+password+"\nLOG_LEVEL=debug\n")
	writeFile(t, repo, "agent/config.yaml", "gateway: http://127.0.0.1:8787\napi_key: "+leakedKey+"\n")
	gitIn(t, repo, nil, "add", "-A")
	gitIn(t, repo, nil, "commit", "-q", "-m", "configure")

	values := []string{planted, password, ghToken, leakedKey}
	noValue := func(what, s string) {
		t.Helper()
		for _, v := range values {
			if strings.Contains(s, v) {
				t.Fatalf("%s holds a found credential", what)
			}
		}
	}

	// 1. History, as SARIF.
	out, errOut, err := in.cli(nil, "", "scan", "--git", "--format", "sarif", repo)
	if exitCode(err) != 1 {
		t.Fatalf("scan --git: exit %d (%v), want 1\n%s", exitCode(err), err, errOut)
	}
	noValue("the SARIF report", out)
	var log struct {
		Version string
		Runs    []struct {
			Results []struct {
				RuleID    string
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct{ URI string }
						Region           struct{ StartLine int }
					}
				}
				Properties map[string]string
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &log); err != nil || log.Version != "2.1.0" {
		t.Fatalf("not SARIF 2.1.0: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, r := range log.Runs[0].Results {
		got[r.RuleID] = r.Locations[0].PhysicalLocation.ArtifactLocation.URI
		if r.RuleID == "github-pat" && (r.Properties["commit"] != first || r.Properties["author"] != "Ada Lovelace" || !strings.HasPrefix(r.Properties["date"], "2024-05-01")) {
			t.Fatalf("the history finding does not name its commit: %+v", r.Properties)
		}
	}
	want := map[string]string{"github-pat": "scripts/deploy.py", "openai-project-key": ".env", "generic-secret": ".env", "keygate-api-key": "agent/config.yaml"}
	for rule, uri := range want {
		if got[rule] != uri {
			t.Fatalf("SARIF results %v; want %s in %s", got, rule, uri)
		}
	}

	// 2. Import, rewrite, revoke.
	out, errOut, err = in.cli(nil, "", "scan", "--import", "--rewrite", "--revoke-found", repo)
	if exitCode(err) != 1 {
		t.Fatalf("scan --import: exit %d (%v)\n%s\n%s", exitCode(err), err, out, errOut)
	}
	noValue("scan --import's output", out+errOut)
	for _, s := range []string{"imported as key version 2 of provider openai", "imported as secret imported/env/APP_SECRET", "keygate key leaked-agent", "revoked"} {
		if !strings.Contains(errOut, s) {
			t.Fatalf("scan --import did not say %q:\n%s", s, errOut)
		}
	}
	env, _ := os.ReadFile(filepath.Join(repo, ".env"))
	if string(env) != "OPENAI_API_KEY=keygate://provider/openai\nAPP_SECRET=keygate://secret/imported/env/APP_SECRET\nLOG_LEVEL=debug\n" {
		t.Fatalf(".env after --rewrite:\n%s", env)
	}
	var keys struct{ Keys []adminapi.Key }
	decodeJSON(t, in.mustCLI(nil, "", "--json", "key", "list"), &keys)
	for _, k := range keys.Keys {
		if k.Name == "leaked-agent" && k.Status != "revoked" {
			t.Fatalf("the found keygate key is %s, want revoked", k.Status)
		}
	}
	if _, _, err := in.cli(nil, "", "scan", filepath.Join(repo, ".env")); err != nil {
		t.Fatalf("the rewritten .env still holds credentials: %v", err)
	}

	// 3. keygate run gives them back to a child: the password, and a
	// credential that reaches OpenAI through keygate with the imported key.
	var runOut, runErr strings.Builder
	e := map[string]string{"KEYGATE_ADMIN_URL": in.addrs.Admin, "KEYGATE_ADMIN_TOKEN": in.admin, "HOME": t.TempDir()}
	err = runEnviron(context.Background(), []string{"run", "--keep-env", "KEYGATE_TEST_CHILD", "--env-file", filepath.Join(repo, ".env"), "--", os.Args[0]},
		func(k string) string { return e[k] }, func() []string { return []string{"KEYGATE_TEST_CHILD=1"} }, strings.NewReader(""), &runOut, &runErr)
	if err != nil {
		t.Fatalf("keygate run: %v\n%s\n%s", err, runOut.String(), runErr.String())
	}
	sum := sha256.Sum256([]byte(password))
	if !strings.Contains(runOut.String(), "secret_sha256="+hex.EncodeToString(sum[:])) || !strings.Contains(runOut.String(), "status=200") {
		t.Fatalf("the child's view: %q", runOut.String())
	}
	reqs := fake.Requests()
	if len(reqs) == 0 || reqs[len(reqs)-1].Header.Get("Authorization") != "Bearer "+planted {
		t.Fatal("the child's call did not reach the provider with the imported key")
	}
	noValue("keygate run's output", runOut.String()+runErr.String())
	noValue("keygate's logs", in.stdout.String()+in.stderr.String())
}

// TestScanCommand checks the command line's contract: exit codes 0, 1
// and 2, --output, standard input, the JSON format as a baseline, and the
// pre-commit hook.
func TestScanCommand(t *testing.T) {
	g := scantest.NewGen(uint64(time.Now().UnixNano()))
	dir := t.TempDir()
	writeFile(t, dir, "main.go", "package main\n")
	run0 := func(stdin string, args ...string) (string, string, error) {
		var out, errb strings.Builder
		err := run(context.Background(), args, func(string) string { return "" }, strings.NewReader(stdin), &out, &errb)
		return out.String(), errb.String(), err
	}
	if out, _, err := run0("", "scan", dir); err != nil || !strings.Contains(out, "no credentials found") {
		t.Fatalf("clean directory: %v %q", err, out)
	}
	key := g.Positive("anthropic-api-key").Secret
	writeFile(t, dir, "cfg/app.env", "ANTHROPIC_API_KEY="+key+"\n")
	report := filepath.Join(t.TempDir(), "report.json")
	out, _, err := run0("", "scan", "--format", "json", "--output", report, dir)
	if exitCode(err) != 1 || out != "" {
		t.Fatalf("findings: exit %d, stdout %q", exitCode(err), out)
	}
	b, _ := os.ReadFile(report)
	var fs []struct {
		RuleID string `json:"rule_id"`
		File   string `json:"file"`
	}
	if err := json.Unmarshal(b, &fs); err != nil || len(fs) != 1 || fs[0].RuleID != "anthropic-api-key" || fs[0].File != "cfg/app.env" || strings.Contains(string(b), key) {
		t.Fatalf("JSON report: %v %s", err, b)
	}
	if _, _, err := run0("", "scan", "--baseline", report, dir); err != nil {
		t.Fatalf("with the report as baseline nothing is new: %v", err)
	}
	if out, _, err := run0("OPENAI_API_KEY="+g.Positive("openai-legacy-key").Secret+"\n", "scan", "-"); exitCode(err) != 1 || !strings.Contains(out, "-:1:16: openai-legacy-key") {
		t.Fatalf("stdin: %d %q", exitCode(err), out)
	}
	_, errOut, err := run0("", "scan", "--git", "--staged", dir)
	if exitCode(err) != 2 || !strings.Contains(errOut, "--git and --staged") {
		t.Fatalf("bad flags: exit %d %q", exitCode(err), errOut)
	}
	if _, errOut, err := run0("", "scan", filepath.Join(dir, "missing")); exitCode(err) != 2 || errOut == "" {
		t.Fatalf("missing path: exit %d %q", exitCode(err), errOut)
	}

	if _, err := exec.LookPath("git"); err != nil {
		return
	}
	repo := t.TempDir()
	gitIn(t, repo, nil, "init", "-q", "-b", "main")
	if out, _, err := run0("", "scan", "install-hook", repo); err != nil || !strings.Contains(out, "installed") {
		t.Fatalf("install-hook: %v %q", err, out)
	}
	hook := filepath.Join(repo, ".git", "hooks", "pre-commit")
	fi, err := os.Stat(hook)
	if err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Fatalf("hook: %v %v", err, fi)
	}
	if h, _ := os.ReadFile(hook); !strings.Contains(string(h), "keygate scan --staged") {
		t.Fatalf("hook script: %s", h)
	}
	writeFile(t, repo, ".git/hooks/pre-commit", "#!/bin/sh\necho mine\n")
	if _, _, err := run0("", "scan", "install-hook", repo); err == nil {
		t.Fatal("an existing hook was replaced without --force")
	}
	writeFile(t, repo, "a.env", "STRIPE_KEY="+g.Positive("stripe-secret-key").Secret+"\n")
	gitIn(t, repo, nil, "add", "a.env")
	if out, _, err := run0("", "scan", "--staged", repo); exitCode(err) != 1 || !strings.Contains(out, "a.env:1:12: stripe-secret-key") {
		t.Fatalf("staged: exit %d %q", exitCode(err), out)
	}
}

// TestKeyReportLeak: a person reports a keygate key found in the wild; it
// is revoked at once and the report is on the audit trail; a key keygate
// never issued changes nothing. The key is never echoed or recorded.
func TestKeyReportLeak(t *testing.T) {
	in := start(t, testConfig(t, t.TempDir()), "")
	key := in.createKey("--name", "pasted-in-chat")
	out := in.mustCLI(nil, key+"\n", "key", "report-leak", "-", "--where", "https://chat.example/room/1")
	if !strings.Contains(out, "pasted-in-chat") || !strings.Contains(out, "revoked") {
		t.Fatalf("report-leak: %q", out)
	}
	var k adminapi.Key
	decodeJSON(t, in.mustCLI(nil, "", "--json", "key", "show", "pasted-in-chat"), &k)
	if k.Status != "revoked" {
		t.Fatalf("the reported key is %s", k.Status)
	}
	if code, _ := postJSON(t, in.addrs.Gateway+"/v1/chat/completions", key, `{"model":"gpt-4o-mini","messages":[]}`); code != 401 {
		t.Fatalf("the reported key still works: %d", code)
	}
	g := scantest.NewGen(uint64(time.Now().UnixNano()))
	out = in.mustCLI(nil, "", "key", "report-leak", g.KeygateKey("live"))
	if !strings.Contains(out, "not a key this keygate issued") {
		t.Fatalf("unknown key: %q", out)
	}
	if _, errOut, err := in.cli(nil, "", "key", "report-leak", "kg_live_short"); err == nil || strings.Contains(errOut, "kg_live_short") {
		t.Fatalf("a malformed key must be refused before anything is sent: %v", err)
	}
	var events string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		// The trail is written in batches.
		events = in.mustCLI(nil, "", "--json", "audit", "search", "--type", "key.leak_reported")
		if strings.Contains(events, "false_positive") {
			break
		}
	}
	if !strings.Contains(events, "true_positive") || !strings.Contains(events, "false_positive") || strings.Contains(events, key) {
		t.Fatalf("audit events: %.3000s", events)
	}
	if strings.Contains(in.stdout.String()+in.stderr.String(), key) {
		t.Fatal("the reported key was logged")
	}
}
