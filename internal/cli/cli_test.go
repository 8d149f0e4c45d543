package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/adminclient"
)

// upstreamKey is an obviously fake provider key.
const upstreamKey = "test-upstream-key-123"

// noKeychain stands in for a machine without an OS keychain.
const noKeychain = "no secret service on this machine (test)"

type unavailableKeyring struct{}

func (unavailableKeyring) Get(string, string) (string, error) { return "", errors.New(noKeychain) }
func (unavailableKeyring) Set(string, string, string) error   { return errors.New(noKeychain) }
func (unavailableKeyring) Delete(string, string) error        { return errors.New(noKeychain) }

type harness struct {
	t       *testing.T
	admin   *fakeAdmin
	home    string
	env     map[string]string
	environ []string // what IO.Environ returns, the base environment of `keygate run`'s command
	kr      Keyring
}

// newHarness starts a fake admin API and an environment that points at it
// with a valid admin credential and no OS keychain.
func newHarness(t *testing.T) *harness {
	t.Helper()
	a := newFakeAdmin(t)
	return &harness{
		t: t, admin: a, home: t.TempDir(), kr: unavailableKeyring{},
		env: map[string]string{EnvAdminURL: a.srv.URL, EnvAdminToken: a.token},
	}
}

func (h *harness) run(stdin string, args ...string) (stdout, stderr string, err error) {
	h.t.Helper()
	var out, errOut bytes.Buffer
	root := Root(IO{
		Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut,
		Getenv: func(k string) string { return h.env[k] }, HomeDir: h.home, Version: "1.2.3-test", Keyring: h.kr,
		Environ: func() []string { return h.environ },
	})
	root.SetArgs(args)
	err = root.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func (h *harness) mustRun(stdin string, args ...string) (string, string) {
	h.t.Helper()
	out, errOut, err := h.run(stdin, args...)
	if err != nil {
		h.t.Fatalf("keygate %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out, errOut
}

func (h *harness) requestCount() int {
	h.admin.mu.Lock()
	defer h.admin.mu.Unlock()
	return len(h.admin.requests)
}

// assertNotExposed fails if s shows up in any output, or in a request's URL or
// headers other than Authorization (which carries the admin credential).
func (h *harness) assertNotExposed(s string, outputs ...string) {
	h.t.Helper()
	for _, o := range outputs {
		if strings.Contains(o, s) {
			h.t.Fatalf("%q leaked into output:\n%s", s, o)
		}
	}
	h.admin.mu.Lock()
	defer h.admin.mu.Unlock()
	for _, r := range h.admin.requests {
		if strings.Contains(r.URL, s) {
			h.t.Fatalf("%q leaked into request URL %s", s, r.URL)
		}
		for name, vs := range r.Header {
			if name == "Authorization" {
				continue
			}
			for _, v := range vs {
				if strings.Contains(v, s) {
					h.t.Fatalf("%q leaked into request header %s", s, name)
				}
			}
		}
	}
}

func TestProviderAddFromEnv(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.env["TEST_PROVIDER_KEY"] = upstreamKey
	out, errOut := h.mustRun("", "provider", "add", "openai", "--base-url", "https://api.openai.example/v1",
		"--models", "gpt-*, o3*", "--models", "o1", "--default", "--api-key-env", "TEST_PROVIDER_KEY")
	if got := h.admin.upstream["openai"]; got != upstreamKey {
		t.Fatalf("server got provider key %q, want it in the request body", got)
	}
	h.assertNotExposed(upstreamKey, out, errOut)
	for _, want := range []string{"Name:", "openai", "https://api.openai.example/v1", "gpt-*, o3*, o1", "Default:", "yes", "2025-01-02T03:04:05Z"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "will not be shown") {
		t.Errorf("stderr lacks the note about the key: %s", errOut)
	}
}

func TestProviderAddFromStdin(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	out, errOut := h.mustRun(upstreamKey+"\n", "--json", "provider", "add", "anthropic",
		"--base-url", "https://api.anthropic.example", "--api-key-stdin")
	if got := h.admin.upstream["anthropic"]; got != upstreamKey {
		t.Fatalf("server got provider key %q, want %q", got, upstreamKey)
	}
	h.assertNotExposed(upstreamKey, out, errOut)
	var p adminapi.Provider
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("--json output is not a Provider: %v\n%s", err, out)
	}
	if p.Name != "anthropic" || p.Dialect != "anthropic" {
		t.Errorf("provider = %+v", p)
	}
}

func TestProviderAddRefusesAPIKeyFlag(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, args := range [][]string{
		{"provider", "add", "openai", "--base-url", "https://api.openai.example/v1", "--api-key", upstreamKey},
		{"provider", "add", "--api-key=" + upstreamKey},
		{"provider", "add", "openai", "extra", "--api-key", upstreamKey},
	} {
		out, errOut, err := h.run("", args...)
		if err == nil {
			t.Fatalf("%v: want an error", args)
		}
		for _, want := range []string{"--api-key is not accepted", "--api-key-env", "--api-key-stdin", "shell history"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%v: error lacks %q: %v", args, want, err)
			}
		}
		h.assertNotExposed(upstreamKey, out, errOut, err.Error())
	}
	if n := h.requestCount(); n != 0 {
		t.Errorf("%d requests reached the admin API, want none", n)
	}
}

func TestProviderAddKeyErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	base := []string{"provider", "add", "openai", "--base-url", "https://api.openai.example/v1"}
	cases := []struct {
		stdin string
		args  []string
		want  []string
	}{
		{"", []string{"--api-key-env", "MISSING_PROVIDER_KEY"}, []string{"MISSING_PROVIDER_KEY", "empty or not set", "--api-key-stdin"}},
		{" \n", []string{"--api-key-stdin"}, []string{"empty"}},
		{"", nil, []string{"--api-key-env", "--api-key-stdin", "required"}},
		{"", []string{"--api-key-env", "X", "--api-key-stdin"}, []string{"not both"}},
		{"", []string{"--api-key-env", upstreamKey}, []string{"NAME of an environment variable"}},
		{"", []string{"--api-key-env", "X", "--dialect", "google"}, []string{"--dialect", "openai, anthropic or gemini"}},
	}
	for _, c := range cases {
		out, errOut, err := h.run(c.stdin, append(append([]string{}, base...), c.args...)...)
		if err == nil {
			t.Fatalf("%v: want an error", c.args)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error lacks %q: %v", c.args, w, err)
			}
		}
		h.assertNotExposed(upstreamKey, out, errOut, err.Error())
	}
	if n := h.requestCount(); n != 0 {
		t.Errorf("%d requests reached the admin API, want none", n)
	}
}

