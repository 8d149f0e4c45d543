package limit_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keygate/keygate/internal/limit"
	"github.com/keygate/keygate/internal/limit/limittest"
	"github.com/keygate/keygate/internal/limit/redisscripts"
)

// redisEnv names the environment variable holding the URL of the Redis the
// tests may use.
const redisEnv = "KEYGATE_TEST_REDIS_URL"

// redisClient returns a client of the Redis named by KEYGATE_TEST_REDIS_URL,
// closed when the test ends, or skips the test when the variable is unset.
func redisClient(t testing.TB) *redis.Client {
	t.Helper()
	url := os.Getenv(redisEnv)
	if url == "" {
		t.Skip("set " + redisEnv + "=redis://127.0.0.1:6379/0 to run the Redis limiter tests")
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("%s: %v", redisEnv, err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	if err := c.Ping(t.Context()).Err(); err != nil {
		t.Fatalf("Redis at %s: %v", redisEnv, err)
	}
	return c
}

// redisPrefix returns a key prefix no other test uses, and deletes the keys
// under it when the test ends.
func redisPrefix(t testing.TB, c *redis.Client) string {
	t.Helper()
	var b [8]byte
	rand.Read(b[:])
	prefix := "keygate:limittest:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			if err := c.Del(ctx, iter.Val()).Err(); err != nil {
				t.Errorf("delete test key: %v", err)
				return
			}
		}
		if err := iter.Err(); err != nil {
			t.Errorf("list test keys %s*: %v", prefix, err)
		}
	})
	return prefix
}

func TestRedis(t *testing.T) {
	t.Parallel()
	c := redisClient(t)
	limittest.Run(t, func(t *testing.T, now func() time.Time) limit.Limiter {
		return limit.NewRedis(redisscripts.New(c), limit.WithPrefix(redisPrefix(t, c)), limit.WithClock(now))
	})
	limittest.RunShared(t, func(t *testing.T, now func() time.Time) (limit.Limiter, limit.Limiter) {
		prefix := redisPrefix(t, c)
		other := redisClient(t) // a second node has its own connections
		return limit.NewRedis(redisscripts.New(c), limit.WithPrefix(prefix), limit.WithClock(now)),
			limit.NewRedis(redisscripts.New(other), limit.WithPrefix(prefix), limit.WithClock(now))
	})
}

// newRedis returns a Redis limiter on its own prefix that uses Redis TIME.
func newRedis(t testing.TB, opts ...limit.RedisOption) (*limit.Redis, *redis.Client, string) {
	c := redisClient(t)
	prefix := redisPrefix(t, c)
	return limit.NewRedis(redisscripts.New(c), append([]limit.RedisOption{limit.WithPrefix(prefix)}, opts...)...), c, prefix
}

func TestRedisTime(t *testing.T) {
	t.Parallel()
	l, _, _ := newRedis(t)
	r := []limit.Check{{Key: "key:a:rps", Kind: limit.Rate, Limit: 5, Period: time.Second, Cost: 1}}
	for i := range 5 {
		d, err := l.Admit(t.Context(), r)
		if err != nil || !d.Allowed {
			t.Fatalf("request %d: %v, %+v", i, err, d)
		}
	}
	d, err := l.Admit(t.Context(), r)
	if err != nil || d.Allowed {
		t.Fatalf("sixth request within a second: %v, allowed %v", err, d.Allowed)
	}
	if d.RetryAfter <= 0 || d.RetryAfter > 200*time.Millisecond {
		t.Fatalf("RetryAfter = %v, want within (0, 200ms]", d.RetryAfter)
	}
	time.Sleep(d.RetryAfter)
	if d, err := l.Admit(t.Context(), r); err != nil || !d.Allowed {
		t.Fatalf("after RetryAfter: %v, %+v", err, d)
	}
	time.Sleep(time.Second)
	r[0].Cost = 5
	if d, err := l.Admit(t.Context(), r); err != nil || !d.Allowed {
		t.Fatalf("after a second: %v, %+v", err, d)
	}
}

