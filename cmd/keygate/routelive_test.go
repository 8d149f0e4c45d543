package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/fakeprovider"
)

// TestRoutingThroughTheCLI: an operator manages routing with keygate
// route, keygate service and keygate apply against a running keygate whose
// configuration file also declares routing. What the CLI adds is served at
// once; the file's entries are listed and left alone; a removal that would
// leave a key with no model is refused naming the key; apply --dry-run
// shows the plan and changes nothing; apply makes exactly what differs,
// and a second apply is no change.
func TestRoutingThroughTheCLI(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Routing = config.Routing{
		Deployments: []config.Deployment{{Name: "file-gpt", Provider: "openai", Model: "gpt-4o"}},
		Aliases:     map[string]config.Alias{"smart": {Deployments: []string{"file-gpt"}}},
	}
	in := start(t, cfg, "")
	up := newUpstreams(t, fakeprovider.Options{}, fakeprovider.Options{})
	in.register(up)
	key := in.createKey("--name", "fast-user", "--allow-model", "fast")
	chat := func(model string) (int, string) {
		return postJSON(t, in.addrs.Gateway+"/v1/chat/completions", key, `{"model":"`+model+`","messages":[{"role":"user","content":"hi"}]}`)
	}
	if code, _ := chat("fast"); code == http.StatusOK {
		t.Fatal("alias fast answered before it was added")
	}

	out := in.mustCLI(nil, "", "route", "add", "deployment", "mini", "--provider", "openai", "--model", "gpt-4o-mini", "--rpm", "600")
	if !strings.Contains(out, "+ create deployment mini") {
		t.Fatalf("route add deployment: %s", out)
	}
	in.mustCLI(nil, "", "route", "add", "alias", "fast", "--deployment", "mini,file-gpt", "--timeout", "30s")
	if code, body := chat("fast"); code != http.StatusOK || !strings.Contains(body, `"gpt-4o-mini"`) {
		t.Fatalf("alias fast right after it was added: %d %s", code, body)
	}

	out = in.mustCLI(nil, "", "route", "list")
	for _, want := range []string{"deployment  file-gpt  file", "deployment  mini      database  gpt-4o-mini at openai", "alias       fast      database  mini, file-gpt (priority)", "alias       smart     file"} {
		if !strings.Contains(out, want) {
			t.Fatalf("route list lacks %q:\n%s", want, out)
		}
	}
	out = in.mustCLI(nil, "", "route", "show", "alias", "fast")
	if !strings.Contains(out, "timeout: 30s") || !strings.Contains(out, "from the database") {
		t.Fatalf("route show: %s", out)
	}

	_, _, err := in.cli(nil, "", "route", "add", "alias", "smart", "--deployment", "mini")
	if err == nil || !strings.Contains(err.Error(), `alias "smart" is defined in keygate's configuration file`) {
		t.Fatalf("adding a name the file holds: %v", err)
	}
	_, _, err = in.cli(nil, "", "route", "remove", "alias", "fast")
	if err == nil || !strings.Contains(err.Error(), `key "fast-user"`) || !strings.Contains(err.Error(), "would reach no model") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("a removal that breaks a key: %v", err)
	}
	if code, _ := chat("fast"); code != http.StatusOK {
		t.Fatalf("the refused removal changed routing: %d", code)
	}

	_, errOut, err := in.cli(nil, "", "service", "add", "billing", "--base-url", "https://billing.example.com/api", "--secret", "billing-key", "--auth", "bearer")
	if err != nil || !strings.Contains(errOut, "keygate secret put billing-key") {
		t.Fatalf("service add: %v, stderr %q", err, errOut)
	}
	if out := in.mustCLI(nil, "", "service", "list"); !strings.Contains(out, "billing") || strings.Contains(out, "alias") {
		t.Fatalf("service list: %s", out)
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "routing.yaml")
	doc := `routing:
  deployments:
    - {name: mini, provider: openai, model: gpt-4o-mini, weight: 2}
  aliases:
    fast: {deployments: [mini, file-gpt], timeout: 30s}
`
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	out = in.mustCLI(nil, "", "apply", "-f", file, "--dry-run")
	if !strings.Contains(out, "~ update deployment mini") || !strings.Contains(out, "- delete service billing") || !strings.Contains(out, "Dry run: nothing changed") {
		t.Fatalf("apply --dry-run: %s", out)
	}
	if out := in.mustCLI(nil, "", "service", "list"); !strings.Contains(out, "billing") {
		t.Fatalf("a dry run removed the service: %s", out)
	}
	out = in.mustCLI(nil, "", "apply", "-f", file)
	if !strings.Contains(out, "Applied 2 change(s)") {
		t.Fatalf("apply: %s", out)
	}
	if out := in.mustCLI(nil, "", "apply", "-f", file); !strings.Contains(out, "No change") {
		t.Fatalf("a second apply: %s", out)
	}
	if out := in.mustCLI(nil, "", "route", "show", "deployment", "mini"); !strings.Contains(out, "weight: 2") {
		t.Fatalf("after apply: %s", out)
	}
	// Dropping the alias from the file is a plan that breaks the key.
	if err := os.WriteFile(file, []byte("routing:\n  deployments:\n    - {name: mini, provider: openai, model: gpt-4o-mini}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out = in.mustCLI(nil, "", "apply", "-f", file, "--dry-run")
	if !strings.Contains(out, "- delete alias fast") || !strings.Contains(out, `! would break: key "fast-user"`) {
		t.Fatalf("apply --dry-run of a breaking plan: %s", out)
	}
	if _, _, err := in.cli(nil, "", "apply", "-f", file); err == nil || !strings.Contains(err.Error(), "would reach no model") {
		t.Fatalf("a breaking apply: %v", err)
	}
	if _, _, err := in.cli(nil, "", "apply", "-f", "-"); err == nil || !strings.Contains(err.Error(), "--allow-empty") {
		t.Fatalf("an empty apply: %v", err)
	}
	if _, _, err := in.cli(nil, "routing:\n  deployment: []\n", "apply", "-f", "-"); err == nil || !strings.Contains(err.Error(), "field deployment not found") {
		t.Fatalf("a misspelt field: %v", err)
	}
	in.mustCLI(nil, "", "apply", "-f", file, "--force")
	if code, _ := chat("fast"); code == http.StatusOK {
		t.Fatal("alias fast still answers after a forced apply removed it")
	}
}