func TestProviderListShowRemove(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	out, _ := h.mustRun("", "provider", "list")
	if !strings.Contains(out, "No providers yet") {
		t.Errorf("empty list: %s", out)
	}
	h.env["TEST_PROVIDER_KEY"] = upstreamKey
	h.mustRun("", "provider", "add", "openai", "--base-url", "https://api.openai.example/v1", "--models", "gpt-*", "--default", "--api-key-env", "TEST_PROVIDER_KEY")
	h.mustRun("", "provider", "add", "local", "--base-url", "http://127.0.0.1:11434/v1", "--api-key-env", "TEST_PROVIDER_KEY", "--env", "dev")

	out, _ = h.mustRun("", "provider", "list")
	want := "" +
		"NAME    DIALECT  BASE-URL                       MODELS  DEFAULT  ENV  CREATED\n" +
		"openai  openai   https://api.openai.example/v1  gpt-*   yes      any  2025-01-02T03:04:05Z\n" +
		"local   openai   http://127.0.0.1:11434/v1      -       no       dev  2025-01-02T03:04:05Z\n"
	if out != want {
		t.Errorf("provider list:\n%s\nwant:\n%s", out, want)
	}
	out, _ = h.mustRun("", "provider", "list", "--json")
	var pl adminapi.ProviderList
	if err := json.Unmarshal([]byte(out), &pl); err != nil || len(pl.Providers) != 2 {
		t.Fatalf("provider list --json: %v\n%s", err, out)
	}

	out, _ = h.mustRun("", "provider", "show", "openai")
	want = "" +
		"ID:        prv_test1\n" +
		"Name:      openai\n" +
		"Dialect:   openai\n" +
		"Base URL:  https://api.openai.example/v1\n" +
		"Models:    gpt-*\n" +
		"Default:   yes\n" +
		"Env:       any\n" +
		"Created:   2025-01-02T03:04:05Z\n"
	if out != want {
		t.Errorf("provider show:\n%s\nwant:\n%s", out, want)
	}

	out, _ = h.mustRun("", "provider", "remove", "openai")
	if out != "Removed provider openai.\n" {
		t.Errorf("provider remove: %q", out)
	}
	out, errOut := h.mustRun("", "--json", "provider", "rm", "local")
	if out != "" || !strings.Contains(errOut, "Removed provider local.") {
		t.Errorf("provider rm --json: stdout %q stderr %q", out, errOut)
	}

	_, _, err := h.run("", "provider", "show", "openai")
	var apiErr *adminclient.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 404 || apiErr.Code != "not_found" {
		t.Fatalf("show after remove: %v", err)
	}
	if want := `keygate admin API: not found: no provider named "openai"`; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q lacks %q", err, want)
	}
	h.assertNotExposed(upstreamKey)
}