func TestRedisLeaseExpires(t *testing.T) {
	t.Parallel()
	l, c, prefix := newRedis(t, limit.WithLease(50*time.Millisecond))
	s := []limit.Check{{Key: "key:a:conc", Kind: limit.Concurrency, Limit: 1}}
	a, err := l.Admit(t.Context(), s)
	if err != nil || !a.Allowed {
		t.Fatalf("Admit: %v, %+v", err, a)
	}
	if ttl := c.PTTL(t.Context(), prefix+"c:key:a:conc").Val(); ttl <= 0 || ttl > 50*time.Millisecond {
		t.Errorf("concurrency key TTL %v, want within (0, 50ms]", ttl)
	}
	if d, err := l.Admit(t.Context(), s); err != nil || d.Allowed {
		t.Fatalf("second request: %v, allowed %v", err, d.Allowed)
	}
	time.Sleep(60 * time.Millisecond) // the first node "crashed" without settling
	b, err := l.Admit(t.Context(), s)
	if err != nil || !b.Allowed {
		t.Fatalf("after the lease expired: %v, %+v", err, b)
	}
	if err := l.Settle(t.Context(), a.Reservation, []int64{0}); err != nil {
		t.Fatal(err)
	}
	if d, err := l.Admit(t.Context(), s); err != nil || d.Allowed {
		t.Fatalf("a late Settle freed another request's slot: %v, allowed %v", err, d.Allowed)
	}
}

func TestRedisKeysExpire(t *testing.T) {
	t.Parallel()
	l, c, prefix := newRedis(t)
	ctx := t.Context()
	checks := []limit.Check{
		{Key: "key:a:rpm", Kind: limit.Rate, Limit: 10, Period: time.Minute, Cost: 2},
		{Key: "key:a:conc", Kind: limit.Concurrency, Limit: 10},
		{Key: "key:a:tpd", Kind: limit.Quota, Limit: 100, Calendar: limit.Day, Cost: 5},
		{Key: "key:a:tpm", Kind: limit.Quota, Limit: 100, Calendar: limit.Month, Cost: 5},
		{Key: "key:a:usd", Kind: limit.Quota, Limit: 100, Calendar: limit.Total, Cost: 5},
	}
	d, err := l.Admit(ctx, checks)
	if err != nil || !d.Allowed {
		t.Fatalf("Admit: %v, %+v", err, d)
	}
	keys, err := c.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 6 {
		t.Errorf("keys %v, want a bucket, a slot set, three quota counters and a reservation", keys)
	}
	for _, k := range keys {
		ttl := c.PTTL(ctx, k).Val()
		name := strings.TrimPrefix(k, prefix)
		var longest time.Duration
		switch {
		case strings.HasPrefix(name, "r:"):
			longest = 12 * time.Second // 2 of 10 a minute: full again in 12s
		case strings.HasPrefix(name, "c:"):
			longest = 15 * time.Minute
		case strings.HasPrefix(name, "q:") && strings.HasSuffix(name, ":t"):
			if ttl != -1 {
				t.Errorf("%s: TTL %v; a Total quota is a lifetime budget and must not expire", name, ttl)
			}
			continue
		case strings.HasPrefix(name, "q:"):
			longest = 32*24*time.Hour + time.Hour // the period's end plus an hour
			if end := d.Reset[2]; strings.Contains(name, ":d") && ttl > time.Until(end)+time.Hour+time.Second {
				t.Errorf("%s: TTL %v, beyond the day's end plus an hour", name, ttl)
			}
		case strings.HasPrefix(name, "p:"):
			longest = 24 * time.Hour
		default:
			t.Errorf("unexpected key %s", name)
		}
		if ttl <= 0 || ttl > longest {
			t.Errorf("%s: TTL %v, want within (0, %v]", name, ttl, longest)
		}
	}
	if err := l.Settle(ctx, d.Reservation, []int64{0, 0, 5, 5, 5}); err != nil {
		t.Fatal(err)
	}
	// Settled, the bucket is full again and nothing is in flight: those keys
	// and the reservation are gone.
	if got := c.Keys(ctx, prefix+"*").Val(); len(got) != 3 {
		t.Errorf("keys after Settle %v, want only the three quota counters", got)
	}
}

// countingHook counts the commands and pipelines a client sends: its round
// trips to Redis.
type countingHook struct{ n atomic.Int64 }

// DialHook counts nothing: dialing is part of a round trip.
func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook counts a command.
func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook counts a pipeline as one round trip.
func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

