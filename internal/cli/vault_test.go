package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/adminclient"
)

func TestProviderRotate(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.env["TEST_PROVIDER_KEY"] = upstreamKey
	h.mustRun("", "provider", "add", "openai", "--base-url", "https://api.openai.example/v1", "--api-key-env", "TEST_PROVIDER_KEY")

	newKey := canary(t)
	h.env["NEW_PROVIDER_KEY"] = newKey
	out, errOut := h.mustRun("", "provider", "rotate", "openai", "--api-key-env", "NEW_PROVIDER_KEY", "--grace", "1h")
	want := "Rotated the API key of provider openai: version 2 is now in use.\n" +
		"The previous key (version 1) serves requests already in flight and is destroyed at 2025-06-01T13:00:00Z.\n"
	if out != want {
		t.Errorf("provider rotate:\n%s\nwant:\n%s", out, want)
	}
	if got := h.admin.upstream["openai"]; got != newKey {
		t.Errorf("server got key %q, want the new one", got)
	}
	if g := h.admin.vault.rotations[0].Grace; g != "1h" {
		t.Errorf("grace sent = %q", g)
	}
	h.assertNotExposed(newKey, out, errOut)

	newer := canary(t)
	out, errOut = h.mustRun(newer+"\n", "--json", "provider", "rotate", "openai", "--api-key-stdin")
	var rot adminapi.ProviderRotation
	if err := json.Unmarshal([]byte(out), &rot); err != nil || rot.Version != 3 || rot.Provider.Name != "openai" {
		t.Fatalf("rotate --json: %v\n%s", err, out)
	}
	if g := h.admin.vault.rotations[1].Grace; g != "24h" {
		t.Errorf("default grace sent = %q, want 24h", g)
	}
	h.assertNotExposed(newer, out, errOut)

	before := h.requestCount()
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"provider", "rotate", "openai", "--api-key", newKey}, []string{"--api-key is not accepted", "shell history"}},
		{[]string{"provider", "rotate", "openai"}, []string{"provider rotate", "--api-key-env", "--api-key-stdin", "required"}},
		{[]string{"provider", "rotate", "openai", "--api-key-env", newKey}, []string{"NAME of an environment variable"}},
		{[]string{"provider", "rotate", "openai", "--api-key-env", "NEW_PROVIDER_KEY", "--grace", "soon"}, []string{"--grace"}},
	} {
		out, errOut, err := h.run("", c.args...)
		if err == nil {
			t.Fatalf("%v: want an error", c.args)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error lacks %q: %v", w, err)
			}
		}
		h.assertNotExposed(newKey, out, errOut, err.Error())
	}
	if n := h.requestCount(); n != before {
		t.Errorf("%d requests reached the admin API, want none", n-before)
	}
	_, _, err := h.run("", "provider", "rotate", "nope", "--api-key-env", "NEW_PROVIDER_KEY")
	var apiErr *adminclient.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != "not_found" {
		t.Errorf("rotate unknown provider: %v", err)
	}
}

func TestVaultStatus(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	out, _ := h.mustRun("", "vault", "status")
	want := "" +
		"KEK:       kek_test1\n" +
		"KEK kind:  file\n" +
		"\n" +
		"KEK        FORMAT  VERSIONS\n" +
		"kek_test1  1       4\n" +
		"\n" +
		"Current KEK kek_test1 (file, file:///var/lib/keygate/master.key): wraps 4 records.\n" +
		"\n" +
		"No KEK rotation yet.\n"
	if out != want {
		t.Errorf("vault status:\n%s\nwant:\n%s", out, want)
	}
	out, _ = h.mustRun("", "--json", "vault", "status")
	var st adminapi.VaultStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.KEKID != "kek_test1" || len(st.Counts) != 1 {
		t.Errorf("vault status --json: %v\n%s", err, out)
	}
}

