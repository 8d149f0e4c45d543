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
	log     *slog.Logger
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
		l.redis = redis.NewClient(p.redis)
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := l.redis.Ping(pctx).Err()
		cancel()
		if err != nil {
			log.Warn("Redis for limits is not reachable yet; quotas and budgets are refused and rate limits use this node's counters until it is",
				"addr", p.redis.Addr, "err", err)
		}
		shared = limit.NewRedis(redisscripts.New(l.redis))
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

// groupsChanged reloads the group limits after a change through this node.
func (l *limits) groupsChanged(ctx context.Context) {
	if err := l.groups.reload(ctx); err != nil {
		l.log.Error("could not reload key groups after a change; the refresh timer will retry", "err", err)
	}
}

func (l *limits) close() {
	if l != nil && l.redis != nil {
		_ = l.redis.Close()
	}
}
