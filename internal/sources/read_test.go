package sources_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/fakecloud"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/sources"
	"github.com/keygate/keygate/internal/sources/sourcestest"
)

// Every test here talks to local fakes (internal/fakecloud) through the
// official SDKs with endpoint overrides; no real cloud is called.

func mustRef(t *testing.T, s string) sources.Ref {
	t.Helper()
	r, err := sources.ParseRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestReadEverySourceThroughItsSDK(t *testing.T) {
	c := fakecloud.Start(t)
	c.SM.Put("prod/openai", "fake-aws-value-1")
	c.SM.Put("prod/json", `{"api_key":"fake-aws-field","other":"x"}`)
	c.KeyVault.Put("openai-key", "fake-azure-value-1")
	c.GCPSM.Put(fakecloud.GCPProject, "openai", "fake-gcp-value-1")
	c.Vault.Put("kv", "team/openai", map[string]any{"api_key": "fake-vault-value-1", "org": "o"})
	src := sources.New(sourcestest.Config(c))
	ctx := context.Background()
	for ref, want := range map[string]string{
		"awssm://prod/openai":                         "fake-aws-value-1",
		"awssm://prod/json#api_key":                   "fake-aws-field",
		"azkv://myvault/openai-key":                   "fake-azure-value-1",
		"gcpsm://" + fakecloud.GCPProject + "/openai": "fake-gcp-value-1",
		"vault://kv/team/openai#api_key":              "fake-vault-value-1",
	} {
		v, err := src.Read(ctx, mustRef(t, ref))
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if v.Secret.Reveal() != want || v.Version == "" {
			t.Errorf("%s: got a value of %d bytes, version %q; want %q with a version", ref, len(v.Secret.Reveal()), v.Version, want)
		}
	}
	if c.Google.Tokens.Issued() != 1 || c.Entra.Tokens.Issued() != 1 {
		t.Errorf("tokens are minted once and cached: google %d, entra %d", c.Google.Tokens.Issued(), c.Entra.Tokens.Issued())
	}
}

func TestReadErrorsNameTheSourceNotTheValue(t *testing.T) {
	c := fakecloud.Start(t)
	c.Vault.Put("kv", "team/openai", map[string]any{"api_key": "fake-vault-secret-value", "org": "fake-org-value"})
	c.GCPSM.Put(fakecloud.GCPProject, "openai", "fake-gcp-secret-value")
	src := sources.New(sourcestest.Config(c))
	ctx := context.Background()

	_, err := src.Read(ctx, mustRef(t, "vault://kv/team/openai"))
	if err == nil || !strings.Contains(err.Error(), "api_key, org") || !sourcestest.Redacted(err.Error(), "fake-vault-secret-value", "fake-org-value") {
		t.Errorf("a secret with several fields and no #field: %v", err)
	}
	_, err = src.Read(ctx, mustRef(t, "awssm://missing"))
	if !errors.Is(err, sources.ErrNotFound) || !strings.Contains(err.Error(), "awssm://missing") {
		t.Errorf("missing AWS secret: %v", err)
	}
	c.GCPSM.Corrupt(true)
	_, err = src.Read(ctx, mustRef(t, "gcpsm://"+fakecloud.GCPProject+"/openai"))
	if err == nil || !strings.Contains(err.Error(), "CRC32C") || !sourcestest.Redacted(err.Error(), "fake-gcp-secret-value") {
		t.Errorf("a payload failing its checksum must be refused: %v", err)
	}
}

func TestSignaturesAndTokensAreChecked(t *testing.T) {
	c := fakecloud.Start(t)
	c.SM.Put("a", "fake-value")
	cfg := sourcestest.Config(c)
	cfg.AWS.Identity.AccessKeyID = "AKIAFAKEUNKNOWN00000"
	if _, err := sources.New(cfg).Read(context.Background(), mustRef(t, "awssm://a")); err == nil || !strings.Contains(err.Error(), "InvalidSignature") {
		t.Errorf("an unknown AWS key must be refused by the fake: %v", err)
	}
	cfg = sourcestest.Config(c)
	cfg.Vault.Token = secret.New(cfg.Vault.Token.Reveal() + "x")
	if _, err := sources.New(cfg).Read(context.Background(), mustRef(t, "vault://kv/a#b")); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("a wrong Vault token must be refused: %v", err)
	}
}

func TestParseRef(t *testing.T) {
	for _, bad := range []string{"", "openai", "s3://bucket/key", "azkv://v/", "gcpsm://Bad_Project/x", "vault://kv", "vault://kv/../x#f", "awssm://a#b c", "awssm://a?x=1"} {
		if _, err := sources.ParseRef(bad); err == nil {
			t.Errorf("ParseRef(%q) accepted", bad)
		}
	}
	for _, good := range []string{"awssm://prod/openai", "awssm://arn:aws:secretsmanager:us-east-1:1:secret:x", "azkv://my-vault/openai-key", "gcpsm://my-project/openai#key", "vault://kv/team/openai#api_key"} {
		r, err := sources.ParseRef(good)
		if err != nil || r.String() != good {
			t.Errorf("ParseRef(%q) = %v, %v", good, r, err)
		}
	}
}

func secretOf(s string) secret.String { return secret.New(s) }
