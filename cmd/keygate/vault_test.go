package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/cli"
	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/server"
)

// TestMain lets a test start this test binary as a real keygate process
// (for kill -9): with KEYGATE_TEST_MAIN set to a JSON list of arguments, it
// runs keygate's main with them instead of the tests.
func TestMain(m *testing.M) {
	if args := os.Getenv("KEYGATE_TEST_MAIN"); args != "" {
		var a []string
		if err := json.Unmarshal([]byte(args), &a); err != nil {
			fmt.Fprintln(os.Stderr, "KEYGATE_TEST_MAIN:", err)
			os.Exit(2)
		}
		os.Args = append([]string{"keygate"}, a...)
		main()
		os.Exit(0)
	}
	if os.Getenv("KEYGATE_TEST_CHILD") == "1" {
		os.Exit(childMain())
	}
	os.Exit(m.Run())
}

// childMain is the program `keygate run` starts in TestKeygateRun: it
// reports what it was given without printing any secret, and calls the
// gateway the way an agent would.
func childMain() int {
	sum := sha256.Sum256([]byte(os.Getenv("APP_SECRET")))
	fmt.Printf("secret_sha256=%s\n", hex.EncodeToString(sum[:]))
	key := os.Getenv("OPENAI_API_KEY")
	if key == "" {
		return 0
	}
	fmt.Printf("key_prefix=%s same_key=%v anthropic_base=%s openai_base=%s\n", key[:min(4, len(key))], key == os.Getenv("ANTHROPIC_API_KEY"), os.Getenv("ANTHROPIC_BASE_URL"), os.Getenv("OPENAI_BASE_URL"))
	req, _ := http.NewRequest("POST", os.Getenv("OPENAI_BASE_URL")+"/chat/completions",
		strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println("error:", err)
		return 3
	}
	resp.Body.Close()
	fmt.Printf("status=%d\n", resp.StatusCode)
	if resp.StatusCode != 200 {
		return 4
	}
	return 0
}

