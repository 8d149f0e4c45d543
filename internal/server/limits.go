package server

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/limit"
	"github.com/keygate/keygate/internal/limit/redisscripts"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/usage"
)

// limits is admission control as configured: this node's memory limiter,
// Redis when configured, group limits, prices and the usage recorder.
type limits struct {
	gateway gateway.LimitOptions
	groups  *groupCache
	usage   *usage.Recorder
	redis   *redis.Client
	// resilient decides through Redis and, while Redis is down, from this
	// node's leases and shares; run keeps its heartbeat and leases.
	resilient *limit.Resilient
	down      bool // Redis did not answer the last sync
	log       *slog.Logger
}

// newLimits builds admission control from the plan. A Redis that cannot be
// reached yet is not an error: keygate starts, and refuses what needs it.
func newLimits(ctx context.Context, p *plan, st *store.Store, log *slog.Logger) (*limits, error) {
	cfg := p.cfg
	prices := p.prices
	l := &limits{groups: newGroupCache(st), log: log}
	if err := l.groups.reload(ctx); err != nil {
		return nil, fmt.Errorf("read key groups: %w", err)
	}
	loc := cfg.Limits.Location()
	l.usage = usage.NewRecorder(st, loc, log)
	local := limit.NewMemory()
	var shared gateway.Limiter = local
	if p.redis != nil {
		ro := *p.redis
		// A Redis that stopped answering must cost a request a second at
		// most, once: the limiter then decides alone until Redis is back.
		if ro.DialTimeout == 0 {
			ro.DialTimeout = time.Second
		}
		if ro.ReadTimeout == 0 {
			ro.ReadTimeout = time.Second
		}
		if ro.WriteTimeout == 0 {
			ro.WriteTimeout = time.Second
		}
		if ro.MaxRetries == 0 {
			ro.MaxRetries = 1
		}
		l.redis = redis.NewClient(&ro)
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := l.redis.Ping(pctx).Err()
		cancel()
		if err != nil {
			log.Warn("Redis for limits is not reachable yet; quotas and budgets are refused and rate limits use this node's share until it is",
				"addr", p.redis.Addr, "err", err)
		}
		lease := cfg.Limits.OutageLease
		if lease == 0 {
			lease = -1 // configured off
		}
		l.resilient = limit.NewResilient(limit.NewRedis(redisscripts.New(l.redis)), limit.NewMemory(), limit.ResilientOptions{Lease: lease})
		shared = l.resilient
	}
	l.gateway = gateway.LimitOptions{
		Shared: shared, Local: local,
		Prices:            prices,
		Location:          loc,
		DefaultMaxTokens:  cfg.Limits.DefaultMaxTokens,
		Usage:             l.usage,
		AuthFailures:      cfg.Limits.AuthFailures,
		AuthFailureWindow: cfg.Limits.AuthFailureWindow,
	}
	return l, nil
}

// wake receives when the limiter wants a sync at once (a quota seen for
// the first time); nil without Redis.
func (l *limits) wake() <-chan struct{} {
	if l.resilient == nil {
		return nil
	}
	return l.resilient.Wake()
}

// sync reaches Redis once for the limiter: heartbeat, end of an outage,
// leases kept. It logs when Redis stops and starts answering.
func (l *limits) sync(ctx context.Context) {
	if l.resilient == nil {
		return
	}
	err := l.resilient.Sync(ctx)
	if ctx.Err() != nil {
		return
	}
	switch down := err != nil; {
	case down && !l.down:
		l.log.Error("Redis for limits does not answer; deciding alone: quotas and budgets from this node's leases, rate and concurrency limits from its share", "nodes", l.resilient.Nodes(), "err", err)
	case !down && l.down:
		l.log.Info("Redis for limits answers again; what was spent and settled meanwhile is reconciled")
	}
	l.down = err != nil
}

// groupsChanged reloads the group limits after a change through this node.
func (l *limits) groupsChanged(ctx context.Context) {
	if err := l.groups.reload(ctx); err != nil {
		l.log.Error("could not reload key groups after a change; the refresh timer will retry", "err", err)
	}
}

func (l *limits) close() {
	if l != nil && l.resilient != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		l.resilient.Release(ctx) // a node that stops strands no capacity in leases
		cancel()
	}
	if l != nil && l.redis != nil {
		_ = l.redis.Close()
	}
}
