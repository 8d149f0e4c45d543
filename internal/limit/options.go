package limit

import "time"

// defaultLease is how long a concurrency slot stays held when its request
// is never settled, for example because its keygate node crashed.
const defaultLease = 15 * time.Minute

// settings are the options Memory and Redis share.
type settings struct {
	now   func() time.Time // nil: the system clock (Memory) or Redis TIME (Redis)
	lease time.Duration
}

// MemoryOption configures NewMemory.
type MemoryOption interface{ applyMemory(*Memory) }

// RedisOption configures NewRedis.
type RedisOption interface{ applyRedis(*Redis) }

// Option configures either limiter; it is both a MemoryOption and a
// RedisOption.
type Option struct{ apply func(*settings) }

func (o Option) applyMemory(m *Memory) { o.apply(&m.settings) }
func (o Option) applyRedis(r *Redis)   { o.apply(&r.settings) }

// WithClock makes the limiter read time from now instead of the system
// clock, so tests can move time. A Redis limiter then passes now to Redis
// instead of using Redis TIME; every node sharing its state must use the
// same clock.
func WithClock(now func() time.Time) Option {
	return Option{func(s *settings) { s.now = now }}
}

// WithLease sets how long an unsettled concurrency slot stays held before it
// frees itself (default 15 minutes, at least a millisecond). It bounds how
// long a crashed node, or a caller that never settles, holds a slot, and
// should be longer than the longest request keygate proxies: a request still
// running after its lease no longer counts against its concurrency limits.
func WithLease(d time.Duration) Option {
	return Option{func(s *settings) { s.lease = max(d, time.Millisecond) }}
}

type memoryOption func(*Memory)

func (o memoryOption) applyMemory(m *Memory) { o(m) }

// WithSweepInterval sets how often Memory drops idle state: buckets that are
// full again, concurrency counters with nothing in flight and quota counters
// of ended periods (default one minute). See Memory.Sweep.
func WithSweepInterval(d time.Duration) MemoryOption {
	return memoryOption(func(m *Memory) { m.sweepEvery = max(d.Microseconds(), 1) })
}

type redisOption func(*Redis)

func (o redisOption) applyRedis(r *Redis) { o(r) }

// WithPrefix sets the prefix of every Redis key the limiter uses (default
// "keygate:limit:"). Limiters with the same prefix on the same Redis share
// their counters. With Redis Cluster, put a hash tag in the prefix, such as
// "{keygate}:limit:", so that all of a request's keys live in one slot.
func WithPrefix(prefix string) RedisOption {
	return redisOption(func(r *Redis) { r.prefix = prefix })
}