// TestKeygateRun starts a program with a secret in its environment and an
// agent with a short-lived keygate credential, through a real keygate.
func TestKeygateRun(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	in := start(t, cfg, "")
	up := newUpstreams(t, fakeprovider.Options{}, fakeprovider.Options{})
	in.register(up)
	value := canary("run-secret")
	in.mustCLI(map[string]string{"V": value}, "", "secret", "put", "payments/stripe", "--from-env", "V")
	in.createKey("--name", "openclaw", "--allow-provider", "openai")

	runIt := func(args ...string) (string, string, error) {
		e := map[string]string{"KEYGATE_ADMIN_URL": in.addrs.Admin, "KEYGATE_ADMIN_TOKEN": in.admin, "HOME": t.TempDir()}
		var out, errb strings.Builder
		// keygate run passes the child a clean environment: keep the variable that makes this binary the child.
		args = append([]string{args[0], "--keep-env", "KEYGATE_TEST_CHILD"}, args[1:]...)
		err := runEnviron(context.Background(), args, func(k string) string { return e[k] },
			func() []string { return []string{"KEYGATE_TEST_CHILD=1"} }, strings.NewReader(""), &out, &errb)
		return out.String(), errb.String(), err
	}
	out, errOut, err := runIt("run", "--secret", "APP_SECRET=payments/stripe", "--", os.Args[0])
	if err != nil {
		t.Fatalf("keygate run: %v\n%s", err, errOut)
	}
	sum := sha256.Sum256([]byte(value))
	if !strings.Contains(out, "secret_sha256="+hex.EncodeToString(sum[:])) {
		t.Fatalf("the program did not get the secret: %q", out)
	}
	if strings.Contains(out+errOut+in.stderr.String(), value) {
		t.Fatal("the secret was printed or logged")
	}

	out, errOut, err = runIt("run", "--key", "openclaw", "--", os.Args[0])
	if err != nil {
		t.Fatalf("keygate run --key: %v\n%s\n%s", err, out, errOut)
	}
	// The agent sees a loopback gateway and a credential that works only
	// there; keygate run sends the real gateway short-lived tokens.
	if !strings.Contains(out, "key_prefix=kgl_") || !strings.Contains(out, "same_key=true") ||
		!strings.Contains(out, "openai_base=http://127.0.0.1:") || !strings.Contains(out, "status=200") {
		t.Fatalf("the agent's view: %q", out)
	}
	if strings.Contains(out, "kg_live_") {
		t.Fatal("the agent saw a keygate key")
	}
	reqs := up.openai.Requests()
	if len(reqs) == 0 || reqs[len(reqs)-1].Header.Get("Authorization") != "Bearer "+up.openaiKey {
		t.Fatal("the agent's call did not reach the upstream with the real key")
	}
	if strings.Contains(out, up.openaiKey) {
		t.Fatal("the agent saw the upstream key")
	}
	// The short-lived key is revoked once the program exits; it inherited
	// the named key's scopes.
	var keys []adminapi.Key
	var list struct {
		Keys []adminapi.Key `json:"keys"`
	}
	decodeJSON(t, in.mustCLI(nil, "", "--json", "key", "list"), &list)
	keys = list.Keys
	found := false
	for _, k := range keys {
		if strings.HasPrefix(k.Name, "openclaw.run-") {
			found = true
			if k.Status != "revoked" || len(k.AllowProviders) != 1 || k.AllowProviders[0] != "openai" {
				t.Fatalf("the run key afterwards: %+v", k)
			}
		}
	}
	if !found {
		t.Fatal("no short-lived key was made")
	}

	// The program's exit code is keygate's.
	_, _, err = runIt("run", "--key", "openclaw", "--gateway", "http://127.0.0.1:1", "--", os.Args[0])
	var exit *cli.ExitCodeError
	if !errors.As(err, &exit) || exit.Code != 3 {
		t.Fatalf("exit code: %v", err)
	}
}

// randomKeyURL returns a base64key:// KEK URL (gocloud's local keeper) with
// a key made at run time.
func randomKeyURL(t *testing.T) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "base64key://" + base64.URLEncoding.EncodeToString(b)
}

func decodeJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("decode %T from %q: %v", v, s, err)
	}
}

