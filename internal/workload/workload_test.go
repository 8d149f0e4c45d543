package workload_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keygate/keygate/internal/workload"
	"github.com/keygate/keygate/internal/workload/workloadtest"
)

const audience = "https://keygate.example"

// fixture is a GitHub-Actions-like provider and a Kubernetes-like one,
// and a Verifier trusting both by policy.
type fixture struct {
	actions, cluster *workloadtest.Provider
	v                *workload.Verifier
}

func policies(actions, cluster string) []workload.Policy {
	return []workload.Policy{
		{
			Name: "deploy", Issuer: actions, Audience: audience,
			Subject: "repo:acme/app:ref:refs/heads/main",
			Claims:  map[string][]string{"workflow": {"deploy", "release"}, "repository_owner": {"acme"}},
			KeyID:   "key_ci", Scope: "model:gpt-4o* secret:ci/${repository}",
		},
		{
			Name: "acme-any-branch", Issuer: actions, Audience: audience,
			Subject: "repo:acme/*:ref:refs/heads/*",
			KeyID:   "key_ci_narrow", Scope: "model:gpt-4o-mini rpm:10",
		},
		{
			Name: "payments-api", Issuer: cluster, Audience: "keygate",
			Claims: map[string][]string{"kubernetes.io/namespace": {"payments"}, "kubernetes.io/serviceaccount/name": {"api"}},
			KeyID:  "key_payments", Scope: "secret:payments/db secret:k8s/${kubernetes.io/namespace}/*",
		},
	}
}

func newFixture(t *testing.T, o workload.Options) *fixture {
	t.Helper()
	f := &fixture{actions: workloadtest.Start(t, audience), cluster: workloadtest.Start(t, "keygate")}
	o.Policies = policies(f.actions.Issuer(), f.cluster.Issuer())
	v, err := workload.New(o)
	if err != nil {
		t.Fatal(err)
	}
	f.v = v
	return f
}

func refusal(t *testing.T, err error, code string) {
	t.Helper()
	var rf *workload.Refusal
	if !errors.As(err, &rf) || rf.Code != code {
		t.Fatalf("got %v, want a refusal %s", err, code)
	}
	if rf.Reason == "" || rf.Error() != rf.Reason {
		t.Fatalf("a refusal without a reason: %+v", rf)
	}
}

// TestGitHubActionsToken: a job's token from the trusted repository,
// branch and workflow gets the first matching policy's key and scope, its
// claims filled in; a pull request or another repository does not.
func TestGitHubActionsToken(t *testing.T) {
	f := newFixture(t, workload.Options{})
	ctx, now := context.Background(), time.Now()

	sub, claims := workloadtest.GitHubClaims("acme/app", "refs/heads/main", "deploy", "push")
	id, err := f.v.Verify(ctx, f.actions.Mint(t, sub, claims), now)
	if err != nil {
		t.Fatal(err)
	}
	if id.Policy != "deploy" || id.KeyID != "key_ci" || id.Scope != "model:gpt-4o* secret:ci/acme/app" ||
		id.Subject != sub || id.Issuer != f.actions.Issuer() || id.Expiry.Before(now) {
		t.Fatalf("identity %+v", id)
	}

	// Another workflow of the same branch falls to the next policy.
	sub, claims = workloadtest.GitHubClaims("acme/app", "refs/heads/main", "lint", "push")
	if id, err = f.v.Verify(ctx, f.actions.Mint(t, sub, claims), now); err != nil || id.Policy != "acme-any-branch" || id.Scope != "model:gpt-4o-mini rpm:10" {
		t.Fatalf("second policy: %+v, %v", id, err)
	}

	// A pull request (a fork's code) and another owner's repository match
	// no policy.
	for _, c := range [][4]string{{"acme/app", "refs/heads/main", "deploy", "pull_request"}, {"evil/app", "refs/heads/main", "deploy", "push"}} {
		sub, claims := workloadtest.GitHubClaims(c[0], c[1], c[2], c[3])
		_, err := f.v.Verify(ctx, f.actions.Mint(t, sub, claims), now)
		refusal(t, err, "no_policy")
	}
	// A claim that would change the scope's shape is never filled in: a
	// repository name cannot add a scope item. The policy that would take
	// it does not match; the next one, which does not use it, does.
	sub, claims = workloadtest.GitHubClaims("acme/app", "refs/heads/main", "deploy", "push")
	claims["repository"] = "acme/app secret:*"
	if id, err = f.v.Verify(ctx, f.actions.Mint(t, sub, claims), now); err != nil || id.Policy != "acme-any-branch" || strings.Contains(id.Scope, "secret") {
		t.Fatalf("an unsafe claim: %+v, %v", id, err)
	}
}

