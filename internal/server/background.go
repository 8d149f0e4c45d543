package server

import (
	"context"
	"time"

	"github.com/keygate/keygate/internal/vault"
)

// Intervals of the background tasks that configuration does not set.
const (
	flushEvery      = 5 * time.Second // last-used times, usage rows, the audit lag gauge
	detectorTick    = time.Second     // the anomaly detectors' clock
	historiesEvery  = time.Minute     // risk histories: read once per key per node, so rarely worth rewriting
	usageFlushEvery = time.Second     // usage rows: what a kill -9 may lose of them
	// responseOwnersKeptFor is how long keygate remembers who created a
	// response: OpenAI keeps responses 30 days; a day's margin.
	responseOwnersKeptFor = 31 * 24 * time.Hour
)

// taskTable is everything a node does in the background while it serves,
// one row per task. The runner starts them all in Serve and stops them in
// Shutdown, after the listeners have drained; the final ones run once
// more then, so what the last requests left is written.
func (n *Node) taskTable() []task {
	cfg := n.cfg
	return []task{
		// Whatever any node changes (the revocation log, providers and
		// services, key groups, signing keys, KEKs) is reloaded here as soon
		// as its generation moves: within changePoll, at once on PostgreSQL;
		// and every provider_refresh whatever the generations say.
		{name: "changes", every: changePoll, wake: n.chg.wake, run: n.chg.poll},
		// Revocations, suspensions and changes to keys, on a task of their own so that no
		// stalled reload above (a slow KMS) delays them: every node refuses a revoked key
		// within a second.
		{name: "revocations", every: changePoll, wake: n.revs.wake, run: n.revs.poll},
		{name: "change-notifications", every: time.Second, run: n.chg.listen},
		// Routing (deployments, aliases, services) changed through any node is served here within a second.
		{name: "routing", every: routingPoll, run: n.routing.poll},
		// Provider keys and secrets kept in a cloud secret manager or Vault are re-read when due (one node per read).
		{name: "source-refs", every: cfg.Sources.Poll, run: n.src.refreshDue},
		// Provider keys keygate mints are rotated on their schedule, and at once when found leaked; replaced ones
		// are deleted upstream after their overlap (one node per provider, holding its lease in the shared database).
		{name: "minted-keys", every: cfg.Sources.Poll, wake: n.mint.wake(), run: n.mint.run},
		// Redis for limits: this node's heartbeat (how many nodes share a rate limit while Redis is
		// down), the end of an outage, and its leases of the quotas and budgets in use.
		{name: "limits", every: time.Second, wake: n.lim.wake(), run: func(ctx context.Context) {
			if r := n.lim.resilient; r != nil {
				n.lim.sync(ctx)
				n.met.SharedLimits(!r.Down(), r.Nodes(), r.Held())
			}
		}},
		// The detectors' windows move on, so rates and spends are judged even when no request comes.
		{name: "detectors", every: detectorTick, run: func(context.Context) { n.det.engine.Tick(time.Now()) }},
		// How far the audit trail is behind, on /metrics.
		{name: "audit-lag", every: flushEvery, run: func(context.Context) { n.met.AuditLag(n.trail.w.Lag()) }},
		// Keys' last-use times, gathered in memory on the request path.
		{name: "last-used", every: flushEvery, run: n.used.Flush, final: true},
		// Per-key, per-day usage and spend, gathered in memory on the request path: every
		// second, so a kill -9 loses at most a second of a node's usage rows (each call's
		// cost is also on its audit event, written every audit.flush_interval).
		{name: "usage", every: usageFlushEvery, run: n.lim.usage.Flush, final: true},
		// What each key's requests taught the risk rules (networks, places, hours).
		{name: "risk-histories", every: historiesEvery, run: n.gw.FlushHistories, final: true},
		// Keys due for automatic rotation are rotated and delivered; keys about to expire are warned of.
		{name: "key-rotations", every: cfg.Vault.JanitorInterval, run: n.adm.RunRotations},
		// Expired revocations, one-time-password counts and secret versions are destroyed.
		{name: "janitor", every: cfg.Vault.JanitorInterval, run: n.janitor},
	}
}

func (n *Node) refreshProviders(ctx context.Context) {
	if err := n.gw.Reload(ctx); err != nil && ctx.Err() == nil {
		n.log.Warn("provider table refresh failed; keeping the previous one", "err", err)
	}
}

func (n *Node) refreshMCP(ctx context.Context) {
	if err := n.mcp.Reload(ctx); err != nil && ctx.Err() == nil {
		n.log.Warn("MCP server refresh failed; keeping the previous ones", "err", err)
	}
}

func (n *Node) refreshGroups(ctx context.Context) {
	if err := n.lim.groups.reload(ctx); err != nil && ctx.Err() == nil {
		n.log.Warn("key group refresh failed; keeping the previous limits", "err", err)
	}
}

// rotateSigningKeys makes a successor signing key when the current one is
// about to stop signing, and otherwise reloads the key set.
func (n *Node) rotateSigningKeys(ctx context.Context) {
	if err := n.tok.ring.Rotate(ctx, time.Now()); err != nil && ctx.Err() == nil {
		n.log.Error("token signing key rotation or refresh failed; will retry", "err", err)
	}
}

func (n *Node) followKEK(ctx context.Context) {
	if err := n.core.rot.Sync(ctx); err != nil && ctx.Err() == nil {
		n.log.Error("vault: could not follow the key-encryption key rotation; keygate seals no new secret until it can open the vault's current KEK", "err", err)
	}
}

func (n *Node) janitor(ctx context.Context) {
	now := time.Now()
	if _, err := n.core.st.PruneRevocations(ctx, now); err != nil && ctx.Err() == nil {
		n.log.Warn("could not prune the revocation log; will retry", "err", err)
	}
	if _, err := n.stepUp.Prune(ctx, now); err != nil && ctx.Err() == nil {
		n.log.Warn("could not prune the one-time-password counts; will retry", "err", err)
	}
	if _, err := n.core.st.PruneSessions(ctx, now.Add(-sessionsKeptFor)); err != nil && ctx.Err() == nil {
		n.log.Warn("could not prune ended sessions; will retry", "err", err)
	}
	if _, err := n.core.st.PruneResponseOwners(ctx, now.Add(-responseOwnersKeptFor)); err != nil && ctx.Err() == nil {
		n.log.Warn("could not prune the owners of responses; will retry", "err", err)
	}
	destroyed, purged, err := vault.Sweep(ctx, n.core.st, n.core.vault, now)
	if err != nil && ctx.Err() == nil {
		n.log.Error("vault: could not destroy expired secret versions; will retry", "err", err)
	}
	if destroyed+purged > 0 {
		n.log.Info("vault: destroyed expired secrets", "superseded_versions", destroyed, "deleted_secrets", purged)
	}
}