func TestRedisOneRoundTrip(t *testing.T) {
	t.Parallel()
	l, c, _ := newRedis(t)
	hook := &countingHook{}
	c.AddHook(hook)
	checks := []limit.Check{
		{Key: "key:a:rpm", Kind: limit.Rate, Limit: 1000, Period: time.Minute, Cost: 1},
		{Key: "key:a:conc", Kind: limit.Concurrency, Limit: 10},
		{Key: "key:a:usd", Kind: limit.Quota, Limit: 1000, Calendar: limit.Day, Cost: 1},
	}
	for i := range 3 {
		hook.n.Store(0)
		d, err := l.Admit(t.Context(), checks)
		if err != nil || !d.Allowed {
			t.Fatalf("Admit: %v, %+v", err, d)
		}
		admit := hook.n.Load()
		if err := l.Settle(t.Context(), d.Reservation, []int64{1, 0, 1}); err != nil {
			t.Fatal(err)
		}
		settle := hook.n.Load() - admit
		// The first calls may add an EVAL after a NOSCRIPT, once per script.
		if i > 0 && (admit != 1 || settle != 1) {
			t.Fatalf("round trips: Admit %d, Settle %d; want 1 each", admit, settle)
		}
	}
	hook.n.Store(0)
	d, _ := l.Admit(t.Context(), checks)
	_ = l.Settle(t.Context(), d.Reservation, []int64{1, 0, 1})
	_ = l.Settle(t.Context(), d.Reservation, []int64{1, 0, 1})
	if got := hook.n.Load(); got != 2 {
		t.Fatalf("Admit and two Settles took %d round trips, want 2 (the second Settle is a no-op)", got)
	}
}

func TestRedisUnavailable(t *testing.T) {
	t.Parallel()
	good, _, prefix := newRedis(t)
	dead := redis.NewClient(&redis.Options{
		Addr:         "127.0.0.1:1",
		DialTimeout:  200 * time.Millisecond,
		ReadTimeout:  200 * time.Millisecond,
		WriteTimeout: 200 * time.Millisecond,
		MaxRetries:   -1,
	})
	t.Cleanup(func() { dead.Close() })
	l := limit.NewRedis(redisscripts.New(dead), limit.WithPrefix(prefix))
	key := "key:secret_looking_id:usd"
	q := []limit.Check{{Key: key, Kind: limit.Quota, Limit: 100, Calendar: limit.Day, Cost: 10}}

	began := time.Now()
	_, err := l.Admit(t.Context(), q)
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("Admit took %v to fail", took)
	}
	if !errors.Is(err, limit.ErrUnavailable) {
		t.Fatalf("Admit on an unreachable Redis: %v, want ErrUnavailable", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "Redis could not be reached") || strings.Contains(msg, key) || strings.Contains(msg, prefix) {
		t.Errorf("error message %q should say Redis could not be reached and name no key", msg)
	}

	// A Settle that could not reach Redis may be retried.
	d, err := good.Admit(t.Context(), q)
	if err != nil || !d.Allowed {
		t.Fatalf("Admit: %v, %+v", err, d)
	}
	if err := l.Settle(t.Context(), d.Reservation, []int64{0}); !errors.Is(err, limit.ErrUnavailable) {
		t.Fatalf("Settle on an unreachable Redis: %v, want ErrUnavailable", err)
	}
	if err := good.Settle(t.Context(), d.Reservation, []int64{0}); err != nil {
		t.Fatal(err)
	}
	q[0].Cost = 100
	if d, err := good.Admit(t.Context(), q); err != nil || !d.Allowed {
		t.Fatalf("after the retried Settle refunded everything: %v, %+v", err, d)
	}
}

