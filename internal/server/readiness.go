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
	checks := []ready.Check{
		{Name: "store", Probe: st.Ping},
		{Name: "kek", Probe: v.ProbeKEK, Every: kekProbeInterval},
	}
	if r := n.lim.redis; r != nil {
		// With outage leases a node keeps serving while Redis is down, so
		// Redis only degrades it: taking every node out of the load
		// balancer because their shared Redis stopped would turn a Redis
		// outage into a keygate outage.
		checks = append(checks, ready.Check{Name: "limits", Degrades: n.cfg.Limits.OutageLease > 0, Probe: func(ctx context.Context) error {
			if err := r.Ping(ctx).Err(); err != nil {
				return fmt.Errorf("redis for limits (limits.redis): %w", err)
			}
			return nil
		}})
	}
	checks = append(checks, ready.Check{Name: "audit", Probe: func(context.Context) error {
		if !n.trail.w.Healthy() {
			return errors.New("no audit sink has stored every event at the last flush")
		}
		return nil
	}})
	return ready.New(ready.Options{Log: n.log}, checks...)
}