// waitRotation polls `keygate vault status` until the latest rotation
// finishes.
func (in *instance) waitRotation() adminapi.VaultStatus {
	in.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var st adminapi.VaultStatus
		decodeJSON(in.t, in.mustCLI(nil, "", "--json", "vault", "status"), &st)
		if st.Rotation != nil && st.Rotation.State == "finished" {
			return st
		}
		if time.Now().After(deadline) {
			in.t.Fatalf("the KEK rotation did not finish: %+v", st.Rotation)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestVaultCanaries stores known secrets through every path keygate has
// (provider add, secret put, provider rotation, KEK rotation, backup) and
// then searches every place they could leak: the database file and its WAL
// while keygate runs and after it stops, the backup file, the logs, and
// every admin answer except the one explicit `secret get`.
func TestVaultCanaries(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	in := start(t, cfg, "")
	up := newUpstreams(t, fakeprovider.Options{}, fakeprovider.Options{})
	in.register(up)
	appSecret, rotated := canary("app-secret"), canary("rotated")
	kekURL := randomKeyURL(t)
	kekMaterial := strings.TrimPrefix(kekURL, "base64key://")

	in.mustCLI(map[string]string{"STRIPE_KEY": appSecret}, "", "secret", "put", "payments/stripe", "--from-env", "STRIPE_KEY")
	up.openai.AddAPIKey(rotated)
	in.mustCLI(map[string]string{"NEW_KEY": rotated}, "", "provider", "rotate", "openai", "--api-key-env", "NEW_KEY", "--grace", "1h")
	key := in.createKey("--name", "canary-app")
	if code, body := postJSON(t, in.addrs.Gateway+"/v1/chat/completions", key, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`); code != 200 {
		t.Fatalf("after rotation: %d %s", code, body)
	}
	if got := up.openai.Requests(); len(got) == 0 || got[len(got)-1].Header.Get("Authorization") != "Bearer "+rotated {
		t.Fatal("the gateway did not send the rotated key upstream")
	}
	in.mustCLI(map[string]string{"NEW_KEK": kekURL}, "", "vault", "rotate-kek", "--to-env", "NEW_KEK", "--wait")
	in.waitRotation()
	backup := filepath.Join(t.TempDir(), "keygate.kgbackup")
	in.mustCLI(nil, "", "vault", "backup", "--out", backup)

	var answers strings.Builder
	for _, args := range [][]string{
		{"--json", "secret", "list"}, {"--json", "secret", "versions", "payments/stripe"}, {"secret", "list"},
		{"--json", "vault", "status"}, {"vault", "status"}, {"--json", "provider", "list"}, {"provider", "show", "openai"},
	} {
		answers.WriteString(in.mustCLI(nil, "", args...))
	}
	if got := strings.TrimSpace(in.mustCLI(nil, "", "secret", "get", "payments/stripe")); got != appSecret {
		t.Fatal("secret get did not return the stored value")
	}
	running := filesUnder(t, cfg.DataDir)
	wal, _ := filepath.Glob(filepath.Join(cfg.DataDir, "*-wal"))
	if len(wal) == 0 {
		t.Fatal("no WAL file to search while keygate runs")
	}
	in.stop()
	backupBytes, err := os.ReadFile(backup)
	if err != nil || len(backupBytes) == 0 {
		t.Fatalf("backup: %v", err)
	}
	places := map[string]string{
		"data files while running": string(running), "data files after stop": string(filesUnder(t, cfg.DataDir)),
		"backup file": string(backupBytes), "stdout": in.stdout.String(), "logs": in.stderr.String(),
		"admin answers": answers.String(),
	}
	for name, c := range map[string]string{
		"the provider key": up.openaiKey, "the other provider key": up.anthropicKey, "the rotated provider key": rotated,
		"the stored secret": appSecret, "the new KEK's key material": kekMaterial,
	} {
		for where, text := range places {
			if strings.Contains(text, c) {
				t.Errorf("%s appears in %s", name, where)
			}
		}
	}
}

// TestProviderRotationKeepsInFlightRequests: a stream that started before a
// provider key rotation finishes with the old key; the next request uses
// the new one; the old one is destroyed after its grace.
func TestProviderRotationKeepsInFlightRequests(t *testing.T) {
	for name, db := range databases(t) {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
			cfg.Database = db(t)
			cfg.Vault.JanitorInterval = 50 * time.Millisecond
			in := start(t, cfg, "")
			up := newUpstreams(t, fakeprovider.Options{Chunks: 20, ChunkDelay: 25 * time.Millisecond}, fakeprovider.Options{})
			in.register(up)
			key := in.createKey("--name", "streamer")

			type result struct {
				code int
				body string
			}
			done := make(chan result, 1)
			go func() {
				code, body := postJSON(t, in.addrs.Gateway+"/v1/chat/completions", key,
					`{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
				done <- result{code, body}
			}()
			deadline := time.Now().Add(10 * time.Second)
			for up.openai.RequestCount() == 0 {
				if time.Now().After(deadline) {
					t.Fatal("the stream never reached the upstream")
				}
				time.Sleep(5 * time.Millisecond)
			}
			newKey := canary("new")
			up.openai.AddAPIKey(newKey)
			in.mustCLI(map[string]string{"NEW": newKey}, "", "provider", "rotate", "openai", "--api-key-env", "NEW", "--grace", "1s")
			r := <-done
			if r.code != 200 || !strings.Contains(r.body, "[DONE]") {
				t.Fatalf("the in-flight stream did not finish: %d %s", r.code, r.body)
			}
			if code, body := postJSON(t, in.addrs.Gateway+"/v1/chat/completions", key, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`); code != 200 {
				t.Fatalf("after rotation: %d %s", code, body)
			}
			reqs := up.openai.Requests()
			if len(reqs) != 2 || reqs[0].Header.Get("Authorization") != "Bearer "+up.openaiKey || reqs[1].Header.Get("Authorization") != "Bearer "+newKey {
				t.Fatalf("upstream saw %d requests; the first must carry the old key and the second the new one", len(reqs))
			}
			// After the grace the janitor destroys the old version.
			deadline = time.Now().Add(10 * time.Second)
			for {
				if strings.Contains(in.stderr.String(), "superseded_versions=1") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the old provider key was not destroyed after its grace:\n%s", in.stderr.String())
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// TestBackupRestoreOnAnotherMachine: a backup made on one keygate restores
// into a new data directory that has the same KEK, and everything works
// there: the admin credential, the keygate keys, the provider keys and the
// secrets. Without the KEK the restore is refused and writes nothing.
func TestBackupRestoreOnAnotherMachine(t *testing.T) {
	const passEnv = "KEYGATE_TEST_PASSPHRASE"
	passphrase := "correct horse " + canary("pass")
	env := map[string]string{passEnv: passphrase}
	for _, kek := range []string{"file", "passphrase"} {
		t.Run(kek, func(t *testing.T) {
			if kek == "passphrase" {
				t.Setenv(passEnv, passphrase)
			}
			src := testConfig(t, t.TempDir())
			if kek == "passphrase" {
				src.KEK = "passphrase://?env=" + passEnv
			}
			a := start(t, src, "")
			up := newUpstreams(t, fakeprovider.Options{}, fakeprovider.Options{})
			a.register(up)
			key := a.createKey("--name", "traveller")
			value := canary("travelling-secret")
			a.mustCLI(map[string]string{"V": value}, "", "secret", "put", "team/db", "--from-env", "V")
			backup := filepath.Join(t.TempDir(), "backup.kgbackup")
			a.mustCLI(nil, "", "vault", "backup", "--out", backup)
			a.stop()

			// A machine without the KEK: refused, nothing written.
			if kek == "file" {
				bare := filepath.Join(t.TempDir(), "bare")
				_, errOut, err := a.cli(nil, "", "vault", "restore", "--in", backup, "--data-dir", bare)
				if err == nil {
					t.Fatal("restore without the master key succeeded")
				}
				if strings.Contains(errOut+err.Error(), value) {
					t.Fatal("a refused restore printed the secret")
				}
				if _, statErr := os.Stat(filepath.Join(bare, "keygate.db")); statErr == nil {
					if out, _, _ := a.cli(nil, "", "vault", "restore", "--in", backup, "--data-dir", bare); strings.Contains(out, "Restored") {
						t.Fatal("a second try restored without the key")
					}
				}
			}

			dst := testConfig(t, t.TempDir())
			dst.KEK = src.KEK
			if kek == "file" {
				if err := os.MkdirAll(dst.DataDir, 0o700); err != nil {
					t.Fatal(err)
				}
				mk, err := os.ReadFile(src.MasterKeyPath())
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(dst.MasterKeyPath(), mk, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			args := []string{"vault", "restore", "--in", backup, "--data-dir", dst.DataDir}
			if dst.KEK != "" {
				args = append(args, "--kek", dst.KEK)
			}
			out := a.mustCLI(env, "", args...)
			if !strings.Contains(out, "Restored 2 providers, 1 keys, 1 secrets") {
				t.Fatalf("restore said %q", out)
			}
			b := start(t, dst, a.admin) // the source's admin credential works here
			if got := strings.TrimSpace(b.mustCLI(nil, "", "secret", "get", "team/db")); got != value {
				t.Fatal("the restored secret does not open")
			}
			if code, body := postJSON(t, b.addrs.Gateway+"/v1/chat/completions", key, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`); code != 200 {
				t.Fatalf("the source's keygate key through the restored gateway: %d %s", code, body)
			}
			reqs := up.openai.Requests()
			if reqs[len(reqs)-1].Header.Get("Authorization") != "Bearer "+up.openaiKey {
				t.Fatal("the restored gateway did not send the restored provider key")
			}
			// A second restore into a database in use is refused.
			if _, _, err := b.cli(env, "", args...); err == nil || !strings.Contains(err.Error(), "empty") {
				t.Fatalf("restore into a used database: %v", err)
			}
		})
	}
}

