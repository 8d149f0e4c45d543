package token_test

import (
	"testing"
	"time"

	"github.com/keygate/keygate/internal/token"
)

// BenchmarkVerify verifies a valid token with a warm keyring: the cost the
// gateway pays per request that carries an access token. A client presents
// the same token on every call, so after the first this is a cache hit.
func BenchmarkVerify(b *testing.B) {
	_, n := rotatedNode(b)
	benchVerify(b, n, n.auth)
}

// BenchmarkVerifyUncached is BenchmarkVerify without the verified-token
// cache: the full check, Ed25519 signature included, every time.
func BenchmarkVerifyUncached(b *testing.B) {
	_, n := rotatedNode(b)
	a, err := token.NewAuthority(n.ring, token.Options{Issuer: testIssuer, Audience: testAudience, CacheSize: -1})
	if err != nil {
		b.Fatal(err)
	}
	benchVerify(b, n, a)
}

func benchVerify(b *testing.B, n *node, a *token.Authority) {
	raw := n.issue(b, token.Claims{
		Subject:  "key_123",
		ClientID: "ci-agent",
		Scope:    token.Scope{Providers: []string{"openai"}, Models: []string{"gpt-4o*"}},
		FamilyID: "fam_0123456789012345678901",
	})
	c := ctx(b)
	now := t0.Add(time.Minute)
	if _, err := a.Verify(c, raw, now); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Verify(c, raw, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyParallel is BenchmarkVerify from all CPUs at once.
func BenchmarkVerifyParallel(b *testing.B) {
	_, n := rotatedNode(b)
	raw := n.issue(b, token.Claims{Subject: "key_123", ClientID: "ci-agent"})
	c := ctx(b)
	now := t0.Add(time.Minute)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := n.auth.Verify(c, raw, now); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkIssue signs an access token with a warm keyring.
func BenchmarkIssue(b *testing.B) {
	_, n := rotatedNode(b)
	c := ctx(b)
	claims := token.Claims{Subject: "key_123", ClientID: "ci-agent", IssuedAt: t0.Add(time.Minute)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := n.auth.Issue(c, claims); err != nil {
			b.Fatal(err)
		}
	}
}
