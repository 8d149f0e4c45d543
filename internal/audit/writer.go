package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// ErrQueueFull is returned by Record when the audit queue is full: the sinks
// are not keeping up or are down. A fail-closed caller refuses the request.
var ErrQueueFull = errors.New("audit: queue full, the event was not recorded; the audit sinks are down or too slow, check their health")

// ErrClosed is returned by Record after Close.
var ErrClosed = errors.New("audit: writer is closed; events can no longer be recorded")

// WriterOptions tunes a Writer. Zero values take the defaults given.
type WriterOptions struct {
	FlushInterval time.Duration // how often queued events are written (default 100ms)
	BatchSize     int           // events per sink write; a full batch is flushed at once (default 512)
	QueueSize     int           // events waiting for any sink before Record pushes back (default 65536)
	Deadline      time.Duration // bound on one sink write, and on how long Record waits for room (default 2s)
	// FailClosed makes Record refuse at once, with ErrQueueFull, when the queue
	// is full; otherwise Record waits up to Deadline for room first. Events are
	// never dropped to make room. Fail-closed callers also check Healthy.
	FailClosed bool
	Now        func() time.Time // clock for events recorded without a time (default time.Now)

	// SigningKey, when set, signs checkpoints (version 2, see SignLinked):
	// each one goes to every sink that is a CheckpointSink, once that sink
	// has stored the event it covers, and to Checkpointer when set.
	SigningKey   ed25519.PrivateKey
	Checkpointer func(Checkpoint)
	// A checkpoint is made for every event whose seq is a multiple of
	// CheckpointEvery (default 1000) once a sink has stored it; for the newest
	// stored event when CheckpointInterval (0: never) has passed since the last
	// checkpoint; and for the newest stored event on Close. None is made
	// while no new event has been stored.
	CheckpointEvery    uint64
	CheckpointInterval time.Duration
	// Node names the chain in every checkpoint. LastCheckpoint is the seq of
	// the newest checkpoint an earlier run made for the chain (0: none); the
	// first checkpoint of this run names it as its predecessor.
	Node           string
	LastCheckpoint uint64

	Logger *slog.Logger // where sink failures are reported (default: discarded)
}

// Writer records events: Record chains an event and queues it without doing
// any I/O, and one background goroutine writes the queue to every sink in
// batches. Events reach each sink in chain order; a batch a sink refuses is
// offered to it again on the next flush.
type Writer struct {
	chain *Chain
	opts  WriterOptions
	log   *slog.Logger

	mu     sync.Mutex
	queue  []Event
	room   chan struct{} // closed and replaced whenever the flusher takes the queue
	closed bool
	unsent atomic.Int64 // events taken by the flusher that no sink has stored yet

	healthy atomic.Bool
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}

	// Owned by the flusher goroutine.
	sinks   []*sinkState
	pending []Event // events not yet stored by every sink, in order
	newest  Event   // newest event stored by at least one sink
	lastCP  uint64  // no checkpoint is made at or below this seq
	prevCP  uint64  // seq of the newest checkpoint made, named by the next one
	cpAt    time.Time
}

type sinkState struct {
	sink    Sink
	done    int         // how many of pending this sink has stored
	flight  chan result // non-nil while a write is running
	last    uint64      // seq of the last event in the write in flight (0 for a checkpoint)
	through uint64      // seq of the newest event this sink has stored
	cpw     CheckpointSink
	cps     []Checkpoint // checkpoints this sink has yet to store, oldest first
}

// maxOwedCheckpoints bounds the checkpoints kept for a sink that is down;
// the oldest are dropped past it (a later checkpoint covers their events).
const maxOwedCheckpoints = 4096

type result struct{ err error }

