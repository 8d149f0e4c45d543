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

// workloadOptions turns workloads.trust and workloads.issuers into the
// trust policies' options and checks them (each scope template in the
// gateway's scope grammar, each issuer's CA file), naming the field at
// fault; nil when no policy is configured. It reads the CA files and
// contacts no issuer.
func workloadOptions(cfg config.Config) (*workload.Options, error) {
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
	o := &workload.Options{Policies: ps, Issuers: issuers, ValidateScope: gateway.ValidateScope}
	if _, err := workload.New(*o); err != nil {
		var pe *workload.PolicyError
		if errors.As(err, &pe) && pe.Field == "ca_file" {
			return nil, fmt.Errorf("config: workloads.issuers[%q].ca_file: %w", ps[pe.Index].Issuer, pe.Err)
		}
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("config: workloads.trust[%d].%s: %w", pe.Index, pe.Field, pe.Err)
		}
		return nil, fmt.Errorf("config: workloads: %w", err)
	}
	return o, nil
}

// newWorkloadTrust builds the trust policies the plan checked, which let
// workloads exchange OIDC identity tokens at /oauth/token; nil when none
// is configured. Exchanged tokens are remembered in the store, so each is
// exchanged once across every node.
func newWorkloadTrust(o *workload.Options, st *store.Store, log *slog.Logger) (gateway.WorkloadTrust, error) {
	if o == nil {
		return nil, nil
	}
	opts := *o
	opts.Replay, opts.Log = replayStore{st}, log.With("component", "workloads")
	v, err := workload.New(opts)
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
