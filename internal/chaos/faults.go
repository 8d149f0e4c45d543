package chaos

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"time"

	"github.com/keygate/keygate/internal/secret"
)

// fault is one thing that goes wrong, held for a while, then healed.
type fault struct {
	name string
	// what it does, for the documentation and the report
	does   string
	inject func(ctx context.Context) error
	heal   func(ctx context.Context) error
}

// notFaulted lists what the suite cannot fault on this machine, and why.
func (c *cluster) notFaulted() []string {
	out := []string{
		"clock skew of one node: keygate is a Go program, which reads the clock through the kernel's vDSO, not libc, so libfaketime (LD_PRELOAD) cannot move it, and changing the machine's clock would move every node and the test's own timers with it; keygate has no setting that offsets its clock",
		"a real PostgreSQL restart: the machine's PostgreSQL is shared with other work, so the suite cuts every node's connections to its own database and ends their server processes (pg_terminate_backend) instead; the server itself keeps running",
	}
	if c.noDisk != nil {
		out = append(out, "an audit file on a full file system: the suite mounts a small tmpfs for node-3's audit file, which needs root: "+c.noDisk.Error())
	}
	return out
}

// faults is the series the suite runs, in order.
func (s *suite) faults() []fault {
	c := s.c
	n2, n3 := c.nodes[1], c.nodes[2]
	restart := func(n *node) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			if err := n.start(ctx); err != nil {
				return err
			}
			if err := n.waitReady(ctx, 30*time.Second); err != nil {
				return err
			}
			n.learnPrefix(c.probe)
			return nil
		}
	}
	provider := func(f providerFault) func(context.Context) error {
		return func(context.Context) error {
			c.ups[0].setFault(f) // openai-a
			c.ups[2].setFault(f) // anthropic-a
			return nil
		}
	}
	healProviders := func(context.Context) error {
		for _, u := range c.ups {
			u.setFault(providerOK)
		}
		return nil
	}
	all := []fault{
		{
			name: "kill -9 of node-2, restart",
			does: "SIGKILL to one node mid-traffic; HAProxy takes it out on failed /readyz checks; restarted after the hold",
			inject: func(context.Context) error {
				s.recordKill(n2)
				return n2.signal(sigkill, 10*time.Second)
			},
			heal: restart(n2),
		},
		{
			name: "SIGTERM of node-3, restart",
			does: "graceful stop: /readyz turns 503, in-flight calls finish; restarted after the hold",
			inject: func(context.Context) error {
				return n3.signal(sigterm, 30*time.Second)
			},
			heal: restart(n3),
		},
		{
			name: "Redis stopped, restarted",
			does: "the suite's own redis-server shut down (SIGTERM) and started again on the same port, its counters kept in its append-only file",
			inject: func(context.Context) error {
				c.redis.stop()
				return nil
			},
			heal: func(context.Context) error { return c.redis.start() },
		},
		{
			name: "PostgreSQL restart",
			does: "every node's connections to the database reset and refused, and the database's server processes ended (pg_terminate_backend), as a restart does to clients",
			inject: func(ctx context.Context) error {
				for _, n := range c.nodes {
					n.pgLink.Cut(linkRefused)
				}
				return c.db.terminateBackends(ctx)
			},
			heal: func(context.Context) error {
				for _, n := range c.nodes {
					n.pgLink.Heal()
				}
				return nil
			},
		},
		{
			name:   "provider hangs",
			does:   "openai-a and anthropic-a (first in every alias) accept calls and never answer",
			inject: provider(providerHang), heal: healProviders,
		},
		{
			name:   "provider answers 5xx",
			does:   "openai-a and anthropic-a answer 500 with their own error bodies",
			inject: provider(provider5xx), heal: healProviders,
		},
		{
			name:   "provider answers 429",
			does:   "openai-a and anthropic-a answer 429 with retry-after: 1",
			inject: provider(provider429), heal: healProviders,
		},
		{
			name: "audit webhook down",
			does: "the webhook audit sink's port refuses connections; the database sink keeps the trail",
			inject: func(context.Context) error {
				c.audit.off()
				return nil
			},
			heal: func(context.Context) error { return c.audit.on() },
		},
		{
			name:   "audit file system full",
			does:   "node-3's audit file sits on a tmpfs of its own, filled to the last byte (ENOSPC); the database sink keeps the trail, and the file must catch up once space is freed",
			inject: func(context.Context) error { return n3.disk.fill() },
			heal:   func(context.Context) error { return n3.disk.free() },
		},
		{
			name: "node-2 cut off from Redis",
			does: "node-2's link to Redis resets its connections and swallows new ones (a partition); the other nodes keep Redis",
			inject: func(context.Context) error {
				n2.redisLink.Cut(linkBlackholed)
				return nil
			},
			heal: func(context.Context) error {
				n2.redisLink.Heal()
				return nil
			},
		},
		{
			name: "slow KEK",
			does: "the Vault transit behind the hashivault:// KEK answers every call 10 s late; a secret is written during the hold, which needs the KEK",
			inject: func(ctx context.Context) error {
				c.transit.stall.Store(int64(10 * time.Second))
				go s.adminOp(ctx, "secret put during the slow KEK", func(ctx context.Context) error {
					ac, err := c.adminClient(0)
					if err != nil {
						return err
					}
					_, err = ac.PutSecret(ctx, "chaos/kek-probe", secret.New("chaos-kek-probe-"+rand.Text()))
					return err
				})
				return nil
			},
			heal: func(context.Context) error {
				c.transit.stall.Store(0)
				return nil
			},
		},
	}
	if n3.disk == nil { // it could not be mounted: notFaulted says why
		all = slices.DeleteFunc(all, func(f fault) bool { return f.name == "audit file system full" })
	}
	return all
}

// recordKill notes when a node's process was killed, for the audit loss
// a kill -9 may cause.
func (s *suite) recordKill(n *node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kills = append(s.kills, killEvent{node: n.name, prefix: n.processPrefix(), at: time.Now(), inFlight: s.load.inFlight()})
}

// killEvent is one kill -9.
type killEvent struct {
	node     string
	prefix   string
	at       time.Time
	inFlight int64 // calls in flight through the balancer at the kill
}

func (k killEvent) String() string {
	return fmt.Sprintf("%s at %s", k.node, k.at.Format("15:04:05.000"))
}
