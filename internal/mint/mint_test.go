package mint_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/fakecloud"
	"github.com/keygate/keygate/internal/mint"
	"github.com/keygate/keygate/internal/secret"
)

// TestOpenRouterMinter: keys are created and deleted through a fake of
// OpenRouter's key management API (its paths, auth and shapes); a wrong
// provisioning key is refused with OpenRouter's message, never echoed.
func TestOpenRouterMinter(t *testing.T) {
	fake := &fakecloud.OpenRouter{ProvisioningKey: "fake-openrouter-provisioning-" + t.Name()}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	ctx := context.Background()
	m := &mint.OpenRouter{BaseURL: srv.URL, ProvisioningKey: secret.New(fake.ProvisioningKey)}
	k, err := m.Create(ctx, "keygate-test")
	if err != nil || !strings.HasPrefix(k.Key.Reveal(), "sk-or-v1-") || len(k.ID) != 64 || fake.Live() != 1 {
		t.Fatalf("create: %+v %v", k.ID, err)
	}
	if err := m.Delete(ctx, k.ID); err != nil || fake.Live() != 0 || fake.Deleted()[0] != k.ID {
		t.Fatalf("delete: %v", err)
	}
	if err := m.Delete(ctx, k.ID); err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "Key not found") {
		t.Fatalf("deleting a deleted key: %v", err)
	}
	bad := &mint.OpenRouter{BaseURL: srv.URL, ProvisioningKey: secret.New("fake-wrong-provisioning-key")}
	if _, err := bad.Create(ctx, "x"); err == nil || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), "fake-wrong") {
		t.Fatalf("a wrong provisioning key: %v", err)
	}
}

// TestParseConfig: the stored configuration, its first three-line form,
// and what is refused, by field.
func TestParseConfig(t *testing.T) {
	c := mint.Config{Kind: mint.KindOpenRouter, Overlap: time.Hour, RotateEvery: 30 * 24 * time.Hour}
	got, err := mint.ParseConfig(c.Encode().Reveal())
	if err != nil || got != c {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	got, err = mint.ParseConfig("proj_abc\nhttps://admin.example\n2h0m0s")
	if err != nil || got.Kind != mint.KindOpenAI || got.OpenAIProject != "proj_abc" || got.Overlap != 2*time.Hour || got.RotateEvery != 0 {
		t.Fatalf("three-line form: %+v %v", got, err)
	}
	for in, want := range map[string]string{
		`{"kind":"bard"}`: "kind",
		`{"kind":"anthropic","rotate_every":60000000000}`: "rotate_every",
		`{"kind":"openai"}`:                           "openai_project",
		`{"kind":"openrouter","rotate_every":1000}`:   "rotate_every",
		`{"kind":"openrouter","overlap":-1000000000}`: "overlap",
		"not configuration":                           "not minting configuration",
	} {
		if _, err := mint.ParseConfig(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error naming %s", in, err, want)
		}
	}
	if p, ok := mint.ProviderOfConfig("mint/openrouter/config"); !ok || p != "openrouter" {
		t.Fatal("ProviderOfConfig")
	}
	for _, n := range []string{"mint/openrouter", "mint/openrouter/admin-key", "mint/a/b/config", "other/x/config"} {
		if _, ok := mint.ProviderOfConfig(n); ok {
			t.Errorf("%s is not a minting configuration", n)
		}
	}
}

// TestAnthropicDisable: a key is found by its hint through a fake of
// Anthropic's Admin API (its paths, headers and shapes) and set inactive,
// and only that key; a key disabled already fits none; a wrong admin key
// is refused and not echoed.
func TestAnthropicDisable(t *testing.T) {
	fake := &fakecloud.AnthropicAdmin{AdminKey: "fake-anthropic-admin-" + t.Name()}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	_, other := fake.AddKey("other")
	leaked, id := fake.AddKey("served-by-keygate")
	ctx := context.Background()
	a := &mint.Anthropic{BaseURL: srv.URL, AdminKey: secret.New(fake.AdminKey)}
	got, name, err := a.Disable(ctx, secret.New(leaked))
	if err != nil || got != id || name != "served-by-keygate" || fake.Status(id) != "inactive" || fake.Status(other) != "active" {
		t.Fatalf("disable: %s %s %v; statuses %s %s", got, name, err, fake.Status(id), fake.Status(other))
	}
	if _, _, err := a.Disable(ctx, secret.New(leaked)); !errors.Is(err, mint.ErrNoKeyFits) {
		t.Fatalf("a disabled key again: %v", err)
	}
	bad := &mint.Anthropic{BaseURL: srv.URL, AdminKey: secret.New("fake-wrong-admin-key")}
	if _, _, err := bad.Disable(ctx, secret.New(leaked)); err == nil || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), "fake-wrong") {
		t.Fatalf("a wrong admin key: %v", err)
	}
}
