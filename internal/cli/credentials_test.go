package cli

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// authsSeen returns the Authorization headers f received.
func authsSeen(f *fakeAdmin) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.requests {
		out = append(out, r.Header.Get("Authorization"))
	}
	return out
}

// onlyOwnCredential fails the test unless every request f received carried
// f's own credential, and at least one did.
func onlyOwnCredential(t *testing.T, name string, f *fakeAdmin) {
	t.Helper()
	seen := authsSeen(f)
	if len(seen) == 0 {
		t.Errorf("server %s received no request", name)
	}
	for _, a := range seen {
		if a != "Bearer "+f.token {
			t.Errorf("server %s received a credential that is not its own", name)
		}
	}
}

func credentialsPath(home string) string {
	return filepath.Join(home, ".config", "keygate", credentialsFileName)
}

func legacyPath(home string) string {
	return filepath.Join(home, ".config", "keygate", legacyTokenFileName)
}

// savedCredentials reads the credentials file as JSON.
func savedCredentials(t *testing.T, home string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(credentialsPath(home))
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Credentials map[string]string }
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("credentials file: %v", err)
	}
	return f.Credentials
}

// nonLoopbackListener listens on an address of this machine that is not
// loopback, so a test can see whether anything is sent to "another machine".
func nonLoopbackListener(t *testing.T) net.Listener {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skipf("no interface addresses: %v", err)
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() || ipn.IP.To4() == nil {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(ipn.IP.String(), "0"))
		if err == nil {
			return ln
		}
	}
	t.Skip("this machine has no non-loopback IPv4 address to listen on; the refusal itself is covered by adminclient's TestNewRefusesPlainHTTPToAnotherMachine")
	return nil
}

// TestLoginKeepsOneCredentialPerAdminURL: logged in to two keygates, each
// command sends each server only its own credential, whether the
// credentials live in the keychain or the fallback file; logout forgets
// only one.
func TestLoginKeepsOneCredentialPerAdminURL(t *testing.T) {
	t.Parallel()
	for name, kr := range map[string]func() Keyring{
		"file":     func() Keyring { return unavailableKeyring{} },
		"keychain": func() Keyring { return mapKeyring{} },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.kr = kr()
			delete(h.env, EnvAdminToken)
			delete(h.env, EnvAdminURL)
			a, b := h.admin, newFakeAdmin(t)

			h.mustRun(a.token+"\n", "--admin-url", a.srv.URL, "login")
			h.mustRun(b.token+"\n", "--admin-url", b.srv.URL, "login")
			h.mustRun("", "--admin-url", a.srv.URL, "provider", "list")
			// The same server written differently finds the same credential.
			h.mustRun("", "--admin-url", strings.Replace(b.srv.URL, "http://", "HTTP://", 1)+"/", "key", "list")
			h.env[EnvAdminURL] = a.srv.URL
			h.mustRun("", "key", "list")
			onlyOwnCredential(t, "A", a)
			onlyOwnCredential(t, "B", b)
			if name == "file" {
				if got := savedCredentials(t, h.home); len(got) != 2 {
					t.Errorf("credentials file holds %d credentials, want 2", len(got))
				}
				if st, err := os.Stat(credentialsPath(h.home)); err != nil || st.Mode().Perm() != 0o600 {
					t.Errorf("credentials file: %v %v", st, err)
				}
			}

			// Logging out of B leaves A logged in.
			out, _ := h.mustRun("", "--admin-url", b.srv.URL, "logout")
			if !strings.Contains(out, "Removed the admin credential for "+b.srv.URL) {
				t.Errorf("logout: %s", out)
			}
			before := len(authsSeen(b))
			_, _, err := h.run("", "--admin-url", b.srv.URL, "key", "list")
			if err == nil || !strings.Contains(err.Error(), "no admin credential for "+b.srv.URL) {
				t.Errorf("after logging out of B: %v", err)
			}
			if len(authsSeen(b)) != before {
				t.Error("a request went to B after logging out of it")
			}
			h.mustRun("", "key", "list")
			onlyOwnCredential(t, "A", a)
		})
	}
}

