// Package workloadtest runs a real OpenID provider in a test, to sign the
// workload identity tokens keygate exchanges: github.com/oauth2-proxy/mockoidc
// serving discovery, its key set and the authorization-code flow over HTTP
// on loopback, with tokens shaped like GitHub Actions' and like Kubernetes
// service-account tokens. Only tests import it.
package workloadtest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"
)

// Provider is a real OpenID provider (github.com/oauth2-proxy/mockoidc)
// serving discovery, its key set and the authorization-code flow over
// HTTP on loopback, with a count of the requests made to each path.
type Provider struct {
	*mockoidc.MockOIDC
	mu   sync.Mutex
	hits map[string]int
}

// Start runs a provider whose ID tokens carry audience aud, signed with an
// RSA key made for this test, until the test ends.
func Start(t testing.TB, aud string) *Provider {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mockoidc.NewServer(key)
	if err != nil {
		t.Fatal(err)
	}
	m.ClientID = aud
	p := &Provider{MockOIDC: m, hits: map[string]int{}}
	if err := m.AddMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p.mu.Lock()
			p.hits[r.URL.Path]++
			p.mu.Unlock()
			next.ServeHTTP(w, r)
		})
	}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return p
}

// Fetches counts the requests made for the provider's discovery document
// and key set.
func (p *Provider) Fetches() (discovery, jwks int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hits[mockoidc.DiscoveryEndpoint], p.hits[mockoidc.JWKSEndpoint]
}

// workloadUser is a workload as the provider sees it: a subject and the
// claims its platform puts in its tokens.
type workloadUser struct {
	sub   string
	extra map[string]any
}

// ID is the workload's subject.
func (u *workloadUser) ID() string { return u.sub }

// Userinfo answers the provider's userinfo endpoint.
func (u *workloadUser) Userinfo([]string) ([]byte, error) {
	return json.Marshal(map[string]string{"sub": u.sub})
}

// Claims are the ID token's claims: the provider's and the workload's.
func (u *workloadUser) Claims(_ []string, base *mockoidc.IDTokenClaims) (jwt.Claims, error) {
	return &workloadClaims{IDTokenClaims: base, extra: u.extra}, nil
}

// workloadClaims are the provider's registered claims and the workload's
// own, in one JSON object.
type workloadClaims struct {
	*mockoidc.IDTokenClaims
	extra map[string]any
}

// MarshalJSON writes both sets of claims as one object.
func (c *workloadClaims) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(c.IDTokenClaims)
	if err != nil {
		return nil, err
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for k, v := range c.extra {
		m[k] = v
	}
	return json.Marshal(m)
}

// Mint has the provider issue an ID token for a workload with subject sub
// and claims extra, through its authorization endpoint and its token
// endpoint, as any relying party would.
func (p *Provider) Mint(t testing.TB, sub string, extra map[string]any) string {
	t.Helper()
	p.QueueUser(&workloadUser{sub: sub, extra: extra})
	const redirect = "http://127.0.0.1/callback"
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	q := url.Values{"scope": {"openid"}, "state": {"s"}, "client_id": {p.ClientID}, "response_type": {"code"}, "redirect_uri": {redirect}}
	resp, err := noFollow.Get(p.AuthorizationEndpoint() + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("authorize answered %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, err = http.PostForm(p.TokenEndpoint(), url.Values{
		"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {redirect},
		"client_id": {p.ClientID}, "client_secret": {p.ClientSecret},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr struct {
		IDToken string `json:"id_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || tr.IDToken == "" {
		t.Fatalf("token endpoint answered %d without an id_token (%v)", resp.StatusCode, err)
	}
	return tr.IDToken
}

// Rotate makes the provider sign with a new key, which its key set then
// publishes instead of the old one. No request may be in flight.
func (p *Provider) Rotate(t testing.TB) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := mockoidc.NewKeypair(key)
	if err != nil {
		t.Fatal(err)
	}
	p.Keypair = kp
}

// GitHubClaims are the subject and claims of a GitHub Actions job's ID
// token, for repository repo (owner/name) running workflow on ref, started
// by event (push, pull_request...).
func GitHubClaims(repo, ref, workflow, event string) (string, map[string]any) {
	owner, _, _ := strings.Cut(repo, "/")
	sub := "repo:" + repo + ":ref:" + ref
	if event == "pull_request" {
		sub = "repo:" + repo + ":pull_request"
	}
	return sub, map[string]any{
		"repository": repo, "repository_owner": owner, "repository_id": "123456789", "ref": ref, "ref_type": "branch",
		"workflow": workflow, "job_workflow_ref": repo + "/.github/workflows/" + workflow + ".yml@" + ref,
		"event_name": event, "actor": "octocat", "run_id": "987654321", "run_attempt": "1", "runner_environment": "github-hosted",
	}
}

// KubernetesClaims are the subject and claims of a projected
// service-account token of a pod in namespace ns running as service
// account sa.
func KubernetesClaims(ns, sa string) (string, map[string]any) {
	return "system:serviceaccount:" + ns + ":" + sa, map[string]any{
		"kubernetes.io": map[string]any{
			"namespace":      ns,
			"node":           map[string]any{"name": "node-1", "uid": "6f0d2a8e-0000-4000-8000-000000000001"},
			"pod":            map[string]any{"name": sa + "-7d9f8c6b5-x2x4z", "uid": "6f0d2a8e-0000-4000-8000-000000000002"},
			"serviceaccount": map[string]any{"name": sa, "uid": "6f0d2a8e-0000-4000-8000-000000000003"},
		},
	}
}
