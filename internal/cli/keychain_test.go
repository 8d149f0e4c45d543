package cli

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/zalando/go-keyring"
)

// TestLoginWithKeychain exercises the OS keychain path through go-keyring's
// in-memory mock. MockInit replaces go-keyring's provider for the whole test
// binary, so this test must not run in parallel; every other test passes its
// own Keyring and never reaches go-keyring.
func TestLoginWithKeychain(t *testing.T) {
	keyring.MockInit()
	admin := newFakeAdmin(t)
	home := t.TempDir()
	env := map[string]string{EnvAdminURL: admin.srv.URL}
	run := func(stdin string, args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		root := Root(IO{
			Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut,
			Getenv: func(k string) string { return env[k] }, HomeDir: home,
		})
		root.SetArgs(args)
		err := root.Execute()
		return out.String(), errOut.String(), err
	}

	out, errOut, err := run(admin.token+"\n", "login")
	if err != nil {
		t.Fatalf("login: %v\n%s", err, errOut)
	}
	if !strings.Contains(errOut, "OS keychain") || strings.Contains(errOut, "warning") {
		t.Errorf("login stderr: %s", errOut)
	}
	if strings.Contains(out+errOut, admin.token) {
		t.Error("login printed the admin credential")
	}
	got, err := keyring.Get(KeyringService, admin.srv.URL)
	if err != nil || got != admin.token {
		t.Fatalf("keychain entry: %v", err)
	}
	if _, err := os.Stat(credentialsPath(home)); !os.IsNotExist(err) {
		t.Errorf("a token file was written although the keychain worked: %v", err)
	}
	if _, _, err := run("", "provider", "list"); err != nil {
		t.Fatalf("provider list with the keychain credential: %v", err)
	}

	out, _, err = run("", "logout")
	if err != nil || !strings.Contains(out, "from the OS keychain") {
		t.Fatalf("logout: %v %s", err, out)
	}
	if _, err := keyring.Get(KeyringService, admin.srv.URL); err != keyring.ErrNotFound {
		t.Errorf("keychain entry after logout: %v", err)
	}
}
