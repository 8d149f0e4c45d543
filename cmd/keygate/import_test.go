package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/fakecloud"
)

// Imports run against a real keygate and local fakes of each source
// (internal/fakecloud), reached through the official SDKs with endpoint
// overrides. No real cloud is called.

func TestImportFromEachSourceIsPlannedIdempotentAndNeverPrintsValues(t *testing.T) {
	in := start(t, testConfig(t, t.TempDir()), "")
	c := fakecloud.Start(t)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	sa := filepath.Join(dir, "sa.json")
	if err := os.WriteFile(ca, c.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sa, c.SAJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": c.AWSKey.AccessKeyID, "AWS_SECRET_ACCESS_KEY": c.AWSKey.SecretAccessKey,
		"AWS_ENDPOINT_URL_SECRETS_MANAGER": c.SMURL,
		"AZURE_TENANT_ID":                  c.Entra.TenantID, "AZURE_CLIENT_ID": c.Entra.ClientID, "AZURE_CLIENT_SECRET": c.Entra.ClientSecret, "AZURE_AUTHORITY_HOST": c.EntraURL,
		"GOOGLE_APPLICATION_CREDENTIALS": sa,
		"VAULT_TOKEN":                    c.Vault.Token,
	}
	values := []string{}
	put := func(v string) string { values = append(values, v); return v }
	c.SM.Put("prod/openai", put("fake-aws-import-one"))
	c.SM.Put("prod/stripe", put("fake-aws-import-two"))
	c.SM.Put("dev/other", put("fake-aws-not-imported"))
	c.KeyVault.Put("payments-key", put("fake-azure-import"))
	c.GCPSM.Put(fakecloud.GCPProject, "mail-key", put("fake-gcp-import"))
	c.Vault.Put("kv", "team/openai", map[string]any{"api_key": put("fake-vault-import")})
	c.Vault.Put("kv", "team/db", map[string]any{"user": put("fake-vault-user"), "password": put("fake-vault-pass")})

	cases := []struct {
		name   string
		args   []string
		stored map[string]string // keygate secret -> value
	}{
		{"aws", []string{"import", "aws-secrets-manager", "--prefix", "prod/", "--to", "aws"},
			map[string]string{"aws/prod/openai": "fake-aws-import-one", "aws/prod/stripe": "fake-aws-import-two"}},
		{"azure", []string{"import", "azure-key-vault", "--vault-url", c.KVURL},
			map[string]string{"payments-key": "fake-azure-import"}},
		{"gcp", []string{"import", "gcp-secret-manager", "--project", fakecloud.GCPProject, "--endpoint", c.GCPSMURL},
			map[string]string{"mail-key": "fake-gcp-import"}},
		{"vault", []string{"import", "vault", "--addr", c.VaultURL, "--mount", "kv", "--path", "team"},
			map[string]string{"team/openai": "fake-vault-import", "team/db/user": "fake-vault-user", "team/db/password": "fake-vault-pass"}},
	}
	for _, tc := range cases {
		args := append(tc.args, "--source-ca", ca)
		// The plan first: nothing stored.
		out, errb, err := in.cli(env, "", append(args, "--dry-run")...)
		if err != nil {
			t.Fatalf("%s dry run: %v\n%s\n%s", tc.name, err, out, errb)
		}
		for name := range tc.stored {
			if !strings.Contains(out, "create") || !strings.Contains(out, name) {
				t.Fatalf("%s: the plan does not show %s to create:\n%s", tc.name, name, out)
			}
			if _, _, err := in.cli(nil, "", "secret", "get", name); err == nil {
				t.Fatalf("%s: a dry run stored %s", tc.name, name)
			}
		}
		// Applied (not a terminal, so no --apply needed), then idempotent.
		out2, errb2, err := in.cli(env, "", args...)
		if err != nil {
			t.Fatalf("%s: %v\n%s\n%s", tc.name, err, out2, errb2)
		}
		for name, want := range tc.stored {
			if got := strings.TrimSpace(in.mustCLI(nil, "", "secret", "get", name)); got != want {
				t.Fatalf("%s: secret %s holds %d bytes, not the source's value", tc.name, name, len(got))
			}
		}
		out3, errb3, err := in.cli(env, "", args...)
		if err != nil || !strings.Contains(errb3, "Nothing to store") || strings.Contains(out3, "  create") {
			t.Fatalf("%s: a second import must change nothing: %v\n%s\n%s", tc.name, err, out3, errb3)
		}
		for _, v := range values {
			for _, s := range []string{out, errb, out2, errb2, out3, errb3} {
				if strings.Contains(s, v) {
					t.Fatalf("%s: an import printed a value", tc.name)
				}
			}
		}
	}
	if strings.Contains(in.mustCLI(nil, "", "secret", "list"), "dev/other") {
		t.Fatal("--prefix imported a secret outside it")
	}
	// A rotation at the source is an update on the next import.
	c.SM.Put("prod/openai", "fake-aws-import-rotated")
	out := in.mustCLI(env, "", "import", "aws-secrets-manager", "--prefix", "prod/", "--to", "aws", "--source-ca", ca)
	if !strings.Contains(out, "update") || !strings.Contains(out, "unchanged") {
		t.Fatalf("a changed value is an update, the rest unchanged:\n%s", out)
	}
	if got := strings.TrimSpace(in.mustCLI(nil, "", "secret", "get", "aws/prod/openai")); got != "fake-aws-import-rotated" {
		t.Fatal("the update did not store the new value")
	}
	// Every store went through the admin API's audit trail.
	if ev := in.mustCLI(nil, "", "audit", "search", "--type", "admin.action", "--limit", "500"); strings.Count(ev, "secrets/") < 8 {
		t.Fatalf("imports are audited as admin actions:\n%s", ev)
	}
}