// TestAdminCredentialIsNotSentInClear: plain http:// to an address of
// another machine is refused before anything is sent, wherever the
// credential comes from, unless --insecure-http says the network is trusted.
func TestAdminCredentialIsNotSentInClear(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	remote := newFakeAdminOn(t, nonLoopbackListener(t))
	url := remote.srv.URL // http://<this machine's non-loopback address>:port
	h.env[EnvAdminURL] = url
	h.env[EnvAdminToken] = remote.token

	for _, args := range [][]string{{"key", "list"}, {"provider", "list"}, {"secret", "list"}} {
		out, errOut, err := h.run("", args...)
		if err == nil {
			t.Fatalf("%v over plain HTTP to %s: no error", args, url)
		}
		for _, want := range []string{"refusing to send the admin credential", "plain HTTP", "https://", "--insecure-http"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%v: error lacks %q: %v", args, want, err)
			}
		}
		h.assertNotExposed(remote.token, out, errOut, err.Error())
	}
	// Nor from a saved credential, nor at login, which reads nothing first.
	delete(h.env, EnvAdminToken)
	h.kr = mapKeyring{}
	if _, _, err := h.run(remote.token+"\n", "login"); err == nil || !strings.Contains(err.Error(), "plain HTTP") {
		t.Errorf("login over plain HTTP: %v", err)
	}
	if _, err := os.Stat(credentialsPath(h.home)); !os.IsNotExist(err) {
		t.Errorf("login over plain HTTP saved something: %v", err)
	}
	origin := strings.ToLower(url)
	h.kr = mapKeyring{KeyringService + "|" + origin: remote.token}
	if _, _, err := h.run("", "key", "list"); err == nil || !strings.Contains(err.Error(), "plain HTTP") {
		t.Errorf("keychain credential over plain HTTP: %v", err)
	}
	if n := len(authsSeen(remote)); n != 0 {
		t.Fatalf("%d requests reached the server over plain HTTP, want none", n)
	}

	// The operator's explicit override, with a warning each time.
	_, errOut := h.mustRun("", "--insecure-http", "key", "list")
	if !strings.Contains(errOut, "warning:") || !strings.Contains(errOut, "plain HTTP") {
		t.Errorf("--insecure-http without a warning: %q", errOut)
	}
	onlyOwnCredential(t, "remote", remote)
}

// TestLegacyTokenFile: the single-credential file of earlier keygate
// versions is read for the default admin URL only, and folded into the
// per-URL file at the next login or logout.
func TestLegacyTokenFile(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	delete(h.env, EnvAdminToken)
	a := h.admin
	writeFile(t, legacyPath(h.home), a.token+"\n", 0o600)

	// Another admin URL does not get it.
	_, _, err := h.run("", "key", "list")
	if err == nil || !strings.Contains(err.Error(), "no admin credential for "+a.srv.URL) || !strings.Contains(err.Error(), "only for "+DefaultAdminURL) {
		t.Fatalf("legacy file used for another admin URL: %v", err)
	}
	if n := len(authsSeen(a)); n != 0 {
		t.Fatalf("%d requests carried the legacy credential to another admin URL", n)
	}

	// The default admin URL does, when a keygate can be faked there.
	if ln, err := net.Listen("tcp", strings.TrimPrefix(DefaultAdminURL, "http://")); err != nil {
		t.Logf("%s is in use; not checking the legacy file against it: %v", DefaultAdminURL, err)
	} else {
		def := newFakeAdminOn(t, ln)
		writeFile(t, legacyPath(h.home), def.token+"\n", 0o600)
		delete(h.env, EnvAdminURL)
		h.mustRun("", "key", "list")
		onlyOwnCredential(t, "default", def)
		h.env[EnvAdminURL] = a.srv.URL
	}

	// Logging in elsewhere keeps it for the default admin URL, in the new file.
	legacy, _ := os.ReadFile(legacyPath(h.home))
	b := newFakeAdmin(t)
	h.mustRun(b.token+"\n", "--admin-url", b.srv.URL, "login")
	saved := savedCredentials(t, h.home)
	if saved[DefaultAdminURL] != strings.TrimSpace(string(legacy)) || saved[b.srv.URL] != b.token || len(saved) != 2 {
		t.Errorf("after login, saved credentials are for %d URLs: default migrated=%v, B=%v",
			len(saved), saved[DefaultAdminURL] == strings.TrimSpace(string(legacy)), saved[b.srv.URL] == b.token)
	}
	if _, err := os.Stat(legacyPath(h.home)); !os.IsNotExist(err) {
		t.Errorf("the legacy file is still there after migration: %v", err)
	}
	h.mustRun("", "--admin-url", b.srv.URL, "key", "list")
	onlyOwnCredential(t, "B", b)
	if n := len(authsSeen(a)); n != 0 {
		t.Fatalf("%d requests reached A", n)
	}

	// Logging out of the default admin URL removes the legacy file too.
	h2 := newHarness(t)
	delete(h2.env, EnvAdminToken)
	writeFile(t, legacyPath(h2.home), h2.admin.token+"\n", 0o600)
	out, _ := h2.mustRun("", "--admin-url", DefaultAdminURL, "logout")
	if !strings.Contains(out, "Removed the admin credential for "+DefaultAdminURL) {
		t.Errorf("logout of the default URL: %s", out)
	}
	if _, err := os.Stat(legacyPath(h2.home)); !os.IsNotExist(err) {
		t.Errorf("the legacy file is still there after logout: %v", err)
	}
}
