package detect

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

const benchKeys = 10_000

func benchEngine(tb testing.TB) (*Engine, []Observation, *time.Time) {
	now := t0
	e, err := NewEngine(Config{}, func() time.Time { return now }, func(Alert) {})
	if err != nil {
		tb.Fatal(err)
	}
	obs := make([]Observation, benchKeys)
	models := []string{"gpt-4o-mini", "gpt-4o", "claude-sonnet-4"}
	for i := range obs {
		obs[i] = Observation{KeyID: fmt.Sprintf("key_%05d", i), Client: "10.0.0.1", Provider: "openai",
			Model: models[i%3], Path: "/v1/chat/completions", MicroUSD: 300, BudgetMicroUSD: 50_000_000, EventSeq: uint64(i + 1)}
		e.Observe(obs[i])
	}
	return e, obs, &now
}

// BenchmarkObserve measures one observation on the request path, across 10,000 keys.
func BenchmarkObserve(b *testing.B) {
	e, obs, _ := benchEngine(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		e.Observe(obs[i%benchKeys])
	}
}

// BenchmarkObserveParallel is BenchmarkObserve from every CPU at once.
func BenchmarkObserveParallel(b *testing.B) {
	e, obs, _ := benchEngine(b)
	var next atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(7919))
		for pb.Next() {
			i++
			e.Observe(obs[i%benchKeys])
		}
	})
}

// BenchmarkTick measures one second's evaluation of 10,000 active keys.
func BenchmarkTick(b *testing.B) {
	e, obs, now := benchEngine(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		for i := range obs {
			e.Observe(obs[i])
		}
		*now = now.Add(time.Second)
		b.StartTimer()
		e.Tick(*now)
	}
}

// TestObserveTickAtScale plays a minute of traffic over 10,000 keys and
// checks that observing allocates nothing for a known key and that every
// tick runs. How long a tick takes is BenchmarkTick's to measure: a timed
// assertion here would fail on a loaded machine and prove nothing.
func TestObserveTickAtScale(t *testing.T) {
	e, obs, now := benchEngine(t)
	if n := testing.AllocsPerRun(1000, func() { e.Observe(obs[42]) }); n != 0 {
		t.Errorf("Observe allocates %v times per call for a known key, want 0", n)
	}
	for s := 0; s < 60; s++ {
		for i := range obs {
			e.Observe(obs[i])
		}
		*now = now.Add(time.Second)
		e.Tick(*now)
	}
}
