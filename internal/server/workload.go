package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/workload"
)

// newWorkloadTrust builds the trust policies of workloads.trust, which let
// workloads exchange OIDC identity tokens at /oauth/token; nil when none
// is configured. Exchanged tokens are remembered in the store, so each is
// exchanged once across every node.
func newWorkloadTrust(cfg config.Config, st *store.Store, log *slog.Logger) (gateway.WorkloadTrust, error) {
	w := cfg.Workloads
	if len(w.Trust) == 0 {
		return nil, nil
	}
	ps := make([]workload.Policy, len(w.Trust))
	for i, p := range w.Trust {
		claims := make(map[string][]string, len(p.Claims))
		for k, v := range p.Claims {
			claims[k] = v
		}
		ps[i] = workload.Policy{Name: p.Name, Issuer: p.Issuer, Audience: p.Audience, Subject: p.Subject, Claims: claims, KeyID: p.Key, Scope: p.Scope}
	}
	issuers := make(map[string]workload.IssuerOptions, len(w.Issuers))
	for u, is := range w.Issuers {
		issuers[u] = workload.IssuerOptions{JWKSURL: is.JWKSURL, CAFile: is.CAFile}
	}
	v, err := workload.New(workload.Options{
		Policies: ps, Issuers: issuers, Replay: replayStore{st}, ValidateScope: gateway.ValidateScope,
		Log: log.With("component", "workloads"),
	})
	if err != nil {
		return nil, fmt.Errorf("config: workloads: %w", err)
	}
	return workloadTrust{v}, nil
}

// workloadTrust adapts a workload.Verifier to the gateway.
type workloadTrust struct{ v *workload.Verifier }

// VerifyWorkload implements gateway.WorkloadTrust.
func (t workloadTrust) VerifyWorkload(ctx context.Context, raw string, now time.Time) (gateway.WorkloadIdentity, error) {
	id, err := t.v.Verify(ctx, raw, now)
	if rf := (*workload.Refusal)(nil); errors.As(err, &rf) {
		return gateway.WorkloadIdentity{}, &gateway.WorkloadRefusal{Code: rf.Code, Reason: rf.Reason, Issuer: rf.Issuer, Subject: rf.Subject}
	}
	if err != nil {
		return gateway.WorkloadIdentity{}, err
	}
	return gateway.WorkloadIdentity{Issuer: id.Issuer, Subject: id.Subject, Policy: id.Policy, KeyID: id.KeyID, Scope: id.Scope, Expiry: id.Expiry}, nil
}

// replayStore keeps the exchanged tokens in the store.
type replayStore struct{ st *store.Store }

// Claim implements workload.ReplayGuard.
func (r replayStore) Claim(ctx context.Context, id string, until, now time.Time) (bool, error) {
	return r.st.ClaimWorkloadToken(ctx, id, until, now)
}
