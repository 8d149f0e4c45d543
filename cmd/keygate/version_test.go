package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/adminapi"
)

// TestVersionOfABuiltBinary builds keygate the way a user does and checks
// that `keygate version` and `keygate --version` name the build: the module
// version and VCS revision the toolchain stamped (as `go version -m` reads
// them), and a release version set at link time.
func TestVersionOfABuiltBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the keygate binary twice; run without -short")
	}
	dir := t.TempDir()
	build := func(name string, args ...string) string {
		t.Helper()
		bin := filepath.Join(dir, name)
		// -buildvcs=auto: stamp the revision where there is a checkout,
		// whatever GOFLAGS says.
		cmd := exec.Command("go", append(append([]string{"build", "-buildvcs=auto", "-o", bin}, args...), ".")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %v: %v\n%s", args, err, out)
		}
		return bin
	}
	run := func(bin string, args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", filepath.Base(bin), args, err, out)
		}
		return string(out)
	}
	// stamped returns what the toolchain wrote into bin: the main module's
	// version and the build settings.
	stamped := func(bin string) (string, map[string]string) {
		t.Helper()
		out, err := exec.Command("go", "version", "-m", bin).Output()
		if err != nil {
			t.Fatalf("go version -m: %v", err)
		}
		mod, settings := "", map[string]string{}
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			switch {
			case len(f) >= 3 && f[0] == "mod":
				mod = f[2]
			case len(f) >= 2 && f[0] == "build":
				k, v, _ := strings.Cut(strings.Join(f[1:], " "), "=")
				settings[k] = v
			}
		}
		return mod, settings
	}

	plain := build("keygate")
	out := run(plain, "version")
	if !strings.HasPrefix(out, "keygate ") || strings.TrimSpace(out) == "keygate dev" || strings.Count(out, "\n") != 1 {
		t.Fatalf("keygate version printed %q", out)
	}
	mod, settings := stamped(plain)
	if !strings.HasPrefix(out, "keygate "+mod) {
		t.Errorf("keygate version %q does not start with the module version %q", out, mod)
	}
	if rev := settings["vcs.revision"]; rev != "" {
		if !strings.Contains(out, "commit "+rev[:12]) || !strings.Contains(out, settings["vcs.time"]) {
			t.Errorf("keygate version %q does not name the revision %s of %s", out, rev, settings["vcs.time"])
		}
		if (settings["vcs.modified"] == "true") != strings.Contains(out, "modified") {
			t.Errorf("keygate version %q, vcs.modified=%s", out, settings["vcs.modified"])
		}
	} else {
		// The Go toolchain stamps no revision in a git worktree (a .git
		// file, not a directory) or without git; buildinfo's own test
		// covers the formatting of one.
		t.Logf("this build carries no VCS revision (a git worktree, or no git); checked the module version only")
	}
	if got := run(plain, "--version"); got != out {
		t.Errorf("keygate --version printed %q, keygate version %q", got, out)
	}
	var js struct{ Version string }
	if err := json.Unmarshal([]byte(run(plain, "--json", "version")), &js); err != nil || "keygate "+js.Version+"\n" != out {
		t.Errorf("keygate --json version: %+v %v", js, err)
	}

	release := build("keygate-release", "-ldflags", "-X main.version=v9.8.7-test")
	if out := run(release, "version"); !strings.HasPrefix(out, "keygate v9.8.7-test") {
		t.Errorf("a release build's version: %q", out)
	}
}

// TestVersionMatchesTheAdminAPI: the admin API reports the version `keygate
// version` prints.
func TestVersionMatchesTheAdminAPI(t *testing.T) {
	in := start(t, testConfig(t, t.TempDir()), "")
	printed := strings.TrimSpace(in.mustCLI(nil, "", "version"))
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, in.addrs.Admin+adminapi.Prefix+"/status", nil)
	req.Header.Set("Authorization", "Bearer "+in.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st adminapi.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if printed != "keygate "+st.Version || st.Version == "dev" || st.Version == "" {
		t.Fatalf("keygate version printed %q; the admin API reports %q", printed, st.Version)
	}
}
