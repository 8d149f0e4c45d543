package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWorkloads: trust policies and secret grants load from the file, a
// claim pattern may be one value or a list, and every mistake is refused at
// start naming the field.
func TestWorkloads(t *testing.T) {
	dir := t.TempDir()
	load := func(body string) (Config, error) {
		p := filepath.Join(dir, "keygate.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(p, dir, func(string) string { return "" })
		if err != nil {
			return c, err
		}
		return c, c.Validate()
	}
	c, err := load(`
workloads:
  trust:
    - name: deploy
      issuer: https://token.actions.githubusercontent.com
      audience: https://keygate.example.com
      subject: "repo:acme/app:ref:refs/heads/main"
      claims:
        repository: acme/app
        workflow: [deploy, release]
      key: key_0123456789abcdef
      scope: "model:gpt-4o* secret:ci/${repository}"
    - name: payments-pods
      issuer: https://kubernetes.default.svc
      audience: keygate
      claims:
        kubernetes.io/namespace: payments
      key: key_fedcba9876543210
  issuers:
    https://kubernetes.default.svc:
      jwks_url: https://10.0.0.1/openid/v1/jwks
      ca_file: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt
  secret_grants:
    key_0123456789abcdef: ["ci/*"]
`)
	if err != nil {
		t.Fatal(err)
	}
	w := c.Workloads
	if len(w.Trust) != 2 || w.Trust[0].Claims["workflow"][1] != "release" || w.Trust[0].Claims["repository"][0] != "acme/app" {
		t.Fatalf("trust policies read wrong: %+v", w.Trust)
	}
	if w.Issuers["https://kubernetes.default.svc"].JWKSURL == "" || w.SecretGrants["key_0123456789abcdef"][0] != "ci/*" {
		t.Fatalf("issuers or grants read wrong: %+v", w)
	}

	base := "workloads:\n  trust:\n    - name: p\n      issuer: https://issuer.example\n      audience: kg\n      subject: repo:acme/*\n      key: key_abc\n"
	for body, want := range map[string]string{
		strings.Replace(base, "      audience: kg\n", "", 1):                                                             "workloads.trust[0].audience: must not be empty",
		strings.Replace(base, "https://issuer.example", "http://issuer.example", 1):                                      "workloads.trust[0].issuer: must be an https:// URL",
		strings.Replace(base, "https://issuer.example", "issuer", 1):                                                     "workloads.trust[0].issuer",
		strings.Replace(base, "key_abc", "ci-key", 1):                                                                    "workloads.trust[0].key: must be a key's id",
		strings.Replace(base, "      subject: repo:acme/*\n", "", 1):                                                     "workloads.trust[0]: set subject or claims",
		strings.Replace(base, "repo:acme/*", "\"*\"", 1):                                                                 "workloads.trust[0]: set subject or claims",
		strings.Replace(base, "    - name: p\n", "    - name: \"\"\n", 1):                                                "workloads.trust[0].name: must not be empty",
		base + "    - name: p\n      issuer: https://i.example\n      audience: a\n      subject: s\n      key: key_x\n": `workloads.trust[1].name: "p" is used twice`,
		base + "  issuers:\n    https://other.example:\n      jwks_url: https://other.example/keys\n":                    `workloads.issuers: "https://other.example" is no trust policy's issuer`,
		base + "  issuers:\n    https://issuer.example:\n      jwks_url: ftp://x\n":                                      `workloads.issuers["https://issuer.example"].jwks_url: must be an https:// URL`,
		base + "  secret_grants:\n    ci-key: [x]\n":                                                                     `workloads.secret_grants: "ci-key" must be a key's id`,
		base + "  secret_grants:\n    key_abc: [\"ci/[a-z]*\"]\n":                                                        `workloads.secret_grants["key_abc"]: "ci/[a-z]*"`,
	} {
		if _, err := load(body); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s\nerror %v, want %q", body, err, want)
		}
	}
	// A loopback issuer may be plain http, for a test or a local provider.
	if _, err := load(strings.Replace(base, "https://issuer.example", "http://127.0.0.1:5556/dex", 1)); err != nil {
		t.Fatalf("a loopback issuer: %v", err)
	}
}