func TestVaultRotateKEK(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	kekURL := "base64key://" + canary(t)
	out, errOut := h.mustRun("", "vault", "rotate-kek", "--to", kekURL, "--batch-size", "50", "--batch-interval", "10ms")
	if h.admin.vault.kekTo != kekURL {
		t.Errorf("server got To %q", h.admin.vault.kekTo)
	}
	for _, want := range []string{"Started KEK rotation rot_test1.", "kek_test1", "kek_test2", "running"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	for _, want := range []string{"shell history", "keygate vault status", "--wait"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	h.assertNotExposed(kekURL, out, errOut)
	h.assertNotExposed(strings.TrimPrefix(kekURL, "base64key://"), out, errOut)

	out, errOut = h.mustRun("", "vault", "rotate-kek", "--to", kekURL, "--wait")
	wantProgress := "rewrapped 0, remaining 4\n" +
		"the rotation is stuck: kms: rate limited (test)\n" +
		"rewrapped 2, remaining 2\n" +
		"rewrapped 4, remaining 0\n"
	if !strings.Contains(errOut, wantProgress) {
		t.Errorf("stderr lacks the progress:\n%s\nwant:\n%s", errOut, wantProgress)
	}
	if !strings.HasSuffix(out, "KEK rotation rot_test1 finished: 4 data keys rewrapped; everything is now wrapped by kek_test2.\n") {
		t.Errorf("stdout:\n%s", out)
	}
	h.assertNotExposed(kekURL, out, errOut)

	out, _ = h.mustRun("", "vault", "status")
	for _, want := range []string{"KEK:       kek_test2", "Latest KEK rotation:", "State:      finished", "Finished:   2025-06-01T12:05:00Z",
		"Current KEK kek_test2 (kms, base64key://REDACTED): wraps 4 records.\n",
		"Old KEK kek_test1 (file, file:///var/lib/keygate/master.key): opens nothing; it can be destroyed once no keygate is configured with it.\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("vault status after rotation lacks %q:\n%s", want, out)
		}
	}

	out, _ = h.mustRun("", "--json", "vault", "rotate-kek", "--to", "awskms:///alias/keygate-test")
	var rot adminapi.KEKRotation
	if err := json.Unmarshal([]byte(out), &rot); err != nil || rot.ID != "rot_test1" || rot.State != "running" {
		t.Errorf("rotate-kek --json: %v\n%s", err, out)
	}

	before := h.requestCount()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"vault", "rotate-kek"}, "is required"},
		{[]string{"vault", "rotate-kek", "--to", strings.TrimPrefix(kekURL, "base64key://")}, "must be a KEK URL"},
		{[]string{"vault", "rotate-kek", "--to", kekURL, "--batch-size", "-1"}, "--batch-size"},
		{[]string{"vault", "rotate-kek", "--to", kekURL, "--batch-interval", "often"}, "--batch-interval"},
	} {
		out, errOut, err := h.run("", c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%d args: error %v, want one with %q", len(c.args), err, c.want)
			continue
		}
		h.assertNotExposed(strings.TrimPrefix(kekURL, "base64key://"), out, errOut, err.Error())
	}
	if n := h.requestCount(); n != before {
		t.Errorf("%d requests reached the admin API, want none", n-before)
	}
}

func TestVaultBackup(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	data := append([]byte("keygate-backup-test\x00"), bytes.Repeat([]byte{0xfe, 0x01}, 50000)...)
	h.admin.mu.Lock()
	h.admin.vault.backup = data
	h.admin.mu.Unlock()
	dir := t.TempDir()
	file := filepath.Join(dir, "vault.kgbak")

	out, _ := h.mustRun("", "vault", "backup", "--out", file)
	for _, want := range []string{"Wrote 100020 bytes to " + file, "same key-encryption key", "keygate vault restore"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	checkBackupFile(t, file, data)

	// No overwriting without --force, and no request for a backup that cannot be saved.
	before := h.requestCount()
	_, _, err := h.run("", "vault", "backup", "--out", file)
	if err == nil || !strings.Contains(err.Error(), "already exists") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("backup over an existing file: %v", err)
	}
	if n := h.requestCount() - before; n != 0 {
		t.Errorf("%d requests reached the admin API, want none", n)
	}

	// --force replaces an existing file, whatever its mode, with a 0600 one.
	old := filepath.Join(dir, "old.kgbak")
	writeFile(t, old, "an older backup", 0o644)
	out, _ = h.mustRun("", "--json", "vault", "backup", "--out", old, "--force")
	var res struct {
		File  string `json:"file"`
		Bytes int64  `json:"bytes"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.File != old || res.Bytes != int64(len(data)) {
		t.Errorf("backup --json: %v\n%s", err, out)
	}
	checkBackupFile(t, old, data)

	// A transfer cut short leaves no file behind, with or without --force.
	h.admin.mu.Lock()
	h.admin.vault.cutBackup = true
	h.admin.mu.Unlock()
	cut := filepath.Join(dir, "cut.kgbak")
	for _, args := range [][]string{{"vault", "backup", "--out", cut}, {"vault", "backup", "--out", cut, "--force"}} {
		if _, _, err := h.run("", args...); err == nil || !strings.Contains(err.Error(), "partial file was removed") {
			t.Errorf("cut backup: %v", err)
		}
	}
	checkDirHolds(t, dir, "old.kgbak", "vault.kgbak")

	// An operator may not take a backup.
	h.admin.mu.Lock()
	h.admin.vault.cutBackup = false
	h.admin.role = adminapi.RoleOperator
	h.admin.mu.Unlock()
	_, _, err = h.run("", "vault", "backup", "--out", cut)
	if err == nil || !strings.Contains(err.Error(), "forbidden") || !strings.Contains(err.Error(), "take backups") {
		t.Errorf("operator backup: %v", err)
	}
	checkDirHolds(t, dir, "old.kgbak", "vault.kgbak")

	if _, _, err := h.run("", "vault", "backup"); err == nil || !strings.Contains(err.Error(), "--out is required") {
		t.Errorf("no --out: %v", err)
	}
}

func checkBackupFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s holds %d bytes, want the %d the server sent", path, len(got), len(want))
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %04o, want 0600", path, st.Mode().Perm())
	}
}

func checkDirHolds(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, " ") != strings.Join(names, " ") {
		t.Errorf("%s holds %v, want %v", dir, got, names)
	}
}

func TestVaultCommandTakesExtraSubcommands(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	root := Root(IO{Stdout: &out, Stderr: &out})
	ran := false
	VaultCommand(root).AddCommand(&cobra.Command{Use: "restore", RunE: func(*cobra.Command, []string) error { ran = true; return nil }})
	root.SetArgs([]string{"vault", "restore"})
	if err := root.Execute(); err != nil || !ran {
		t.Fatalf("vault restore: %v ran=%v", err, ran)
	}
	if VaultCommand(&cobra.Command{Use: "other"}) != nil {
		t.Error("VaultCommand found a vault command where there is none")
	}
}
