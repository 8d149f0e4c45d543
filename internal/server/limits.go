package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/limit"
	"github.com/keygate/keygate/internal/pricing"
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

func newLimits(ctx context.Context, cfg config.Config, st *store.Store, log *slog.Logger) (*limits, error) {
	overrides := make(map[string]pricing.Price, len(cfg.Prices))
	for name, p := range cfg.Prices {
		overrides[name] = pricing.USD(p.Input, p.Output)
	}
	prices, err := pricing.NewTable(overrides)
	if err != nil {
		return nil, fmt.Errorf("config: prices: %w", err)
	}
	l := &limits{groups: newGroupCache(st), log: log}
	if err := l.groups.reload(ctx); err != nil {
		return nil, fmt.Errorf("read key groups: %w", err)
	}
	loc := cfg.Limits.Location()
	l.usage = usage.NewRecorder(st, loc, log)
	local := limit.NewMemory()
	var shared gateway.Limiter = local
	if cfg.Limits.Redis != "" {
		opt, err := redis.ParseURL(cfg.Limits.Redis)
		if err != nil {
			// The URL may hold a password: it is not repeated.
			return nil, errors.New("config: limits.redis is not a valid redis:// URL")
		}
		l.redis = redis.NewClient(opt)
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err = l.redis.Ping(pctx).Err()
		cancel()
		if err != nil {
			log.Warn("Redis for limits is not reachable yet; quotas and budgets are refused and rate limits use this node's counters until it is",
				"addr", opt.Addr, "err", err)
		}
		shared = limit.NewRedis(l.redis)
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
	if l.redis != nil {
		_ = l.redis.Close()
	}
}