func TestKeyCreate(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	out, errOut := h.mustRun("", "key", "create", "--name", "ci", "--allow-model", "gpt-4o*,o3*", "--allow-model", "o1",
		"--allow-provider", "openai", "--expires", "30d")
	secretValue := "kg_live_testsecret0001"
	if out != secretValue+"\n" {
		t.Fatalf("stdout = %q, want only the secret", out)
	}
	if strings.Contains(errOut, secretValue) {
		t.Errorf("the secret was printed twice: %s", errOut)
	}
	for _, want := range []string{"Created key ci", "key_test1", "only time", "2025-03-05T04:05:06Z"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q: %s", want, errOut)
		}
	}
	k := h.admin.keys[0]
	if strings.Join(k.AllowModels, "|") != "gpt-4o*|o3*|o1" || strings.Join(k.AllowProviders, "|") != "openai" {
		t.Errorf("allow lists = %v %v", k.AllowModels, k.AllowProviders)
	}

	out, _ = h.mustRun("", "key", "create", "--name", "dev-laptop", "--env", "dev", "--json")
	var ck adminapi.CreatedKey
	if err := json.Unmarshal([]byte(out), &ck); err != nil {
		t.Fatalf("--json output is not a CreatedKey: %v\n%s", err, out)
	}
	if ck.Secret != "kg_dev_testsecret0002" || ck.Key.Name != "dev-laptop" || ck.Key.Env != "dev" || ck.Key.ExpiresAt != nil {
		t.Errorf("created key = %+v", ck)
	}
	if strings.Count(out, ck.Secret) != 1 {
		t.Errorf("secret appears more than once in --json output")
	}
}

func TestKeyCreateValidatesBeforeRequest(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	_, _, err := h.run("", "key", "create", "--name", "ci", "--expires", "30days")
	if err == nil || !strings.Contains(err.Error(), "--expires") || !strings.Contains(err.Error(), "30d") {
		t.Fatalf("bad --expires: %v", err)
	}
	_, _, err = h.run("", "key", "create")
	if err == nil || !strings.Contains(err.Error(), "--name is required") {
		t.Fatalf("missing --name: %v", err)
	}
	if n := h.requestCount(); n != 0 {
		t.Errorf("%d requests reached the admin API, want none", n)
	}
}

