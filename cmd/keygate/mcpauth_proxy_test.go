package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestMCPMetadataBehindProxy: behind a TLS-terminating proxy, the OAuth
// issuer and the metadata URLs (RFC 8414, RFC 9728) keygate hands MCP
// clients name the public https origin: from public_url, or from the
// forwarded headers of a trusted proxy. A client's own X-Forwarded-Proto
// and X-Forwarded-Host, from an address that is no trusted proxy, change
// nothing.
func TestMCPMetadataBehindProxy(t *testing.T) {
	spoof := map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}
	type answer struct {
		Issuer, TokenEndpoint, RegistrationEndpoint, Resource, AuthorizationServer, ResourceMetadata string
	}
	ask := func(t *testing.T, gw string, headers map[string]string) answer {
		t.Helper()
		get := func(path string, v any) *http.Response {
			req, _ := http.NewRequest("GET", gw+path, nil)
			for k, h := range headers {
				req.Header.Set(k, h)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if v != nil {
				defer resp.Body.Close()
				if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
					t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
				}
			}
			return resp
		}
		var as struct {
			Issuer               string `json:"issuer"`
			TokenEndpoint        string `json:"token_endpoint"`
			RegistrationEndpoint string `json:"registration_endpoint"`
		}
		get("/.well-known/oauth-authorization-server", &as)
		var pr struct {
			Resource             string   `json:"resource"`
			AuthorizationServers []string `json:"authorization_servers"`
		}
		get("/.well-known/oauth-protected-resource/mcp", &pr)
		a := answer{Issuer: as.Issuer, TokenEndpoint: as.TokenEndpoint, RegistrationEndpoint: as.RegistrationEndpoint, Resource: pr.Resource}
		if len(pr.AuthorizationServers) == 1 {
			a.AuthorizationServer = pr.AuthorizationServers[0]
		}
		resp := get("/mcp", nil)
		resp.Body.Close()
		if m := strings.SplitN(resp.Header.Get("WWW-Authenticate"), `resource_metadata="`, 2); len(m) == 2 {
			a.ResourceMetadata, _, _ = strings.Cut(m[1], `"`)
		}
		return a
	}
	want := func(origin string) answer {
		return answer{Issuer: origin, TokenEndpoint: origin + "/oauth/token", RegistrationEndpoint: origin + "/oauth/register", Resource: origin + "/mcp",
			AuthorizationServer: origin, ResourceMetadata: origin + "/.well-known/oauth-protected-resource/mcp"}
	}

	t.Run("public_url", func(t *testing.T) {
		cfg := testConfig(t, t.TempDir())
		cfg.PublicURL = "https://External.example/"
		in := start(t, cfg, "")
		for _, h := range []map[string]string{nil, spoof} {
			if got := ask(t, in.addrs.Gateway, h); got != want("https://external.example") {
				t.Fatalf("with public_url, headers %v: %+v", h, got)
			}
		}
	})
	t.Run("untrusted client", func(t *testing.T) {
		cfg := testConfig(t, t.TempDir())
		cfg.TrustedProxies = []string{"192.0.2.0/24"}
		in := start(t, cfg, "")
		if got := ask(t, in.addrs.Gateway, spoof); got != want(in.addrs.Gateway) {
			t.Fatalf("a spoofed X-Forwarded-Proto from an untrusted address: %+v, want %+v", got, want(in.addrs.Gateway))
		}
	})
	t.Run("trusted proxy", func(t *testing.T) {
		cfg := testConfig(t, t.TempDir())
		cfg.TrustedProxies = []string{"127.0.0.1/32", "::1/128"}
		in := start(t, cfg, "")
		if got := ask(t, in.addrs.Gateway, map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "external.example"}); got != want("https://external.example") {
			t.Fatalf("behind a trusted proxy: %+v", got)
		}
		if got := ask(t, in.addrs.Gateway, nil); got != want(in.addrs.Gateway) {
			t.Fatalf("a trusted proxy that forwards nothing: %+v", got)
		}
	})
}
