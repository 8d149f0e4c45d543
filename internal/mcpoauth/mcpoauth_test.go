package mcpoauth

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/keygate/keygate/internal/egress"
)

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// TestDiscoverFallbacks: a server whose 401 names no metadata is found
// at the well-known URL for its path; an authorization server that
// publishes only OpenID Connect discovery is read there; one without
// PKCE S256 is refused.
func TestDiscoverFallbacks(t *testing.T) {
	var base string
	pkce := []string{"S256"}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /tools/mcp", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "unauthorized", http.StatusUnauthorized) // no WWW-Authenticate
	})
	mux.HandleFunc("GET /.well-known/oauth-protected-resource/tools/mcp", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"resource": base + "/tools/mcp", "authorization_servers": []string{base + "/idp"}, "scopes_supported": []string{"tools"}})
	})
	mux.HandleFunc("GET /.well-known/openid-configuration/idp", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"issuer": base + "/idp", "authorization_endpoint": base + "/idp/auth", "token_endpoint": base + "/idp/token",
			"registration_endpoint": base + "/idp/register", "code_challenge_methods_supported": pkce,
			"token_endpoint_auth_methods_supported": []string{"client_secret_post"}})
	})
	mux.HandleFunc("POST /idp/register", func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		_ = json.NewDecoder(r.Body).Decode(&m)
		if m["token_endpoint_auth_method"] != "client_secret_post" {
			http.Error(w, "want client_secret_post", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{"client_id": "c1", "client_secret": "s1", "redirect_uris": m["redirect_uris"], "token_endpoint_auth_method": "client_secret_post"})
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	base = srv.URL
	hc := HTTPClient(egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, "", 10*time.Second)
	ctx := context.Background()

	md, err := Discover(ctx, hc, base+"/tools/mcp")
	if err != nil {
		t.Fatal(err)
	}
	if md.Resource != base+"/tools/mcp" || md.TokenURL != base+"/idp/token" || md.RegistrationURL != base+"/idp/register" || strings.Join(md.Scopes, " ") != "tools" {
		t.Fatalf("discovered %+v", md)
	}
	c, err := Register(ctx, hc, md, "https://keygate.example/api/v1/auth/mcp/callback", "test")
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != "c1" || c.AuthStyle != oauth2.AuthStyleInParams {
		t.Fatalf("registered %+v", c)
	}
	u, err := url.Parse(AuthURL(md, c, "st", oauth2.GenerateVerifier()))
	if err != nil {
		t.Fatal(err)
	}
	if q := u.Query(); q.Get("resource") != md.Resource || q.Get("code_challenge_method") != "S256" || q.Get("state") != "st" || q.Get("redirect_uri") != c.RedirectURL {
		t.Fatalf("authorization URL %s", u)
	}

	pkce = []string{"plain"}
	if _, err := Discover(ctx, hc, base+"/tools/mcp"); err == nil || !strings.Contains(err.Error(), "PKCE") {
		t.Fatalf("an authorization server without S256: %v", err)
	}

	// The zero egress policy reaches no loopback address.
	if _, err := Discover(ctx, HTTPClient(egress.Policy{}, "", 10*time.Second), base+"/tools/mcp"); err == nil || !egress.IsBlocked(err) && !strings.Contains(err.Error(), "egress") {
		t.Fatalf("discovery past the egress guard: %v", err)
	}
}
