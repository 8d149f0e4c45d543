package audit

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLinkedCheckpointSignAndVerify(t *testing.T) {
	pub, priv := testKey(t)
	ev := trail(t, 3)[2]
	cp := SignLinked(priv, "node_a", 2, ev)
	if cp.V != 2 || cp.Node != "node_a" || cp.PrevSeq != 2 || cp.Seq != 3 {
		t.Fatalf("checkpoint %+v", cp)
	}
	if err := VerifyCheckpoint(pub, cp); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Checkpoint){
		"node":     func(c *Checkpoint) { c.Node = "node_b" },
		"prev_seq": func(c *Checkpoint) { c.PrevSeq = 1 },
		"version":  func(c *Checkpoint) { c.V = 0 }, // a v2 signature does not verify as v1
		"unknown":  func(c *Checkpoint) { c.V = 3 },
		"time":     func(c *Checkpoint) { c.Time = c.Time.Add(time.Nanosecond) },
	} {
		bad := cp
		mut(&bad)
		if VerifyCheckpoint(pub, bad) == nil {
			t.Errorf("checkpoint with altered %s verified", name)
		}
	}
	// A v1 checkpoint cannot carry fields its signature does not cover.
	v1 := Sign(priv, ev)
	v1.Node = "node_a"
	if err := VerifyCheckpoint(pub, v1); err == nil || !strings.Contains(err.Error(), "version 2") {
		t.Fatalf("v1 checkpoint with a node: %v", err)
	}
}

// cpSink is a memSink that also keeps checkpoints, noting how many events
// it held when each arrived; it can be told to fail checkpoint writes.
type cpSink struct {
	memSink
	cpMu   sync.Mutex
	cps    []Checkpoint
	heldAt []int // events stored when each checkpoint arrived
	cpFail int   // fail this many more checkpoint writes
}

func (c *cpSink) WriteCheckpoint(ctx context.Context, cp Checkpoint) error {
	c.cpMu.Lock()
	defer c.cpMu.Unlock()
	if c.cpFail > 0 {
		c.cpFail--
		return errors.New("sink down")
	}
	c.cps = append(c.cps, cp)
	c.heldAt = append(c.heldAt, len(c.got()))
	return nil
}

func (c *cpSink) checkpoints() []Checkpoint {
	c.cpMu.Lock()
	defer c.cpMu.Unlock()
	return slices.Clone(c.cps)
}

// TestWriterCheckpointsOnTimeWhileEventsFlow: with a checkpoint interval,
// the newest stored event is checkpointed soon after it lands, long before
// 1,000 events or a shutdown; none is made while the trail is idle; every
// checkpoint reaches every checkpoint sink after the events it covers, and
// names the one before it.
func TestWriterCheckpointsOnTimeWhileEventsFlow(t *testing.T) {
	pub, priv := testKey(t)
	db, file := &cpSink{}, &cpSink{}
	plain := &memSink{} // a sink that keeps no checkpoints still gets its events
	w, err := NewWriter(NewChain(Event{}), []Sink{db, file, plain}, WriterOptions{
		FlushInterval: time.Millisecond, SigningKey: priv, Node: "node_a", CheckpointInterval: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		w.Record(Event{Type: "auth.failure"})
	}
	waitFor(t, func() bool { c := file.checkpoints(); return len(c) > 0 && c[len(c)-1].Seq == 5 }, "no checkpoint of seq 5 while keygate runs")
	idle := len(file.checkpoints())
	time.Sleep(100 * time.Millisecond) // five intervals with nothing new
	if n := len(file.checkpoints()); n != idle {
		t.Fatalf("%d checkpoints were made while the trail was idle", n-idle)
	}
	for range 3 {
		w.Record(Event{Type: "auth.failure"})
	}
	waitFor(t, func() bool { c := file.checkpoints(); return c[len(c)-1].Seq == 8 }, "no checkpoint of seq 8")
	if err := w.Close(closeCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*cpSink{"db": db, "file": file} {
		cps := s.checkpoints()
		if len(cps) == 0 || len(cps) > 8 {
			t.Fatalf("%s: %d checkpoints", name, len(cps))
		}
		for i, cp := range cps {
			if s.heldAt[i] < int(cp.Seq) {
				t.Fatalf("%s: checkpoint %d arrived when the sink held %d events", name, cp.Seq, s.heldAt[i])
			}
			want := uint64(0)
			if i > 0 {
				want = cps[i-1].Seq
			}
			if cp.PrevSeq != want || cp.Node != "node_a" {
				t.Fatalf("%s: checkpoint %+v, want prev_seq %d on node_a", name, cp, want)
			}
		}
		if err := VerifyTrail(Trail{Node: "node_a", Events: s.got(), Checkpoints: cps}, pub, nil).Err; err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if !slices.EqualFunc(db.checkpoints(), file.checkpoints(), sameCheckpoint) {
		t.Fatal("the sinks received different checkpoints")
	}
	if len(plain.got()) != 8 {
		t.Fatalf("the plain sink stored %d events", len(plain.got()))
	}
}

// TestWriterRetriesCheckpointsAndLinksAcrossRuns: a checkpoint a sink
// refuses is offered again, in order, until stored (Close waits for it); a
// new run names the previous run's newest checkpoint as the one before its
// first.
func TestWriterRetriesCheckpointsAndLinksAcrossRuns(t *testing.T) {
	pub, priv := testKey(t)
	s := &cpSink{cpFail: 3}
	w, _ := NewWriter(NewChain(Event{}), []Sink{s}, WriterOptions{FlushInterval: time.Millisecond, SigningKey: priv, CheckpointEvery: 2})
	for range 6 {
		w.Record(Event{Type: "x"})
	}
	if err := w.Close(closeCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	cps := s.checkpoints()
	if seqs := seqsOf(cps); !slices.Equal(seqs, []uint64{2, 4, 6}) {
		t.Fatalf("checkpoints at %v after refusals, want 2, 4, 6", seqs)
	}
	evs := s.got()
	w2, _ := NewWriter(NewChain(evs[len(evs)-1]), []Sink{s}, WriterOptions{FlushInterval: time.Millisecond, SigningKey: priv, CheckpointEvery: 2, LastCheckpoint: 6})
	w2.Record(Event{Type: "x"})
	if err := w2.Close(closeCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	cps = s.checkpoints()
	if last := cps[len(cps)-1]; last.Seq != 7 || last.PrevSeq != 6 {
		t.Fatalf("the next run's first checkpoint %+v, want seq 7 after 6", last)
	}
	if err := Verify(s.got(), cps, pub); err != nil {
		t.Fatal(err)
	}
}

func seqsOf(cps []Checkpoint) []uint64 {
	out := make([]uint64, len(cps))
	for i, c := range cps {
		out[i] = c.Seq
	}
	return out
}