func TestRedisClockSkew(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	probe := redisClient(t)
	for _, tc := range []struct {
		name  string
		local time.Duration // Redis's time of day, in a zone made up for the test
		skew  time.Duration // the node's clock minus Redis's
	}{
		// The node still thinks it is yesterday.
		{"node behind Redis after midnight", time.Minute, -3 * time.Minute},
		// The node already thinks it is tomorrow.
		{"node ahead of Redis before midnight", 24*time.Hour - time.Minute, 3 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now, err := probe.Time(ctx).Result()
			if err != nil {
				t.Fatal(err)
			}
			sinceMidnight := now.UTC().Sub(now.UTC().Truncate(24 * time.Hour))
			zone := time.FixedZone("test", int((tc.local-sinceMidnight)/time.Second))
			y, m, d := now.In(zone).Date()
			want := time.Date(y, m, d+1, 0, 0, 0, 0, zone) // the end of Redis's day

			l, _, _ := newRedis(t)
			limit.SetNodeClock(l, func() time.Time { return time.Now().Add(tc.skew) })
			dec, err := l.Admit(ctx, []limit.Check{{Key: "key:a:rpd", Kind: limit.Quota, Limit: 1, Calendar: limit.Day, Location: zone, Cost: 1}})
			if err != nil || !dec.Allowed {
				t.Fatalf("Admit: %v, %+v", err, dec)
			}
			if !dec.Reset[0].Equal(want) {
				t.Fatalf("the request went to the day ending %v, want %v (Redis's day)", dec.Reset[0], want)
			}
		})
	}

	t.Run("beyond the margin", func(t *testing.T) {
		l, _, _ := newRedis(t)
		limit.SetNodeClock(l, func() time.Time { return time.Now().Add(-48 * time.Hour) })
		_, err := l.Admit(ctx, []limit.Check{{Key: "key:a:rpd", Kind: limit.Quota, Limit: 1, Calendar: limit.Day, Cost: 1}})
		if err == nil || errors.Is(err, limit.ErrUnavailable) || !strings.Contains(err.Error(), "clock") {
			t.Fatalf("Admit with a node clock two days behind: %v, want an error about the clocks", err)
		}
	})
}

func TestRedisMatchesMemory(t *testing.T) {
	// The same random traffic through both limiters, on the same clock,
	// must get the same decisions, figure for figure: Redis's Lua copy of
	// the arithmetic must not drift from the Go one.
	t.Parallel()
	c := redisClient(t)
	clock := limittest.NewClock(time.Date(2025, 3, 31, 23, 50, 0, 0, time.UTC))
	mem := limit.NewMemory(limit.WithClock(clock.Now))
	red := limit.NewRedis(redisscripts.New(c), limit.WithPrefix(redisPrefix(t, c)), limit.WithClock(clock.Now))
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		berlin = time.UTC
	}
	pool := []limit.Check{
		{Key: "a", Kind: limit.Rate, Limit: 7, Period: time.Minute},
		{Key: "b", Kind: limit.Rate, Limit: 1000, Period: 13 * time.Second},
		{Key: "b", Kind: limit.Rate, Limit: 999, Period: 13 * time.Second},
		{Key: "c", Kind: limit.Concurrency, Limit: 3},
		{Key: "d", Kind: limit.Quota, Limit: 500, Calendar: limit.Day, Location: berlin},
		{Key: "d", Kind: limit.Quota, Limit: 900, Calendar: limit.Month},
		{Key: "e", Kind: limit.Quota, Limit: 2000, Calendar: limit.Total},
	}
	seed := uint64(time.Now().UnixNano())
	rng := func(n int) int {
		seed ^= seed << 13
		seed ^= seed >> 7
		seed ^= seed << 17
		return int(seed % uint64(n))
	}
	type held struct{ m, r limit.Decision }
	var open []held
	for step := range 2000 {
		checks := make([]limit.Check, 1+rng(3))
		for i := range checks {
			checks[i] = pool[rng(len(pool))]
			checks[i].Cost = int64(rng(int(checks[i].Limit/3) + 2))
		}
		dm, errM := mem.Admit(t.Context(), checks)
		dr, errR := red.Admit(t.Context(), checks)
		if errM != nil || errR != nil {
			t.Fatalf("step %d: memory %v, Redis %v", step, errM, errR)
		}
		if dm.Allowed != dr.Allowed || dm.Denied != dr.Denied || dm.RetryAfter != dr.RetryAfter ||
			!slices.Equal(dm.Remaining, dr.Remaining) || !slices.EqualFunc(dm.Reset, dr.Reset, time.Time.Equal) {
			t.Fatalf("step %d, checks %+v (seed %d):\nmemory %+v\nRedis  %+v", step, checks, seed, dm, dr)
		}
		if dm.Allowed {
			open = append(open, held{dm, dr})
		}
		if len(open) > 0 && rng(2) == 0 {
			i := rng(len(open))
			h := open[i]
			open = slices.Delete(open, i, i+1)
			actual := make([]int64, len(h.m.Remaining))
			for j := range actual {
				actual[j] = int64(rng(400))
			}
			if err := mem.Settle(t.Context(), h.m.Reservation, actual); err != nil {
				t.Fatal(err)
			}
			if err := red.Settle(t.Context(), h.r.Reservation, actual); err != nil {
				t.Fatal(err)
			}
		}
		clock.Advance(time.Duration(rng(3000)) * time.Millisecond)
	}
}
