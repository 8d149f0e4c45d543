package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keygate/keygate/internal/ready"
)

// kekProbeInterval is how often readiness wraps and unwraps a test key with
// the KEK: a KMS is called twice per interval per node, not per probe.
const kekProbeInterval = 30 * time.Second

// newReadiness builds the readiness checks of GET /readyz: the store
// answers, the KEK wraps and unwraps, Redis answers when limits are kept
// there, and the audit trail's last flush stored every event somewhere.
func (n *Node) newReadiness() *ready.Checker {
	st, v := n.core.st, n.core.vault
	// The store, the KMS and Redis are shared by every node: once they have
	// answered, their failure only degrades a node, which serves what it
	// holds (keys and data keys it has read, leases of quotas and budgets)
	// and keeps audit events until a sink takes them. Failing every node's
	// readiness at once would turn the part's outage into keygate's (the
	// chaos suite saw a 30 s PostgreSQL outage and a stalled KMS take the
	// whole cluster out of its load balancer). What a node must not do
	// without is not degraded: limits without outage leases, and an audit
	// trail configured to fail closed.
	checks := []ready.Check{
		{Name: "store", Probe: st.Ping, Degrades: true},
		{Name: "kek", Probe: v.ProbeKEK, Every: kekProbeInterval, Degrades: true},
	}
	if r := n.lim.redis; r != nil {
		checks = append(checks, ready.Check{Name: "limits", Degrades: n.cfg.Limits.OutageLease > 0, Probe: func(ctx context.Context) error {
			if err := r.Ping(ctx).Err(); err != nil {
				return fmt.Errorf("redis for limits (limits.redis): %w", err)
			}
			return nil
		}})
	}
	checks = append(checks, ready.Check{Name: "audit", Degrades: !n.cfg.Audit.FailClosed, Probe: func(context.Context) error {
		if !n.trail.w.Healthy() {
			return errors.New("no audit sink has stored every event at the last flush")
		}
		return nil
	}})
	return ready.New(ready.Options{Log: n.log}, checks...)
}