// TestKubernetesServiceAccountToken: a projected service-account token is
// matched on its nested kubernetes.io claims.
func TestKubernetesServiceAccountToken(t *testing.T) {
	f := newFixture(t, workload.Options{})
	ctx, now := context.Background(), time.Now()
	sub, claims := workloadtest.KubernetesClaims("payments", "api")
	id, err := f.v.Verify(ctx, f.cluster.Mint(t, sub, claims), now)
	if err != nil {
		t.Fatal(err)
	}
	if id.Policy != "payments-api" || id.KeyID != "key_payments" || id.Scope != "secret:payments/db secret:k8s/payments/*" {
		t.Fatalf("identity %+v", id)
	}
	for _, c := range [][2]string{{"payments", "worker"}, {"search", "api"}} {
		sub, claims := workloadtest.KubernetesClaims(c[0], c[1])
		_, err := f.v.Verify(ctx, f.cluster.Mint(t, sub, claims), now)
		refusal(t, err, "no_policy")
	}
}

// TestBadTokensAreRefused: each way a token can be wrong is refused with
// its own code, and what needs no key is refused without reading any.
func TestBadTokensAreRefused(t *testing.T) {
	f := newFixture(t, workload.Options{})
	ctx, now := context.Background(), time.Now()
	sub, claims := workloadtest.GitHubClaims("acme/app", "refs/heads/main", "deploy", "push")
	good := f.actions.Mint(t, sub, claims)

	_, err := f.v.Verify(ctx, good, now.Add(2*time.Hour))
	refusal(t, err, "expired")
	_, err = f.v.Verify(ctx, good, now.Add(-time.Hour))
	refusal(t, err, "not_yet_valid")

	// The same provider's token for another audience.
	other, err := workload.New(workload.Options{Policies: []workload.Policy{{
		Name: "p", Issuer: f.actions.Issuer(), Audience: "https://someone-else.example", Subject: "repo:acme/*", KeyID: "key_x",
	}}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = other.Verify(ctx, good, now)
	refusal(t, err, "wrong_audience")

	// A token from an issuer no policy names: nothing is fetched from it.
	stranger := workloadtest.Start(t, audience)
	_, err = f.v.Verify(ctx, stranger.Mint(t, sub, claims), now)
	refusal(t, err, "unknown_issuer")
	if d, j := stranger.Fetches(); d+j != 0 {
		t.Fatalf("keygate read an untrusted issuer: %d discovery, %d key set requests", d, j)
	}

	// Forged tokens: alg none, HMAC keyed with the public key, a key the
	// issuer does not publish (under its own kid and under another).
	payload := map[string]any{"iss": f.actions.Issuer(), "aud": []string{audience}, "sub": sub, "exp": now.Add(time.Hour).Unix(),
		"iat": now.Unix(), "workflow": "deploy", "repository": "acme/app", "repository_owner": "acme"}
	_, err = f.v.Verify(ctx, unsigned(t, payload), now)
	refusal(t, err, "unsupported_alg")
	_, err = f.v.Verify(ctx, sign(t, jose.HS256, []byte("the issuer's public key, as HMAC secret"), "", payload), now)
	refusal(t, err, "unsupported_alg")
	stray, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := f.actions.Keypair.KeyID()
	_, err = f.v.Verify(ctx, sign(t, jose.RS256, stray, kid, payload), now)
	refusal(t, err, "bad_signature")
	_, err = f.v.Verify(ctx, sign(t, jose.RS256, stray, "not-published", payload), now)
	refusal(t, err, "bad_signature")

	// A valid token with its payload swapped.
	parts := strings.Split(good, ".")
	evil, _ := json.Marshal(map[string]any{"iss": f.actions.Issuer(), "aud": audience, "sub": "repo:acme/app:ref:refs/heads/main", "exp": now.Add(time.Hour).Unix(), "workflow": "deploy", "repository": "acme/app", "repository_owner": "acme"})
	_, err = f.v.Verify(ctx, parts[0]+"."+base64.RawURLEncoding.EncodeToString(evil)+"."+parts[2], now)
	refusal(t, err, "bad_signature")

	for _, junk := range []string{"", "a.b", "a.b.c", strings.Repeat("x", 20000), parts[0] + "." + parts[1] + "."} {
		_, err := f.v.Verify(ctx, junk, now)
		refusal(t, err, "malformed")
	}

	// The good token, untouched by all this, still passes once.
	if _, err := f.v.Verify(ctx, good, now); err != nil {
		t.Fatalf("the good token: %v", err)
	}
}

// TestReplayedTokenIsRefused: a token with a jti is exchanged once.
func TestReplayedTokenIsRefused(t *testing.T) {
	guard := workload.NewMemory()
	f := newFixture(t, workload.Options{Replay: guard})
	ctx, now := context.Background(), time.Now()
	sub, claims := workloadtest.KubernetesClaims("payments", "api")
	tok := f.cluster.Mint(t, sub, claims)
	if _, err := f.v.Verify(ctx, tok, now); err != nil {
		t.Fatal(err)
	}
	_, err := f.v.Verify(ctx, tok, now.Add(time.Second))
	refusal(t, err, "replayed")
	// A fresh token of the same workload passes.
	if _, err := f.v.Verify(ctx, f.cluster.Mint(t, sub, claims), now); err != nil {
		t.Fatal(err)
	}
}

// TestKeySetCachedAndRotated: the issuer is discovered once and its keys
// read once; tokens under a key it rotated to are accepted after one more
// read; a flood of tokens naming unknown keys reads the key set at most
// once per refresh interval.
func TestKeySetCachedAndRotated(t *testing.T) {
	f := newFixture(t, workload.Options{RefreshInterval: time.Millisecond})
	ctx := context.Background()
	sub, claims := workloadtest.GitHubClaims("acme/app", "refs/heads/main", "deploy", "push")
	for range 3 {
		if _, err := f.v.Verify(ctx, f.actions.Mint(t, sub, claims), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if d, j := f.actions.Fetches(); d != 1 || j != 1 {
		t.Fatalf("three tokens read discovery %d and the key set %d times, want 1 and 1", d, j)
	}
	old := f.actions.Mint(t, sub, claims)
	f.actions.Rotate(t)
	time.Sleep(5 * time.Millisecond) // past the refresh interval
	if _, err := f.v.Verify(ctx, f.actions.Mint(t, sub, claims), time.Now()); err != nil {
		t.Fatalf("a token signed with the rotated key: %v", err)
	}
	if _, j := f.actions.Fetches(); j != 2 {
		t.Fatalf("rotation read the key set %d times in all, want 2", j)
	}
	// The retired key no longer verifies once the set stopped publishing it.
	time.Sleep(5 * time.Millisecond)
	_, err := f.v.Verify(ctx, old, time.Now())
	refusal(t, err, "bad_signature")

	slow := newFixture(t, workload.Options{RefreshInterval: time.Hour})
	if _, err := slow.v.Verify(ctx, slow.actions.Mint(t, sub, claims), time.Now()); err != nil {
		t.Fatal(err)
	}
	stray, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	payload := map[string]any{"iss": slow.actions.Issuer(), "aud": audience, "sub": sub, "exp": time.Now().Add(time.Hour).Unix()}
	for i := range 20 {
		_, err := slow.v.Verify(ctx, sign(t, jose.RS256, stray, "kid-"+string(rune('a'+i)), payload), time.Now())
		refusal(t, err, "bad_signature")
	}
	if _, j := slow.actions.Fetches(); j != 1 {
		t.Fatalf("20 forged tokens read the key set %d times in all, want 1", j)
	}
}

// TestUnreachableIssuerIsNotARefusal: an issuer that cannot be reached
// makes Verify say so (try again), not refuse the token.
func TestUnreachableIssuerIsNotARefusal(t *testing.T) {
	f := newFixture(t, workload.Options{})
	sub, claims := workloadtest.GitHubClaims("acme/app", "refs/heads/main", "deploy", "push")
	tok := f.actions.Mint(t, sub, claims)
	if err := f.actions.Shutdown(); err != nil {
		t.Fatal(err)
	}
	_, err := f.v.Verify(context.Background(), tok, time.Now())
	var rf *workload.Refusal
	if !errors.Is(err, workload.ErrUnavailable) || errors.As(err, &rf) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
}

// TestPoliciesCheckedAtStart: a scope template that is not in the scope
// grammar, or does not parse, stops New.
func TestPoliciesCheckedAtStart(t *testing.T) {
	p := workload.Policy{Name: "p", Issuer: "https://issuer.example", Audience: "a", Subject: "s", KeyID: "key_x"}
	check := func(s string) error {
		if strings.Contains(s, "bogus:") {
			return errors.New("bogus is no scope item")
		}
		return nil
	}
	for _, scope := range []string{"bogus:${sub}", "secret:${", "secret:${}"} {
		p.Scope = scope
		_, err := workload.New(workload.Options{Policies: []workload.Policy{p}, ValidateScope: check})
		var pe *workload.PolicyError
		if !errors.As(err, &pe) || pe.Index != 0 || pe.Field != "scope" {
			t.Errorf("scope %q: %v", scope, err)
		}
	}
}

// unsigned is a JWT with alg none.
func unsigned(t *testing.T, payload map[string]any) string {
	t.Helper()
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	b, _ := json.Marshal(payload)
	return h + "." + base64.RawURLEncoding.EncodeToString(b) + "."
}

// sign is a JWT signed with key under alg, naming kid.
func sign(t *testing.T, alg jose.SignatureAlgorithm, key any, kid string, payload map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(payload)
	jws, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}