func TestImportFilesMapProvidersAndListWhatDoesNotMap(t *testing.T) {
	in := start(t, testConfig(t, t.TempDir()), "")
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	envFile := write(".env", "# app settings\nexport OPENAI_API_KEY=fake-env-openai-key\nSTRIPE_KEY='fake-env-stripe'\nDATABASE_URL=\"postgres://fake-env-db\" \n")
	litellm := write("config.yaml", `model_list:
  - model_name: gpt-4o
    litellm_params: {model: openai/gpt-4o, api_key: os.environ/LL_OPENAI}
  - model_name: smart
    litellm_params: {model: anthropic/claude-sonnet-4-5, api_key: os.environ/LL_ANTHROPIC}
  - model_name: titan
    litellm_params: {model: bedrock/amazon.titan-text}
general_settings: {master_key: sk-fake-litellm-master}
`)
	bifrost := write("config.json", `{"providers": {
  "groq": {"keys": [{"value": "env.BF_GROQ", "models": ["llama-3.3-70b"], "weight": 1}]},
  "mistral": {"keys": [{"value": "fake-bifrost-literal-mistral", "models": [], "weight": 1}]}},
 "governance": {"virtual_keys": [{"id": "vk1", "name": "team-a"}]}}`)
	env := map[string]string{"LL_OPENAI": "fake-ll-openai", "LL_ANTHROPIC": "fake-ll-anthropic", "BF_GROQ": "fake-bf-groq"}
	secrets := []string{"fake-env-openai-key", "fake-env-stripe", "fake-env-db", "fake-ll-openai", "fake-ll-anthropic", "fake-bf-groq", "fake-bifrost-literal-mistral", "sk-fake-litellm-master"}

	out, errb, err := in.cli(env, "", "import", "env", envFile, "--to", "app")
	if err != nil {
		t.Fatalf("%v\n%s\n%s", err, out, errb)
	}
	if got := strings.TrimSpace(in.mustCLI(nil, "", "secret", "get", "app/STRIPE_KEY")); got != "fake-env-stripe" {
		t.Fatal("a .env variable was not stored as a secret")
	}
	if got := strings.TrimSpace(in.mustCLI(nil, "", "secret", "get", "app/DATABASE_URL")); got != "postgres://fake-env-db" {
		t.Fatal("a quoted .env value was not unquoted")
	}
	out2, errb2, err := in.cli(env, "", "import", "litellm", litellm)
	if err != nil {
		t.Fatalf("%v\n%s\n%s", err, out2, errb2)
	}
	for _, want := range []string{"titan", "bedrock", "master_key", "alias"} {
		if !strings.Contains(out2, want) {
			t.Errorf("litellm: the plan does not list %q as not imported:\n%s", want, out2)
		}
	}
	out3, errb3, err := in.cli(env, "", "import", "bifrost", bifrost)
	if err != nil {
		t.Fatalf("%v\n%s\n%s", err, out3, errb3)
	}
	if !strings.Contains(out3, "team-a") {
		t.Errorf("bifrost: virtual keys are listed as not imported:\n%s", out3)
	}
	providers := in.mustCLI(nil, "", "provider", "list")
	for _, p := range []string{"openai", "anthropic", "groq", "mistral"} {
		if !strings.Contains(providers, p) {
			t.Errorf("provider %s was not imported:\n%s", p, providers)
		}
	}
	if !strings.Contains(providers, "claude-sonnet-4-5") || !strings.Contains(providers, "llama-3.3-70b") {
		t.Errorf("providers serve the models their config listed:\n%s", providers)
	}
	if !strings.Contains(out2, "exists  provider  openai") {
		t.Errorf("the provider the .env import added is left as it is:\n%s", out2)
	}
	// Again: nothing changes.
	for _, args := range [][]string{{"import", "env", envFile, "--to", "app"}, {"import", "litellm", litellm}, {"import", "bifrost", bifrost}} {
		_, e, err := in.cli(env, "", args...)
		if err != nil || !strings.Contains(e, "Nothing to store") {
			t.Fatalf("%v: a second import must change nothing: %v %s", args, err, e)
		}
	}
	for _, s := range []string{out, errb, out2, errb2, out3, errb3, providers} {
		for _, v := range secrets {
			if strings.Contains(s, v) {
				t.Fatal("an import printed a value")
			}
		}
	}
}
