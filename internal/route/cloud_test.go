package route_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/cloudauth"
	"github.com/keygate/keygate/internal/fakecloud"
	"github.com/keygate/keygate/internal/route"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
)

type providers []store.Provider

func (p providers) ListProviders(context.Context) ([]store.Provider, error) { return p, nil }

type opener map[string]secret.String

func (o opener) Get(_ context.Context, id string) (secret.String, int, error) { return o[id], 1, nil }

// A Bedrock provider loads with an Authorizer that signs what the gateway
// sends (a Messages request with the placeholder key), checked by a fake
// Bedrock that verifies SigV4. No real cloud is called.
func TestLoadServesCloudIdentityProviders(t *testing.T) {
	c := fakecloud.Start(t)
	srv := httptest.NewTLSServer(&fakecloud.Bedrock{Keys: &c.SM.Keys})
	defer srv.Close()
	doc := cloudauth.Credential{Kind: "aws", Region: "us-east-1", AccessKeyID: c.AWSKey.AccessKeyID, SecretAccessKey: c.AWSKey.SecretAccessKey}.Seal()
	src := providers{{ID: "prv_b", Name: "bedrock", Dialect: "anthropic", BaseURL: srv.URL, SecretID: "provider/prv_b", Preset: cloudauth.PresetBedrock}}
	vault := opener{"provider/prv_b": doc}

	tbl, err := route.Load(context.Background(), src, vault)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tbl.Resolve("anthropic", "bedrock/x"); err == nil {
		t.Fatal("without cloud identity support the provider must be unavailable")
	}
	var cache cloudauth.Cache
	tbl, err = route.Load(context.Background(), src, vault, route.WithCloudAuth(&cache, cloudauth.Options{HTTP: c.Client}))
	if err != nil {
		t.Fatal(err)
	}
	up, model, err := tbl.Resolve("anthropic", "bedrock/anthropic.claude-x-v1:0")
	if err != nil {
		t.Fatal(err)
	}
	if up.Key.Reveal() != route.CloudPlaceholder || strings.Contains(up.Key.Reveal(), c.AWSKey.SecretAccessKey) {
		t.Fatal("the upstream's key must be the placeholder, never the cloud credential")
	}
	req, _ := http.NewRequest("POST", srv.URL+"/v1/messages", strings.NewReader(`{"model":"`+model+`","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("X-Api-Key", up.Key.Reveal())
	req.Header.Set("Anthropic-Version", "2023-06-01")
	resp, err := up.RoundTrip(req, c.Client.Transport)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), fakecloud.ReplyText) {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
}
