package workload_test

import (
	"context"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/keygate/keygate/internal/workload"
	"github.com/keygate/keygate/internal/workload/workloadtest"
)

// acceptAll is a ReplayGuard that finds every token fresh, so one token
// can be verified over and over.
type acceptAll struct{}

func (acceptAll) Claim(context.Context, string, time.Time, time.Time) (bool, error) { return true, nil }

// BenchmarkVerify is the cost of one workload token exchange's check once
// the issuer's keys are cached: keygate's whole Verify (peek, go-oidc,
// policy match, scope template), beside go-oidc's verification alone.
func BenchmarkVerify(b *testing.B) {
	p := workloadtest.Start(b, audience)
	sub, claims := workloadtest.GitHubClaims("acme/app", "refs/heads/main", "deploy", "push")
	tok := p.Mint(b, sub, claims)
	ctx := context.Background()
	b.Run("keygate", func(b *testing.B) {
		v, err := workload.New(workload.Options{Policies: policies(p.Issuer(), "https://cluster.example"), Replay: acceptAll{}})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := v.Verify(ctx, tok, time.Now()); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(ctx, tok, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("go-oidc-alone", func(b *testing.B) {
		prov, err := oidc.NewProvider(ctx, p.Issuer())
		if err != nil {
			b.Fatal(err)
		}
		v := prov.Verifier(&oidc.Config{ClientID: audience})
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}
