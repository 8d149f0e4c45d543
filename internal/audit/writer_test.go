package audit

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// memSink stores events in memory; it can be told to fail or to hang.
type memSink struct {
	mu     sync.Mutex
	events []Event
	writes int
	fail   atomic.Int32  // fail this many more writes
	hang   chan struct{} // when non-nil, Write blocks until it is closed, ignoring ctx
	closed bool
}

func (m *memSink) Write(ctx context.Context, batch []Event) error {
	if m.hang != nil {
		<-m.hang
	}
	if m.fail.Load() > 0 {
		m.fail.Add(-1)
		return errors.New("sink down")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writes++
	m.events = append(m.events, batch...)
	return nil
}

func (m *memSink) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

func (m *memSink) got() []Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Event(nil), m.events...)
}

func closeCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestWriterKeepsChainOrderAcrossConcurrentRecords(t *testing.T) {
	a, b := &memSink{}, &memSink{}
	w, err := NewWriter(NewChain(Event{}), []Sink{a, b}, WriterOptions{FlushInterval: time.Millisecond, BatchSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 500 {
				if err := w.Record(Event{Type: "auth.success", Actor: fmt.Sprintf("g%d-%d", g, i)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := w.Close(closeCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*memSink{a, b} {
		got := s.got()
		if len(got) != 8000 {
			t.Fatalf("sink stored %d events, want 8000", len(got))
		}
		if err := Verify(got, nil, nil); err != nil {
			t.Fatalf("sink's events are out of chain order: %v", err)
		}
		if !s.closed {
			t.Fatal("Close did not close the sink")
		}
		if s.writes > 8000/4 {
			t.Fatalf("%d writes for 8000 events: not batching", s.writes)
		}
	}
}

func TestWriterCloseFlushesEverythingAndCheckpoints(t *testing.T) {
	pub, priv := testKey(t)
	s := &memSink{}
	var cps []Checkpoint
	w, _ := NewWriter(NewChain(Event{}), []Sink{s}, WriterOptions{
		FlushInterval: time.Hour, BatchSize: 1 << 20, SigningKey: priv, CheckpointEvery: 1000,
		Checkpointer: func(cp Checkpoint) { cps = append(cps, cp) },
	})
	for range 10 {
		if err := w.Record(Event{Type: "admin.action"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(closeCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := s.got(); len(got) != 10 {
		t.Fatalf("Close left %d of 10 events unwritten", 10-len(got))
	}
	if len(cps) != 1 || cps[0].Seq != 10 {
		t.Fatalf("final checkpoints %+v, want one at seq 10", cps)
	}
	if err := Verify(s.got(), cps, pub); err != nil {
		t.Fatal(err)
	}
	if err := w.Record(Event{Type: "x"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Record after Close: %v", err)
	}
}

func TestWriterCheckpointsEveryN(t *testing.T) {
	pub, priv := testKey(t)
	s := &memSink{}
	var mu sync.Mutex
	var cps []Checkpoint
	w, _ := NewWriter(NewChain(Event{}), []Sink{s}, WriterOptions{
		FlushInterval: time.Millisecond, BatchSize: 10, SigningKey: priv, CheckpointEvery: 100,
		Checkpointer: func(cp Checkpoint) { mu.Lock(); cps = append(cps, cp); mu.Unlock() },
	})
	for range 1000 {
		w.Record(Event{Type: "auth.success"})
	}
	w.Close(closeCtx(t, 5*time.Second))
	if len(cps) != 10 {
		t.Fatalf("%d checkpoints for 1000 events every 100, want 10", len(cps))
	}
	for i, cp := range cps {
		if cp.Seq != uint64(i+1)*100 {
			t.Fatalf("checkpoint %d at seq %d", i, cp.Seq)
		}
	}
	if err := Verify(s.got(), cps, pub); err != nil {
		t.Fatal(err)
	}
	if err := Verify(s.got()[:990], cps, pub); err == nil {
		t.Fatal("truncation past the last checkpoint was not detected")
	}
}

func TestWriterHungSinkCannotHangRecord(t *testing.T) {
	s := &memSink{hang: make(chan struct{})}
	deadline := 50 * time.Millisecond
	w, _ := NewWriter(NewChain(Event{}), []Sink{s}, WriterOptions{
		FlushInterval: time.Millisecond, BatchSize: 4, QueueSize: 16, Deadline: deadline, FailClosed: true,
	})
	var refused bool
	start := time.Now()
	for range 100 {
		t0 := time.Now()
		err := w.Record(Event{Type: "auth.success"})
		// The sink hangs for good: a Record that waited on it would never
		// return, so a generous bound keeps a loaded machine from failing.
		if d := time.Since(t0); d > deadline+2*time.Second {
			t.Fatalf("Record blocked %v with a hung sink", d)
		}
		if errors.Is(err, ErrQueueFull) {
			refused = true
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	if !refused {
		t.Fatal("a full queue behind a hung sink never refused an event")
	}
	waitFor(t, func() bool { return !w.Healthy() }, "Healthy stayed true with a hung sink")
	if time.Since(start) > 5*time.Second {
		t.Fatal("too slow")
	}
	// Not fail-closed: Record waits at most Deadline, then refuses.
	w2, _ := NewWriter(NewChain(Event{}), []Sink{&memSink{hang: s.hang}}, WriterOptions{
		FlushInterval: time.Millisecond, QueueSize: 8, Deadline: deadline,
	})
	var last error
	for range 20 {
		t0 := time.Now()
		last = w2.Record(Event{Type: "auth.success"})
		if d := time.Since(t0); d > deadline+2*time.Second {
			t.Fatalf("Record waited %v, deadline %v", d, deadline)
		}
	}
	if !errors.Is(last, ErrQueueFull) {
		t.Fatalf("got %v, want ErrQueueFull", last)
	}
	// Close gives up when its context ends and says so; then the sink recovers.
	if err := w.Close(closeCtx(t, 100*time.Millisecond)); err == nil {
		t.Fatal("Close reported success with events unwritten")
	}
	close(s.hang)
	w2.Close(closeCtx(t, 100*time.Millisecond))
}

func TestWriterRecoversFromHungSinkWithoutLoss(t *testing.T) {
	s := &memSink{hang: make(chan struct{})}
	w, _ := NewWriter(NewChain(Event{}), []Sink{s}, WriterOptions{
		FlushInterval: time.Millisecond, BatchSize: 4, Deadline: 20 * time.Millisecond,
	})
	for range 40 {
		if err := w.Record(Event{Type: "auth.success"}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return !w.Healthy() }, "Healthy stayed true with a hung sink")
	close(s.hang)
	waitFor(t, w.Healthy, "Healthy stayed false after the sink recovered")
	if err := w.Close(closeCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	got := s.got()
	if len(got) != 40 {
		t.Fatalf("stored %d events, want 40", len(got))
	}
	if err := Verify(got, nil, nil); err != nil {
		t.Fatal(err)
	}
}

// flakyFile fails some writes before passing them to a real file sink.
type flakyFile struct {
	*FileSink
	fail atomic.Int32
}

func (f *flakyFile) Write(ctx context.Context, batch []Event) error {
	if f.fail.Load() > 0 {
		f.fail.Add(-1)
		return errors.New("disk hiccup")
	}
	return f.FileSink.Write(ctx, batch)
}

func TestWriterRetriesFailedBatchesInOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	fs, err := OpenFile(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f := &flakyFile{FileSink: fs}
	mem := &memSink{}
	w, _ := NewWriter(NewChain(Event{}), []Sink{f, mem}, WriterOptions{FlushInterval: 2 * time.Millisecond, BatchSize: 8})
	for i := range 300 {
		if i%50 == 0 {
			f.fail.Store(3)
		}
		if err := w.Record(Event{Type: "policy.decision", Decision: "allow"}); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	if err := w.Close(closeCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 300 || len(mem.got()) != 300 {
		t.Fatalf("file has %d events, memory %d; want 300 each", len(got), len(mem.got()))
	}
	if err := Verify(got, nil, nil); err != nil {
		t.Fatalf("file trail broken after retries: %v", err)
	}
}

func TestNewWriterNeedsASink(t *testing.T) {
	if _, err := NewWriter(NewChain(Event{}), nil, WriterOptions{}); err == nil {
		t.Fatal("a writer without sinks was accepted")
	}
}

func waitFor(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal(msg)
}