// NewWriter starts a writer that chains events with chain and stores them
// in every one of sinks. Stop it with Close.
func NewWriter(chain *Chain, sinks []Sink, opts WriterOptions) (*Writer, error) {
	if chain == nil || len(sinks) == 0 {
		return nil, errors.New("audit: a writer needs a chain and at least one sink; configure an audit file, syslog, webhook or database sink")
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 100 * time.Millisecond
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 512
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 65536
	}
	if opts.Deadline <= 0 {
		opts.Deadline = 2 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CheckpointEvery == 0 {
		opts.CheckpointEvery = 1000
	}
	w := &Writer{chain: chain, opts: opts, log: opts.Logger,
		room: make(chan struct{}), kick: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	if w.log == nil {
		w.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	head, _ := chain.Head()
	for _, s := range sinks {
		st := &sinkState{sink: s, through: head}
		st.cpw, _ = s.(CheckpointSink)
		w.sinks = append(w.sinks, st)
	}
	w.lastCP, w.prevCP = head, opts.LastCheckpoint
	w.cpAt = opts.Now()
	w.healthy.Store(true)
	go w.loop()
	return w, nil
}

// Record chains ev (setting its Seq, Prev and Hash, and its Time when zero)
// and queues it for the sinks. It does no I/O. When the queue is full it
// returns ErrQueueFull, at once if FailClosed is set or else after waiting
// up to Deadline for room; a refused event takes no place in the chain.
func (w *Writer) Record(ev Event) error {
	if ev.Time.IsZero() {
		ev.Time = w.opts.Now()
	}
	var timer *time.Timer
	w.mu.Lock()
	for {
		if w.closed {
			w.mu.Unlock()
			return ErrClosed
		}
		if len(w.queue)+int(w.unsent.Load()) < w.opts.QueueSize {
			break
		}
		if w.opts.FailClosed {
			w.mu.Unlock()
			return ErrQueueFull
		}
		room := w.room
		w.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(w.opts.Deadline)
			defer timer.Stop()
		}
		select {
		case <-room:
		case <-timer.C:
			return ErrQueueFull
		}
		w.mu.Lock()
	}
	// The event is chained when it is flushed, in queue order, off the
	// caller's path: hashing is the costly part of recording.
	w.queue = append(w.queue, ev)
	full := len(w.queue) >= w.opts.BatchSize
	w.mu.Unlock()
	if full {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// Healthy reports whether, at the last flush, at least one sink had stored
// every event given to the writer. A fail-closed caller refuses requests
// while it is false.
func (w *Writer) Healthy() bool { return w.healthy.Load() }

// Close stops accepting events, writes out everything queued (retrying
// failed sinks until ctx ends) and closes the sinks. It returns an error if
// some events could not be stored by every sink before ctx ended, and
// ErrClosed when called again.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	w.closed = true
	close(w.room) // wake waiting Record calls so they see the writer is closed
	w.room = make(chan struct{})
	w.mu.Unlock()
	close(w.stop)
	<-w.done

	var errs []error
	retry := 10 * time.Millisecond
	for {
		w.flush(ctx)
		w.checkpoint(true)
		w.deliver(ctx)
		if w.caughtUp() && w.checkpointsDelivered() {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(retry):
			retry = min(2*retry, time.Second)
			continue
		}
		if !w.caughtUp() {
			errs = append(errs, fmt.Errorf("audit: %d events were not stored by every sink before shutdown ended (%d by none): %w", len(w.pending)-w.minDone(), w.unsent.Load(), ctx.Err()))
		} else {
			errs = append(errs, fmt.Errorf("audit: a checkpoint was not stored by every sink before shutdown ended: %w", ctx.Err()))
		}
		break
	}
	for _, s := range w.sinks {
		if s.flight != nil {
			continue // a hung write still owns the sink; closing it under it is unsafe
		}
		if err := s.sink.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (w *Writer) loop() {
	defer close(w.done)
	t := time.NewTicker(w.opts.FlushInterval)
	defer t.Stop()
	ctx := context.Background()
	for {
		select {
		case <-t.C:
		case <-w.kick:
		case <-w.stop:
			return
		}
		w.flush(ctx)
		w.checkpoint(false)
		w.deliver(ctx)
	}
}

// flush moves the queue to pending and offers each sink what it lacks.
func (w *Writer) flush(ctx context.Context) {
	w.mu.Lock()
	q := w.queue
	w.queue = nil
	w.unsent.Add(int64(len(q)))
	close(w.room)
	w.room = make(chan struct{})
	w.mu.Unlock()
	for _, ev := range q {
		ev, err := w.chain.Append(ev)
		if err != nil {
			// Only an event that cannot be encoded fails; it cannot be stored either.
			w.log.Error("audit event could not be chained; it is dropped", "type", ev.Type, "err", err)
			w.unsent.Add(-1)
			continue
		}
		w.pending = append(w.pending, ev)
	}
	if len(w.pending) == 0 {
		w.healthy.Store(true)
		return
	}

	for i, s := range w.sinks {
		if !w.poll(s) {
			continue
		}
		for s.done < len(w.pending) && ctx.Err() == nil {
			end := min(s.done+w.opts.BatchSize, len(w.pending))
			batch := w.pending[s.done:end:end]
			if err := w.write(ctx, s, batch[len(batch)-1].Seq, func(ctx context.Context) error { return s.sink.Write(ctx, batch) }); err != nil {
				w.log.Warn("audit sink could not store events; they will be offered again",
					"sink", i, "type", fmt.Sprintf("%T", s.sink), "from_seq", w.pending[s.done].Seq, "events", end-s.done, "err", err)
				break
			}
			s.done, s.through = end, batch[len(batch)-1].Seq
		}
	}
	w.settle()
}

// poll sees whether a sink's write that outlived its deadline has finished,
// and reports whether the sink is free for the next one.
func (w *Writer) poll(s *sinkState) bool {
	if s.flight == nil {
		return true
	}
	select {
	case r := <-s.flight:
		s.flight = nil
		if r.err == nil && s.last > 0 {
			s.through = max(s.through, s.last)
			if len(w.pending) > 0 && s.last >= w.pending[0].Seq {
				// pending holds consecutive seqs, so the index follows from the seq.
				s.done = max(s.done, min(int(s.last-w.pending[0].Seq)+1, len(w.pending)))
			}
		}
		return true
	default:
		return false
	}
}

// write runs one sink write, waiting at most Deadline. A write that has not
// returned by then is left running and the sink is skipped until it does;
// last is the seq of the newest event it stores (0 for a checkpoint).
func (w *Writer) write(ctx context.Context, s *sinkState, last uint64, fn func(context.Context) error) error {
	wctx, cancel := context.WithTimeout(ctx, w.opts.Deadline)
	ch := make(chan result, 1)
	go func() {
		defer cancel()
		ch <- result{fn(wctx)}
	}()
	t := time.NewTimer(w.opts.Deadline)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.err
	case <-t.C:
		s.flight, s.last = ch, last
		return fmt.Errorf("audit: sink write did not return within %v; the sink is hung and is skipped until it returns", w.opts.Deadline)
	}
}

// settle drops events every sink has stored, bounds what a lagging sink may
// owe, and updates health.
func (w *Writer) settle() {
	maxDone := 0
	for _, s := range w.sinks {
		maxDone = max(maxDone, s.done)
	}
	for i, s := range w.sinks {
		if owed := maxDone - s.done; owed > w.opts.QueueSize {
			// Another sink holds these; keeping them for this one would block keygate.
			w.log.Error("audit sink fell too far behind; events stored by other sinks are skipped for it",
				"sink", i, "type", fmt.Sprintf("%T", s.sink), "from_seq", w.pending[s.done].Seq, "skipped", owed-w.opts.QueueSize)
			s.done = maxDone - w.opts.QueueSize
			s.through = max(s.through, w.pending[s.done-1].Seq)
		}
	}
	if maxDone > 0 {
		w.durable(w.pending[:maxDone])
	}
	lo := w.minDone()
	if lo > 0 {
		w.pending = w.pending[lo:]
		for _, s := range w.sinks {
			s.done -= lo
		}
		maxDone -= lo
		if cap(w.pending) > 4*w.opts.QueueSize && len(w.pending) < w.opts.QueueSize {
			w.pending = append([]Event(nil), w.pending...)
		}
	}
	w.unsent.Store(int64(len(w.pending) - maxDone))
	w.healthy.Store(maxDone == len(w.pending))
}

func (w *Writer) minDone() int {
	lo := len(w.pending)
	for _, s := range w.sinks {
		lo = min(lo, s.done)
	}
	return lo
}

func (w *Writer) caughtUp() bool { return w.minDone() == len(w.pending) && len(w.queue) == 0 }

// durable notes that at least one sink has stored stored (a prefix of
// pending): the newest of them is what the next checkpoint covers, and each
// multiple of CheckpointEvery among them gets a checkpoint of its own.
func (w *Writer) durable(stored []Event) {
	last := stored[len(stored)-1]
	if last.Seq <= w.newest.Seq {
		return
	}
	if w.opts.SigningKey != nil {
		every, first := w.opts.CheckpointEvery, stored[0].Seq
		for seq := (w.lastCP/every + 1) * every; seq <= last.Seq; seq += every {
			if seq >= first {
				w.makeCheckpoint(stored[seq-first])
			}
		}
	}
	w.newest = last
}

// checkpoint signs a checkpoint of the newest stored event when one is due.
func (w *Writer) checkpoint(final bool) {
	if w.opts.SigningKey == nil || w.newest.Seq <= w.lastCP {
		return
	}
	due := final || (w.opts.CheckpointInterval > 0 && w.opts.Now().Sub(w.cpAt) >= w.opts.CheckpointInterval)
	if due {
		w.makeCheckpoint(w.newest)
	}
}

// makeCheckpoint signs a checkpoint of ev, linked to the one before it, and
// queues it for every checkpoint sink.
func (w *Writer) makeCheckpoint(ev Event) {
	cp := SignLinked(w.opts.SigningKey, w.opts.Node, w.prevCP, ev)
	w.lastCP, w.prevCP, w.cpAt = ev.Seq, ev.Seq, w.opts.Now()
	if w.opts.Checkpointer != nil {
		w.opts.Checkpointer(cp)
	}
	for i, s := range w.sinks {
		if s.cpw == nil {
			continue
		}
		if len(s.cps) >= maxOwedCheckpoints {
			w.log.Error("audit sink has been down too long; its oldest unsent checkpoint is dropped, and verify will report it missing from this sink",
				"sink", i, "type", fmt.Sprintf("%T", s.sink), "seq", s.cps[0].Seq)
			s.cps = s.cps[1:]
		}
		s.cps = append(s.cps, cp)
	}
}

// deliver offers every checkpoint sink the checkpoints it has yet to store
// whose events it already holds, oldest first.
func (w *Writer) deliver(ctx context.Context) {
	for i, s := range w.sinks {
		if s.cpw == nil || len(s.cps) == 0 || !w.poll(s) {
			continue
		}
		for len(s.cps) > 0 && s.cps[0].Seq <= s.through && ctx.Err() == nil {
			cp := s.cps[0]
			if err := w.write(ctx, s, 0, func(ctx context.Context) error { return s.cpw.WriteCheckpoint(ctx, cp) }); err != nil {
				w.log.Warn("audit sink could not store a checkpoint; it will be offered again",
					"sink", i, "type", fmt.Sprintf("%T", s.sink), "seq", cp.Seq, "err", err)
				break
			}
			s.cps[0] = Checkpoint{}
			s.cps = s.cps[1:]
		}
	}
}

// checkpointsDelivered reports whether every checkpoint sink has stored
// every checkpoint made.
func (w *Writer) checkpointsDelivered() bool {
	for _, s := range w.sinks {
		if len(s.cps) > 0 {
			return false
		}
	}
	return true
}
