package audit

import (
	"path/filepath"
	"testing"
	"time"
)

func BenchmarkRecord(b *testing.B) {
	fs, err := OpenFile(filepath.Join(b.TempDir(), "audit.log"), FileOptions{})
	if err != nil {
		b.Fatal(err)
	}
	w, err := NewWriter(NewChain(Event{}), []Sink{fs}, WriterOptions{})
	if err != nil {
		b.Fatal(err)
	}
	ev := Event{Type: "auth.success", Actor: "team-a", KeyID: "key_7f3a9c", Client: "203.0.113.9",
		Resource: "/v1/chat/completions", Decision: "allow", Fields: map[string]string{"model": "gpt-4o"}}
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		if err := w.Record(ev); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(b.Context()); err != nil { // include the time to store every event
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

func BenchmarkAppendParallel(b *testing.B) {
	c := NewChain(Event{})
	ev := Event{Type: "auth.success", KeyID: "key_7f3a9c", Resource: "/v1/chat/completions", Decision: "allow",
		Time: time.Now()}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Append(ev); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRecordCheckpointed is BenchmarkRecord with checkpoints signed
// every 1,000 events (and every 5 s), which now also go to the file sink.
func BenchmarkRecordCheckpointed(b *testing.B) {
	fs, err := OpenFile(filepath.Join(b.TempDir(), "audit.log"), FileOptions{})
	if err != nil {
		b.Fatal(err)
	}
	_, priv := testKey(b)
	w, err := NewWriter(NewChain(Event{}), []Sink{fs}, WriterOptions{SigningKey: priv, Checkpointer: func(Checkpoint) {}, CheckpointInterval: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	ev := Event{Type: "auth.success", Actor: "team-a", KeyID: "key_7f3a9c", Client: "203.0.113.9",
		Resource: "/v1/chat/completions", Decision: "allow", Fields: map[string]string{"model": "gpt-4o"}}
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		if err := w.Record(ev); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(b.Context()); err != nil { // include the time to store every event
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}
