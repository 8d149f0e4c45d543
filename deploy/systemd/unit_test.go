// Package systemd holds keygate's systemd unit; its test checks the unit
// with systemd's own analyzer.
package systemd

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// unit reads keygate.service with ExecStart pointed at an executable that
// exists here (systemd-analyze verify checks that it does).
func unit(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("keygate.service")
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "keygate.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(b), "/usr/local/bin/keygate", self)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func analyzer(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("systemd-analyze is missing; .ci/run installs systemd")
		}
		t.Skip("systemd-analyze is not installed (apt-get install systemd); the unit's directives are still checked by TestUnitHardening")
	}
	return p
}

// TestUnitVerifies: systemd accepts the unit as written: no unknown
// directive, no bad value, no warning.
func TestUnitVerifies(t *testing.T) {
	sa := analyzer(t)
	out, err := exec.Command(sa, "verify", unit(t)).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestUnitExposure: systemd's own exposure score for the unit stays at
// "OK" or better (at most 2.0 of 10; systemd-analyze's threshold counts in
// tenths).
func TestUnitExposure(t *testing.T) {
	sa := analyzer(t)
	cmd := exec.Command(sa, "security", "--offline=yes", "--threshold=20", unit(t))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: exposure above 2.0 (%v):\n%s", err, out)
	}
	if m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out); m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	} else {
		t.Logf("exposure %s", m[1])
	}
}

// TestUnitHardening: the options the documentation promises are set.
func TestUnitHardening(t *testing.T) {
	b, err := os.ReadFile("keygate.service")
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		lines[strings.TrimSpace(l)] = true
	}
	for _, want := range []string{
		"DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes", "StateDirectory=keygate",
		"StateDirectoryMode=0700", "ProtectHome=yes", "PrivateTmp=yes", "PrivateDevices=yes",
		"CapabilityBoundingSet=", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
		"SystemCallFilter=@system-service", "MemoryDenyWriteExecute=yes", "UMask=0077",
		"KillSignal=SIGTERM", "Environment=KEYGATE_DATA_DIR=%S/keygate",
	} {
		if !lines[want] {
			t.Errorf("keygate.service lacks %q", want)
		}
	}
}