func TestKeyListShowRevoke(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	out, _ := h.mustRun("", "key", "list")
	if !strings.Contains(out, "No keys yet") {
		t.Errorf("empty list: %s", out)
	}
	h.mustRun("", "key", "create", "--name", "ci", "--expires", "1d")
	h.mustRun("", "key", "create", "--name", "batch", "--env", "test", "--allow-provider", "openai")

	out, _ = h.mustRun("", "key", "list")
	want := "" +
		"ID         NAME   ENV   PREFIX        STATUS  EXPIRES               LAST-USED  GROUP  LIMITS  PATHS  IPS  HOURS\n" +
		"key_test1  ci     live  kg_live_test  active  2025-02-04T04:05:06Z  never      -      -       any    any  any\n" +
		"key_test2  batch  test  kg_test_test  active  never                 never      -      -       any    any  any\n"
	if out != want {
		t.Errorf("key list:\n%s\nwant:\n%s", out, want)
	}
	if strings.Contains(out, "testsecret") {
		t.Errorf("key list shows a secret:\n%s", out)
	}

	out, _ = h.mustRun("", "key", "show", "batch")
	want = "" +
		"ID:                 key_test2\n" +
		"Name:               batch\n" +
		"Env:                test\n" +
		"Prefix:             kg_test_test\n" +
		"Status:             active\n" +
		"Allowed models:     any\n" +
		"Allowed providers:  openai\n" +
		"Allowed services:   none (passthrough refused)\n" +
		"Allowed paths:      any\n" +
		"Allowed IPs:        any\n" +
		"Hours:              any time\n" +
		"Group:              -\n" +
		"Limits:             none\n" +
		"Created:            2025-02-03T04:05:06Z\n" +
		"Expires:            never\n" +
		"Suspended:          -\n" +
		"Revoked:            -\n" +
		"Last used:          never\n" +
		"Rotated from:       -\n"
	if out != want {
		t.Errorf("key show:\n%s\nwant:\n%s", out, want)
	}

	out, _ = h.mustRun("", "key", "revoke", "key_test1")
	if out != "Revoked key ci (key_test1) at 2025-03-04T05:06:07Z.\n" {
		t.Errorf("key revoke: %q", out)
	}
	out, _ = h.mustRun("", "key", "show", "ci", "--json")
	var k adminapi.Key
	if err := json.Unmarshal([]byte(out), &k); err != nil || k.Status != "revoked" || k.RevokedAt == nil {
		t.Fatalf("key show --json after revoke: %v\n%s", err, out)
	}

	_, _, err := h.run("", "key", "revoke", "nope")
	if err == nil || !strings.Contains(err.Error(), `keygate admin API: not found: no key named "nope"`) {
		t.Fatalf("revoke unknown key: %v", err)
	}
}

func TestUnauthorizedNamesTheSource(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	wrong := newToken(t)
	h.env[EnvAdminToken] = wrong
	out, errOut, err := h.run("", "key", "list")
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"keygate admin API: unauthorized", "KEYGATE_ADMIN_TOKEN", "keygate login"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	h.assertNotExposed(wrong, out, errOut, err.Error())
}

func TestConnectionRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	dead := httptest.NewServer(nil)
	deadURL := dead.URL
	dead.Close()
	h.env[EnvAdminURL] = deadURL
	_, _, err := h.run("", "provider", "list")
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"keygate does not seem to be running at " + deadURL, "keygate serve", "--admin-url", "KEYGATE_ADMIN_URL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	// The flag wins over the environment.
	h.mustRun("", "--admin-url", h.admin.srv.URL, "provider", "list")
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

type mapKeyring map[string]string

func (m mapKeyring) Get(service, user string) (string, error) {
	if v, ok := m[service+"|"+user]; ok {
		return v, nil
	}
	return "", errors.New("secret not found in keyring")
}
func (m mapKeyring) Set(service, user, pw string) error { m[service+"|"+user] = pw; return nil }
func (m mapKeyring) Delete(service, user string) error  { delete(m, service+"|"+user); return nil }

// writeCredentials writes the credentials file with the given mode.
func writeCredentials(t *testing.T, home string, saved map[string]string, mode os.FileMode) {
	t.Helper()
	b, err := json.Marshal(map[string]any{"credentials": saved})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, credentialsPath(home), string(b), mode)
}

