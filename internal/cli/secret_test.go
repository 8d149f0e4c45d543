package cli

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/adminclient"
)

// canary returns an obviously fake secret value, new on every call.
func canary(t *testing.T) string {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "canary-" + hex.EncodeToString(b)
}

// storedValue returns the value the fake holds for name at version (1-based).
func (h *harness) storedValue(name string, version int) string {
	h.t.Helper()
	h.admin.mu.Lock()
	defer h.admin.mu.Unlock()
	s := h.admin.findSecret(name)
	if s == nil || version > len(s.values) {
		h.t.Fatalf("the fake holds no secret %s version %d", name, version)
	}
	return s.values[version-1]
}

func TestSecretPutSources(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	v1, v2, v3 := canary(t), canary(t), canary(t)

	h.env["TEST_SECRET_VALUE"] = v1
	out, errOut := h.mustRun("", "secret", "put", "payments/stripe", "--from-env", "TEST_SECRET_VALUE")
	if out != "" || errOut != "Stored payments/stripe version 1.\n" {
		t.Errorf("put from env: stdout %q stderr %q", out, errOut)
	}
	h.assertNotExposed(v1, out, errOut)

	file := filepath.Join(t.TempDir(), "value.txt")
	writeFile(t, file, v2+"\r\n", 0o600)
	out, errOut = h.mustRun("", "secret", "put", "payments/stripe", "--from-file", file)
	if errOut != "Stored payments/stripe version 2.\n" {
		t.Errorf("put from file: stderr %q", errOut)
	}
	h.assertNotExposed(v2, out, errOut)

	// Only one trailing newline goes; the rest is the value.
	out, _ = h.mustRun(v3+"\n\n", "--json", "secret", "put", "payments/stripe", "--stdin")
	var s adminapi.Secret
	if err := json.Unmarshal([]byte(out), &s); err != nil || s.Name != "payments/stripe" || s.CurrentVersion != 3 {
		t.Fatalf("put --json: %v\n%s", err, out)
	}
	h.assertNotExposed(v3, out)

	for i, want := range []string{v1, v2, v3 + "\n"} {
		if got := h.storedValue("payments/stripe", i+1); got != want {
			t.Errorf("version %d holds %q, want %q", i+1, got, want)
		}
	}
}

func TestSecretPutRefusesValueOnCommandLine(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	v := canary(t)
	for _, args := range [][]string{
		{"secret", "put", "db/password", "--value", v},
		{"secret", "put", "--value=" + v},
		{"secret", "put", "db/password", v},
		{"secret", "put", "db/password", v, "--stdin"},
	} {
		out, errOut, err := h.run("", args...)
		if err == nil {
			t.Fatalf("%d args: want an error", len(args))
		}
		for _, want := range []string{"shell history", "--from-env", "--from-file", "--stdin"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q: %v", want, err)
			}
		}
		h.assertNotExposed(v, out, errOut, err.Error())
	}
	if n := h.requestCount(); n != 0 {
		t.Errorf("%d requests reached the admin API, want none", n)
	}
}

func TestSecretPutErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	v := canary(t)
	big := strings.Repeat("x", 64<<10+1)
	bigFile := filepath.Join(t.TempDir(), "big")
	writeFile(t, bigFile, big, 0o600)
	cases := []struct {
		stdin string
		args  []string
		want  []string
	}{
		{"", []string{"secret", "put", "a//b", "--stdin"}, []string{"empty segment"}},
		{"", []string{"secret", "put", "../etc", "--stdin"}, []string{"start with a letter or digit"}},
		{"", []string{"secret", "put", "db/password"}, []string{"value is required", "--from-env", "--from-file", "--stdin"}},
		{"", []string{"secret", "put", "db/password", "--stdin", "--from-env", "X"}, []string{"only one of"}},
		{"", []string{"secret", "put", "db/password", "--from-env", "MISSING_VALUE"}, []string{"MISSING_VALUE", "empty or not set"}},
		{"", []string{"secret", "put", "db/password", "--from-env", v}, []string{"NAME of an environment variable"}},
		{"\n", []string{"secret", "put", "db/password", "--stdin"}, []string{"standard input is empty"}},
		{"", []string{"secret", "put", "db/password", "--from-file", filepath.Join(t.TempDir(), "nope")}, []string{"--from-file", "no such file"}},
		{"", []string{"secret", "put", "db/password", "--from-file", bigFile}, []string{"larger than 64 KiB"}},
		{"\xff\xfe", []string{"secret", "put", "db/password", "--stdin"}, []string{"not UTF-8"}},
	}
	for _, c := range cases {
		out, errOut, err := h.run(c.stdin, c.args...)
		if err == nil {
			t.Fatalf("%v: want an error", c.args)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error lacks %q: %v", c.args, w, err)
			}
		}
		h.assertNotExposed(v, out, errOut, err.Error())
		if strings.Contains(err.Error(), big) {
			t.Errorf("%v: the value is in the error", c.args)
		}
	}
	if n := h.requestCount(); n != 0 {
		t.Errorf("%d requests reached the admin API, want none", n)
	}
}

func TestSecretGet(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	v1, v2 := canary(t), canary(t)
	h.mustRun(v1, "secret", "put", "db/password", "--stdin")
	h.mustRun(v2, "secret", "put", "db/password", "--stdin")

	out, errOut := h.mustRun("", "secret", "get", "db/password")
	if out != v2+"\n" || errOut != "" {
		t.Errorf("get: stdout %q stderr %q", out, errOut)
	}
	out, _ = h.mustRun("", "secret", "get", "db/password", "--version", "1")
	if out != v1+"\n" {
		t.Errorf("get --version 1: %q", out)
	}
	out, _ = h.mustRun("", "--json", "secret", "get", "db/password")
	var sv adminapi.SecretValue
	if err := json.Unmarshal([]byte(out), &sv); err != nil || sv.Value != v2 || sv.Version != 2 || sv.Name != "db/password" {
		t.Errorf("get --json: %v %+v", err, sv)
	}
	h.assertNotExposed(v1)
	h.assertNotExposed(v2)

	_, _, err := h.run("", "secret", "get", "db/nope")
	var apiErr *adminclient.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != "not_found" {
		t.Errorf("get unknown: %v", err)
	}
	if _, _, err := h.run("", "secret", "get", "bad name"); err == nil || !strings.Contains(err.Error(), "secret get") {
		t.Errorf("get invalid name: %v", err)
	}
	if _, _, err := h.run("", "secret", "get", "db/password", "--version", "-1"); err == nil || !strings.Contains(err.Error(), "--version") {
		t.Errorf("get --version -1: %v", err)
	}
}

func TestSecretGetForbiddenForOperator(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	v := canary(t)
	h.mustRun(v, "secret", "put", "db/password", "--stdin")
	h.admin.mu.Lock()
	h.admin.role = adminapi.RoleOperator
	h.admin.mu.Unlock()
	out, errOut, err := h.run("", "secret", "get", "db/password")
	var apiErr *adminclient.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 403 {
		t.Fatalf("operator get: %v", err)
	}
	for _, want := range []string{"forbidden", "operator credentials cannot read secret values", "admin credential", EnvAdminToken} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if out != "" {
		t.Errorf("stdout: %q", out)
	}
	h.assertNotExposed(v, out, errOut, err.Error())
}

