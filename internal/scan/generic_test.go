package scan_test

import (
	"testing"

	"github.com/keygate/keygate/internal/scan"
)

// TestGenericIgnoresCode holds lines of keygate's own code that the
// generic rule once reported: names, references, test values and code
// around credential words. None holds a credential.
func TestGenericIgnoresCode(t *testing.T) {
	m, err := scan.NewMatcher(scan.Rules())
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"  (`X-Keygate-Signature: sha256=...`).",
		`	writeFile(t, repo, "agent/config.yaml", "gateway: http://127.0.0.1:8787\napi_key: "+leakedKey+"\n")`,
		`	p, err := c.CreateProvider(ctx, adminapi.CreateProviderRequest{Name: "openai", APIKey: "test-upstream-key-123"})`,
		`	EnvAdminToken = "KEYGATE_ADMIN_TOKEN" // admin credential`,
		`  keygate run --secret STRIPE_KEY=payments/stripe@3 -- sh -c 'deploy --key "$STRIPE_KEY"'`,
		`		"--secret", "DB_PASSWORD=db/password", "--secret", "OLD_PASSWORD=db/password@1",`,
		`		Tokens: Tokens{Issuer: "keygate", Audience: "keygate"},`,
		`	apiKey := http.Header{"Api-Key": {key}, "Content-Type": {"application/json"}}`,
		`	c.tokenNarrow = authz.Scope{Providers: claims.Scope.Providers, Models: claims.Scope.Models}`,
		`			rawQuery := "limit=3&api_key=" + clientKey + "&API_KEY=other-param&api%5Fkey=" + clientKey`,
		`		sp.Start, sp.End, sp.SecretStart, sp.SecretEnd = sp.Start+b, sp.End+b, sp.SecretStart+b, sp.SecretEnd+b`,
		`	keygate_url = "https://keygate.internal:8787/v1"`,
		`	tokens_total = metrics.Counter2x(registry)`,
	} {
		if ms := m.Find([]byte(line)); len(ms) != 0 {
			t.Errorf("reported %s in %q", ms[0].Rule.ID, line)
		}
	}
	for _, line := range []string{
		`DB_PASSWORD="q7Vx!2mPz9#LkR4w"`,          // keygate:allow (made-up test values)
		`	apiKey: 'N3wR4nd0mV4lu3xQ8zK2',`,        // keygate:allow (made-up test values)
		`webhookSecret := "Zx8Kq2Lm9Wp4Rt7Yb3Nc"`, // keygate:allow (made-up test values)
		`smtp_password: hG5-kT9q_Vm2xZ7p`,         // keygate:allow (made-up test values)
	} {
		if ms := m.Find([]byte(line)); len(ms) != 1 || ms[0].Rule.ID != "generic-secret" {
			t.Errorf("missed the secret in %q: %v", line, ms)
		}
	}
}
