package limit_test

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate/keygate/internal/limit"
	"github.com/keygate/keygate/internal/limit/limittest"
	"github.com/keygate/keygate/internal/limit/redisscripts"
	"github.com/keygate/keygate/internal/netfault"
)

// resilientNode is a limit.Resilient as limittest.Node.
type resilientNode struct{ *limit.Resilient }

func TestResilient(t *testing.T) {
	t.Parallel()
	c := redisClient(t)
	// While Redis answers, a node that holds no lease decides exactly as
	// the Redis limiter does.
	limittest.Run(t, func(t *testing.T, now func() time.Time) limit.Limiter {
		shared := limit.NewRedis(redisscripts.New(c), limit.WithPrefix(redisPrefix(t, c)), limit.WithClock(now))
		return limit.NewResilient(shared, limit.NewMemory(limit.WithClock(now)), limit.ResilientOptions{Now: now})
	})
	limittest.RunShared(t, func(t *testing.T, now func() time.Time) (limit.Limiter, limit.Limiter) {
		prefix := redisPrefix(t, c)
		other := redisClient(t)
		return limit.NewResilient(limit.NewRedis(redisscripts.New(c), limit.WithPrefix(prefix), limit.WithClock(now)), limit.NewMemory(limit.WithClock(now)), limit.ResilientOptions{Now: now}),
			limit.NewResilient(limit.NewRedis(redisscripts.New(other), limit.WithPrefix(prefix), limit.WithClock(now)), limit.NewMemory(limit.WithClock(now)), limit.ResilientOptions{Now: now})
	})
	limittest.RunOutage(t, func(t *testing.T, now func() time.Time, lease float64) limittest.Cluster {
		prefix := redisPrefix(t, c)
		var cl limittest.Cluster
		var proxies []*netfault.Proxy
		for range 3 {
			proxy, err := netfault.New(c.Options().Addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { proxy.Close() })
			proxies = append(proxies, proxy)
			// Each node has its own connections, all through the proxy,
			// and fails at once instead of retrying a Redis that is gone.
			nc := redis.NewClient(&redis.Options{Addr: proxy.Addr(), DB: c.Options().DB, MaxRetries: -1, DialTimeout: time.Second})
			t.Cleanup(func() { nc.Close() })
			shared := limit.NewRedis(redisscripts.New(nc), limit.WithPrefix(prefix), limit.WithClock(now))
			cl.Nodes = append(cl.Nodes, resilientNode{limit.NewResilient(shared, limit.NewMemory(limit.WithClock(now)), limit.ResilientOptions{Now: now, Lease: lease})})
		}
		cl.Cut = func(i int, down bool) { proxies[i].Cut(down) }
		return cl
	})
}
