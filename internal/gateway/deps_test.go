package gateway_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDataPlaneLayering keeps the data plane's layering as docs/layout.md
// describes it: no package of the data plane depends, even indirectly, on a
// database or Redis driver or on the admin plane, and the request path
// reaches the store only through its boundary packages (keysource and
// gatewaystore, wired by internal/server), never by importing it.
func TestDataPlaneLayering(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command to list imports")
	}
	const mod = "github.com/keygate/keygate/internal/"
	dataPlane := []string{"gateway", "principal", "authz", "limit", "jsonpeek", "translate", "scrub", "provider", "passthrough", "policy", "balance", "web", "egress", "limitspec", "pricing", "usage", "mcpgate"}
	never := []string{"github.com/jackc/pgx", "modernc.org/sqlite", "github.com/lib/pq", "github.com/redis/go-redis",
		mod + "admin", mod + "adminapi", mod + "adminclient", mod + "cli", mod + "server", mod + "keysource", mod + "gatewaystore", mod + "keylife"}
	// The request path's own packages do not import the store at all.
	noStore := []string{"gateway", "principal", "authz", "limit", "jsonpeek", "translate", "scrub", "provider", "passthrough", "policy", "balance", "web", "egress", "limitspec", "pricing", "mcpgate"}
	for _, pkg := range dataPlane {
		out, err := exec.Command("go", "list", "-deps", mod+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, bad := range never {
				if dep == bad || strings.HasPrefix(dep, bad+"/") {
					t.Errorf("data-plane package %s depends on %s", pkg, dep)
				}
			}
		}
	}
	for _, pkg := range noStore {
		out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, mod+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		for _, imp := range strings.Fields(string(out)) {
			if imp == mod+"store" {
				t.Errorf("%s imports internal/store; the data plane reaches the store only through keysource and gatewaystore", pkg)
			}
		}
	}
}