// TestRefusesToStartWithoutItsKEK: keygate never runs unencrypted or with
// a key that cannot open its vault; the error names the KEK (redacted) and
// the cause.
func TestRefusesToStartWithoutItsKEK(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	in := start(t, cfg, "")
	in.stop()
	keyMaterial := "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo"
	for name, c := range map[string]struct {
		kek, want string
	}{
		"a KMS key that does not exist":    {"base64key://" + keyMaterial, "base64key://REDACTED"},
		"a different passphrase KEK":       {"passphrase://?env=KEYGATE_TEST_NO_SUCH_VAR", "KEYGATE_TEST_NO_SUCH_VAR"},
		"a key file that is missing":       {"file://" + filepath.Join(dir, "elsewhere.key"), "elsewhere.key"},
		"an unsupported key service":       {"vaultron://key", "vaultron"},
		"a KMS nobody can reach right now": {"hashivault://keygate-test?", "hashivault"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := cfg
			cfg.KEK = c.kek
			cfg.MasterKeyFile = ""
			t.Setenv("VAULT_SERVER_URL", "http://127.0.0.1:1")
			t.Setenv("VAULT_SERVER_TOKEN", "fake-token-for-tests")
			var out, errb strings.Builder
			var startErr error
			done := make(chan struct{})
			go func() {
				defer close(done)
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				startErr = serveOnce(ctx, cfg, &out, &errb)
			}()
			<-done
			if startErr == nil {
				t.Fatal("keygate started")
			}
			msg := startErr.Error()
			t.Logf("refused: %s", msg)
			if !strings.Contains(msg, c.want) || strings.Contains(msg, keyMaterial) {
				t.Fatalf("refusal %q should name %q and hold no key material", msg, c.want)
			}
			if strings.Contains(out.String(), "listening") {
				t.Fatal("keygate opened its listeners")
			}
		})
	}
}

