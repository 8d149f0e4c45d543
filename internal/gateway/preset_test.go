package gateway_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/keygate/keygate/internal/fakeprovider"
	"github.com/keygate/keygate/internal/provider"
	"github.com/keygate/keygate/internal/route"
)

// presetUpstream registers a fake of the named preset as a provider of the
// same name, at the fake's address with the preset's base path.
func presetUpstream(t *testing.T, name, key string) (*fakeprovider.Server, *route.Upstream) {
	t.Helper()
	p, ok := provider.LookupPreset(name)
	if !ok {
		t.Fatalf("no preset %q", name)
	}
	real := upstreamKey(t, name)
	fake := fakeprovider.NewPreset(name, fakeprovider.Options{APIKey: real})
	srv := serve(t, fake)
	t.Cleanup(fake.Close)
	base := srv.URL
	switch {
	case p.BaseURL != "":
		u, _ := url.Parse(p.BaseURL)
		base += u.Path
	case !p.Deployments:
		base += "/v1"
	}
	if key == "" {
		key = real
	}
	up := upstreamAt(name, p.Dialect, base, key)
	up.Preset = &p
	return fake, up
}

// TestPresetsThroughTheGateway: for every OpenAI-compatible preset, a chat
// request reaches the service on its own path with its own auth header,
// and a refused credential comes back as an OpenAI error the SDKs read,
// with the credential scrubbed.
func TestPresetsThroughTheGateway(t *testing.T) {
	for _, p := range provider.Presets() {
		if p.Dialect != "openai" || p.Name == "openai" || p.Name == "ollama" {
			continue
		}
		t.Run(p.Name, func(t *testing.T) {
			k := newKeys(t)
			fake, up := presetUpstream(t, p.Name, "")
			model := fake.Models()[0]
			g := newGateway(t, k.verifier(), nil, up)
			key := k.issue("app", nil)
			a := send(t, "POST", g.url+"/v1/chat/completions", chatFor(p.Name+"/"+model), "Authorization", "Bearer "+key)
			if a.status != 200 {
				t.Fatalf("status %d: %s", a.status, a.body)
			}
			var chat struct {
				Choices []struct{ Message struct{ Content string } }
			}
			if json.Unmarshal(a.body, &chat); len(chat.Choices) == 0 || chat.Choices[0].Message.Content != fake.ReplyText() {
				t.Fatalf("answer %s", a.body)
			}
			seen := fake.Requests()[0]
			if p.Deployments && (!strings.Contains(seen.Path, "/openai/deployments/"+model+"/chat/completions") || !strings.Contains(seen.RawQuery, "api-version=")) {
				t.Fatalf("Azure saw %s?%s", seen.Path, seen.RawQuery)
			}
			if seen.Header.Get("Authorization") == "Bearer "+key || seen.Header.Get("X-Api-Key") != "" {
				t.Fatal("the client's credential reached the service")
			}

			// A stale upstream credential: the service's own error shape
			// comes back as an OpenAI error, without the credential.
			wrong := "test-wrong-upstream-key-" + p.Name + "-not-real"
			_, bad := presetUpstream(t, p.Name, wrong)
			g2 := newGateway(t, k.verifier(), nil, bad)
			a = send(t, "POST", g2.url+"/v1/chat/completions", chatFor(p.Name+"/"+model), "Authorization", "Bearer "+key)
			if a.status < 400 || strings.Contains(string(a.body), wrong) {
				t.Fatalf("status %d: %s", a.status, a.body)
			}
			msg, _ := openAIError(t, a, a.status)
			if msg == "" {
				t.Fatalf("no message in %s", a.body)
			}
		})
	}
}

// TestPresetRefusesABadDeploymentName: Azure deployments go in the URL
// path; a model name that cannot be one is refused before anything goes
// upstream.
func TestPresetRefusesABadDeploymentName(t *testing.T) {
	k := newKeys(t)
	fake, up := presetUpstream(t, "azure-openai", "")
	g := newGateway(t, k.verifier(), nil, up)
	key := k.issue("app", nil)
	a := send(t, "POST", g.url+"/v1/chat/completions", chatFor("azure-openai/../../admin"), "Authorization", "Bearer "+key)
	if _, code := openAIError(t, a, 400); code != "invalid_model" || fake.RequestCount() != 0 {
		t.Fatalf("code %q, %d requests upstream", code, fake.RequestCount())
	}
}
