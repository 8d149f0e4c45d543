package limit_test

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/limit"
)

// request is a typical request: a request rate, a concurrency limit and a
// daily token quota, with limits high enough that every request passes, and
// what the request turns out to cost.
type request struct {
	checks []limit.Check
	actual []int64
}

func newRequest(key string) request {
	return request{
		checks: []limit.Check{
			{Key: key + ":rps", Kind: limit.Rate, Limit: 1_000_000_000, Period: time.Second, Cost: 1},
			{Key: key + ":conc", Kind: limit.Concurrency, Limit: 1 << 40},
			{Key: key + ":tpd", Kind: limit.Quota, Limit: 1 << 50, Calendar: limit.Day, Cost: 100},
		},
		actual: []int64{1, 0, 80},
	}
}

func (r request) admit(b *testing.B, l limit.Limiter) limit.Decision {
	d, err := l.Admit(b.Context(), r.checks)
	if err != nil || !d.Allowed {
		b.Fatalf("Admit: %v, %+v", err, d)
	}
	return d
}

func (r request) settle(b *testing.B, l limit.Limiter, res limit.Reservation) {
	if err := l.Settle(b.Context(), res, r.actual); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkAdmit(b *testing.B) {
	b.Run("memory", func(b *testing.B) {
		b.Run("admit+settle", func(b *testing.B) { benchAdmitSettle(b, limit.NewMemory(), nil) })
		b.Run("admit", func(b *testing.B) { benchAdmitOnly(b, limit.NewMemory(), nil) })
	})
	b.Run("memory-parallel", func(b *testing.B) {
		b.Run("distinct-keys", func(b *testing.B) {
			m := limit.NewMemory()
			var id atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				r := newRequest("key:g" + strconv.FormatInt(id.Add(1), 10))
				for pb.Next() {
					r.settle(b, m, r.admit(b, m).Reservation)
				}
			})
		})
		b.Run("hot-key", func(b *testing.B) {
			m := limit.NewMemory()
			r := newRequest("key:hot")
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r.settle(b, m, r.admit(b, m).Reservation)
				}
			})
		})
	})
	b.Run("redis", func(b *testing.B) {
		b.Run("admit+settle", func(b *testing.B) {
			l, c, _ := newRedis(b)
			hook := &countingHook{}
			c.AddHook(hook)
			benchAdmitSettle(b, l, hook)
		})
		b.Run("admit", func(b *testing.B) {
			l, c, _ := newRedis(b)
			hook := &countingHook{}
			c.AddHook(hook)
			benchAdmitOnly(b, l, hook)
		})
	})
}

// benchAdmitSettle measures Admit followed by Settle, and the round trips to
// Redis they take if hook is not nil.
func benchAdmitSettle(b *testing.B, l limit.Limiter, hook *countingHook) {
	r := newRequest("key:bench")
	r.settle(b, l, r.admit(b, l).Reservation) // load scripts, create counters
	if hook != nil {
		hook.n.Store(0)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		r.settle(b, l, r.admit(b, l).Reservation)
	}
	b.StopTimer()
	if hook != nil {
		b.ReportMetric(float64(hook.n.Load())/float64(b.N), "round-trips/op")
	}
}

// benchAdmitOnly measures Admit alone; the concurrency slots it takes are
// released in batches, off the clock and off the round-trip count.
func benchAdmitOnly(b *testing.B, l limit.Limiter, hook *countingHook) {
	r := newRequest("key:bench")
	r.settle(b, l, r.admit(b, l).Reservation)
	held := make([]limit.Reservation, 0, 1024)
	var trips int64
	if hook != nil {
		hook.n.Store(0)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		held = append(held, r.admit(b, l).Reservation)
		if len(held) == cap(held) {
			b.StopTimer()
			if hook != nil {
				trips += hook.n.Load()
			}
			for _, res := range held {
				r.settle(b, l, res)
			}
			held = held[:0]
			if hook != nil {
				hook.n.Store(0)
			}
			b.StartTimer()
		}
	}
	b.StopTimer()
	if hook != nil {
		trips += hook.n.Load()
		b.ReportMetric(float64(trips)/float64(b.N), "round-trips/op")
	}
	for _, res := range held {
		r.settle(b, l, res)
	}
}
