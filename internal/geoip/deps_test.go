package geoip_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps the test-only database writer out of keygate's binary and
// keeps the policy package free of dependencies beyond the standard library.
func TestDeps(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH; run this test with a Go toolchain installed")
	}
	deps := func(pkg string) []string {
		out, err := exec.Command(goTool, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		return strings.Fields(string(out))
	}
	for _, d := range deps("github.com/keygate/keygate/internal/geoip") {
		if strings.HasPrefix(d, "github.com/maxmind/mmdbwriter") {
			t.Errorf("internal/geoip depends on %s, which is for tests only", d)
		}
	}
	for _, d := range deps("github.com/keygate/keygate/internal/policy") {
		if d != "github.com/keygate/keygate/internal/policy" {
			t.Errorf("internal/policy depends on %s; it must use only the standard library", d)
		}
	}
}