func TestSecretListVersionsRollbackDeleteRestore(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	out, _ := h.mustRun("", "secret", "list")
	if !strings.Contains(out, "No secrets yet") {
		t.Errorf("empty list: %s", out)
	}
	v1, v2 := canary(t), canary(t)
	h.mustRun(v1, "secret", "put", "db/password", "--stdin")
	h.mustRun(v2, "secret", "put", "db/password", "--stdin")
	h.mustRun(v1, "secret", "put", "payments/stripe", "--stdin")

	out, _ = h.mustRun("", "secret", "list")
	want := "" +
		"NAME             CURRENT  VERSIONS  UPDATED\n" +
		"db/password      2        2         2025-06-01T12:02:00Z\n" +
		"payments/stripe  1        1         2025-06-01T12:01:00Z\n"
	if out != want {
		t.Errorf("secret list:\n%s\nwant:\n%s", out, want)
	}

	out, _ = h.mustRun("", "secret", "versions", "db/password")
	want = "" +
		"VERSION  CURRENT  KEK        FORMAT  CREATED               DESTROY-AT\n" +
		"1        no       kek_test1  1       2025-06-01T12:01:00Z  2025-07-01T12:01:00Z\n" +
		"2        yes      kek_test1  1       2025-06-01T12:02:00Z  -\n"
	if out != want {
		t.Errorf("secret versions:\n%s\nwant:\n%s", out, want)
	}
	out, _ = h.mustRun("", "--json", "secret", "versions", "db/password")
	var vl adminapi.SecretVersionList
	if err := json.Unmarshal([]byte(out), &vl); err != nil || len(vl.Versions) != 2 {
		t.Errorf("versions --json: %v\n%s", err, out)
	}

	out, _ = h.mustRun("", "secret", "rollback", "db/password", "1")
	if out != "Rolled db/password back to version 1's value, now current as version 3.\n" {
		t.Errorf("rollback: %q", out)
	}
	if got := h.storedValue("db/password", 3); got != v1 {
		t.Errorf("after rollback version 3 holds %q, want version 1's value", got)
	}
	for _, bad := range []string{"0", "x", "1.5"} {
		if _, _, err := h.run("", "secret", "rollback", "db/password", bad); err == nil || !strings.Contains(err.Error(), "whole number") {
			t.Errorf("rollback %s: %v", bad, err)
		}
	}

	out, _ = h.mustRun("", "secret", "delete", "db/password")
	for _, w := range []string{"Deleted secret db/password", "2025-06-08T13:40:00Z", "keygate secret restore db/password"} {
		if !strings.Contains(out, w) {
			t.Errorf("delete output lacks %q: %s", w, out)
		}
	}
	out, _ = h.mustRun("", "secret", "list")
	if strings.Contains(out, "db/password") {
		t.Errorf("list shows a deleted secret:\n%s", out)
	}
	out, _ = h.mustRun("", "secret", "list", "--deleted")
	want = "" +
		"NAME             CURRENT  VERSIONS  UPDATED               DELETED\n" +
		"db/password      3        3         2025-06-01T12:03:00Z  2025-06-01T13:40:00Z\n" +
		"payments/stripe  1        1         2025-06-01T12:01:00Z  -\n"
	if out != want {
		t.Errorf("secret list --deleted:\n%s\nwant:\n%s", out, want)
	}

	out, _ = h.mustRun("", "secret", "restore", "db/password")
	if out != "Restored secret db/password at version 3.\n" {
		t.Errorf("restore: %q", out)
	}
	out, errOut := h.mustRun("", "secret", "delete", "payments/stripe", "--purge")
	if out != "Destroyed secret payments/stripe and every version of it; it cannot be restored.\n" {
		t.Errorf("delete --purge: stdout %q stderr %q", out, errOut)
	}
	if _, _, err := h.run("", "secret", "restore", "payments/stripe"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("restore after purge: %v", err)
	}
	out, _ = h.mustRun("", "--json", "secret", "list")
	var sl adminapi.SecretList
	if err := json.Unmarshal([]byte(out), &sl); err != nil || len(sl.Secrets) != 1 || sl.Secrets[0].Name != "db/password" {
		t.Errorf("list --json: %v\n%s", err, out)
	}
	h.assertNotExposed(v1)
	h.assertNotExposed(v2)
}