func TestCredentialResolutionOrder(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	url := h.admin.srv.URL
	good := h.admin.token

	// Environment over file: the file holds a refused credential.
	writeCredentials(t, h.home, map[string]string{url: newToken(t)}, 0o600)
	h.mustRun("", "provider", "list")

	// File alone.
	delete(h.env, EnvAdminToken)
	writeCredentials(t, h.home, map[string]string{url: good}, 0o600)
	h.mustRun("", "provider", "list")

	// Keychain over file.
	writeCredentials(t, h.home, map[string]string{url: newToken(t)}, 0o600)
	h.kr = mapKeyring{KeyringService + "|" + url: good}
	h.mustRun("", "provider", "list")

	// A keychain entry an earlier version saved under the URL as typed.
	typed := strings.Replace(url, "http://", "HTTP://", 1) + "/"
	h.kr = mapKeyring{KeyringService + "|" + typed: good}
	h.mustRun("", "--admin-url", typed, "provider", "list")

	// Nothing at all.
	h.kr = unavailableKeyring{}
	if err := os.Remove(credentialsPath(h.home)); err != nil {
		t.Fatal(err)
	}
	_, _, err := h.run("", "provider", "list")
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"no admin credential", "keygate login", "KEYGATE_ADMIN_TOKEN", "first `keygate serve`"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestTokenFileWithLoosePermissionsIsRefused(t *testing.T) {
	t.Parallel()
	for _, legacy := range []bool{false, true} {
		h := newHarness(t)
		delete(h.env, EnvAdminToken)
		file := credentialsPath(h.home)
		if legacy {
			file = legacyPath(h.home)
			writeFile(t, file, h.admin.token+"\n", 0o644)
		} else {
			writeCredentials(t, h.home, map[string]string{h.admin.srv.URL: h.admin.token}, 0o644)
		}
		_, _, err := h.run("", "key", "list")
		if err == nil || !strings.Contains(err.Error(), "chmod 600 "+file) {
			t.Fatalf("0644 %s: %v", file, err)
		}
		if n := h.requestCount(); n != 0 {
			t.Errorf("%d requests reached the admin API, want none", n)
		}
	}
}

func TestLoginWithoutKeychainUsesFile(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin.token
	delete(h.env, EnvAdminToken)
	out, errOut := h.mustRun(tok+"\n", "login")
	file := credentialsPath(h.home)
	if !strings.Contains(out, "Logged in to "+h.admin.srv.URL+" as bootstrap (adm_test1)") {
		t.Errorf("stdout: %s", out)
	}
	for _, want := range []string{"warning:", file, "file permissions"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q: %s", want, errOut)
		}
	}
	h.assertNotExposed(tok, out, errOut)
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("credentials file mode %04o, want 0600", st.Mode().Perm())
	}
	if dst, _ := os.Stat(filepath.Dir(file)); dst.Mode().Perm() != 0o700 {
		t.Errorf("credentials dir mode %04o, want 0700", dst.Mode().Perm())
	}
	if saved := savedCredentials(t, h.home); saved[h.admin.srv.URL] != tok || len(saved) != 1 {
		t.Errorf("credentials file does not hold the credential under the admin URL")
	}
	h.mustRun("", "key", "list")

	out, _ = h.mustRun("", "logout")
	if !strings.Contains(out, "Removed the admin credential for "+h.admin.srv.URL+" from "+file) {
		t.Errorf("logout: %s", out)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("credentials file still there after logout of its only credential: %v", err)
	}
	if _, _, err := h.run("", "key", "list"); err == nil || !strings.Contains(err.Error(), "keygate login") {
		t.Errorf("after logout: %v", err)
	}
	out, _ = h.mustRun("", "logout")
	if !strings.Contains(out, "No saved admin credential for "+h.admin.srv.URL) {
		t.Errorf("second logout: %s", out)
	}
}

func TestLoginRejectsBadCredential(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	delete(h.env, EnvAdminToken)
	wrong := newToken(t)
	out, errOut, err := h.run(wrong+"\n", "login")
	if err == nil || !strings.Contains(err.Error(), "unauthorized") {
		t.Fatalf("login with a refused credential: %v", err)
	}
	h.assertNotExposed(wrong, out, errOut, err.Error())
	if _, err := os.Stat(credentialsPath(h.home)); !os.IsNotExist(err) {
		t.Errorf("a refused credential was saved: %v", err)
	}
	if _, _, err := h.run("\n", "login"); err == nil || !strings.Contains(err.Error(), "no admin credential given") {
		t.Errorf("empty login: %v", err)
	}
	if _, _, err := h.run("kg_live_testsecret0001\n", "login"); err == nil || !strings.Contains(err.Error(), "not an admin credential") {
		t.Errorf("login with an API key: %v", err)
	}
}

func TestVersionAndExtraCommands(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	ran := false
	serve := &cobra.Command{Use: "serve", RunE: func(*cobra.Command, []string) error { ran = true; return nil }}
	root := Root(IO{Stdout: &out, Stderr: &out, Version: "1.2.3-test"}, serve)
	root.SetArgs([]string{"version"})
	if err := root.Execute(); err != nil || out.String() != "keygate 1.2.3-test\n" {
		t.Fatalf("version: %v %q", err, out.String())
	}
	out.Reset()
	root.SetArgs([]string{"--version"})
	if err := root.Execute(); err != nil || out.String() != "keygate 1.2.3-test\n" {
		t.Fatalf("--version: %v %q", err, out.String())
	}
	root.SetArgs([]string{"serve"})
	if err := root.Execute(); err != nil || !ran {
		t.Fatalf("extra command: %v ran=%v", err, ran)
	}
}