// proc is keygate running as a separate process, so a test can kill -9 it.
type proc struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	admin  string
	adminU string
	done   chan struct{}
}

func startProc(t *testing.T, env map[string]string, args ...string) *proc {
	t.Helper()
	a, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "KEYGATE_TEST_MAIN="+string(a), "HOME="+t.TempDir())
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &proc{cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			p.out.Write([]byte(sc.Text() + "\n"))
		}
	}()
	go func() { cmd.Wait(); pw.Close(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	re := regexp.MustCompile(`admin API listening on (\S+)`)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if m := re.FindStringSubmatch(p.out.String()); m != nil {
			p.adminU = m[1]
			break
		}
		select {
		case <-p.done:
			t.Fatalf("keygate exited:\n%s", p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("keygate did not start:\n%s", p.out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.admin = regexp.MustCompile(`kg_admin_[0-9A-Za-z]+`).FindString(p.out.String())
	return p
}

// kill ends the process with SIGKILL: no shutdown code runs.
func (p *proc) kill() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
	}
	<-p.done
}

// TestKEKRotationSurvivesKill9 kills keygate with SIGKILL in the middle of
// a KEK rotation, starts it again with the same configuration, and checks
// the rotation finishes and every secret still opens.
func TestKEKRotationSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts keygate processes")
	}
	dir := t.TempDir()
	args := []string{"serve", "--data-dir", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}
	p := startProc(t, nil, args...)
	admin := p.admin
	cliEnv := func(p *proc) map[string]string {
		return map[string]string{"KEYGATE_ADMIN_URL": p.adminU, "KEYGATE_ADMIN_TOKEN": admin, "HOME": t.TempDir()}
	}
	cli := func(p *proc, env map[string]string, args ...string) string {
		t.Helper()
		e := cliEnv(p)
		for k, v := range env {
			e[k] = v
		}
		var out, errb strings.Builder
		if err := run(context.Background(), args, func(k string) string { return e[k] }, strings.NewReader(""), &out, &errb); err != nil {
			t.Fatalf("keygate %s: %v\n%s", strings.Join(args, " "), err, errb.String())
		}
		return out.String()
	}
	const n = 300
	want := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			for i := w; i < n; i += 6 {
				name, v := fmt.Sprintf("app/s%03d", i), canary(fmt.Sprintf("s%d", i))
				cli(p, map[string]string{"V": v}, "secret", "put", name, "--from-env", "V")
				mu.Lock()
				want[name] = v
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	kekURL := randomKeyURL(t)
	cli(p, nil, "vault", "rotate-kek", "--to", kekURL, "--batch-size", "3", "--batch-interval", "15ms")
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st adminapi.VaultStatus
		decodeJSON(t, cli(p, nil, "--json", "vault", "status"), &st)
		if st.Rotation != nil && st.Rotation.Rewrapped >= 30 {
			if st.Rotation.State == "finished" {
				t.Fatal("the rotation finished before keygate could be killed; make it slower")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no rewrap progress: %+v", st.Rotation)
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.kill()

	// The same configuration, whose KEK is still the old key file, is
	// refused: the new KEK's URL is its key, which keygate never stores, so
	// the operator supplies it, as with the first KEK.
	out, err := runProc(t, nil, args...)
	newID := "kms:" // the rotation's target, named in the refusal
	if err == nil || !strings.Contains(out, "needs KEK "+newID) || !strings.Contains(out, "base64key://REDACTED") || !strings.Contains(out, "KEYGATE_KEK") {
		t.Fatalf("a restart with only the old KEK: %v\n%s", err, out)
	}
	// With the new KEK supplied, keygate finds the old one through the
	// locator the rotation left (a file path, not key material) and
	// finishes the rewrap.
	p2 := startProc(t, map[string]string{"KEYGATE_KEK": kekURL}, args...)
	deadline = time.Now().Add(60 * time.Second)
	var st adminapi.VaultStatus
	for {
		decodeJSON(t, cli(p2, nil, "--json", "vault", "status"), &st)
		if st.Rotation != nil && st.Rotation.State == "finished" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rotation did not finish after the restart: %+v", st.Rotation)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.Rotation.Remaining != 0 || st.KEKID != st.Rotation.To {
		t.Fatalf("after the restart: %+v, rotation %+v", st, st.Rotation)
	}
	t.Logf("rewrapped %d data keys across a kill -9", st.Rotation.Rewrapped)
	for name, v := range want {
		if got := strings.TrimSpace(cli(p2, nil, "secret", "get", name)); got != v {
			t.Fatalf("%s does not open to its value after the crash", name)
		}
	}
	if strings.Contains(p.out.String()+p2.out.String(), strings.TrimPrefix(kekURL, "base64key://")) {
		t.Fatal("the new KEK's key material reached keygate's output")
	}
}

// serveOnce runs keygate with cfg and returns its error; if keygate does
// start, it is stopped at once and serveOnce returns nil.
func serveOnce(ctx context.Context, cfg config.Config, stdout, stderr io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	return server.Run(ctx, cfg, stdout, stderr, func(server.Listening) { cancel() })
}
