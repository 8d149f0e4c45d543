// Package logbuf batches log output: lines written by many request
// goroutines are gathered in memory and written out by one flusher every
// interval, or sooner when the batch fills. A busy gateway then spends one
// write system call per batch instead of one per access-log line. Close
// flushes what is left, so a clean shutdown loses nothing; a crash loses at
// most one interval.
package logbuf

import (
	"io"
	"sync"
	"time"
)

// Writer is a batching io.Writer, safe for concurrent use.
type Writer struct {
	out   io.Writer
	max   int
	mu    sync.Mutex
	buf   []byte
	spare []byte
	wmu   sync.Mutex // serializes writes to out
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
}

// New batches writes to out, flushing every interval or when size bytes are waiting.
func New(out io.Writer, size int, interval time.Duration) *Writer {
	w := &Writer{out: out, max: size, buf: make([]byte, 0, size), spare: make([]byte, 0, size),
		stop: make(chan struct{}), done: make(chan struct{})}
	go w.loop(interval)
	return w
}

// Write queues p; it never blocks on the underlying writer unless the batch is full.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.buf = append(w.buf, p...)
	full := len(w.buf) >= w.max
	w.mu.Unlock()
	if full {
		w.Flush()
	}
	return len(p), nil
}

// Flush writes out everything queued so far.
func (w *Writer) Flush() {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	w.mu.Lock()
	b := w.buf
	w.buf = w.spare[:0]
	w.mu.Unlock()
	if len(b) > 0 {
		_, _ = w.out.Write(b)
	}
	w.mu.Lock()
	if cap(b) <= 4*w.max { // keep the buffer unless one burst grew it far past the batch size
		w.spare = b[:0]
	} else {
		w.spare = make([]byte, 0, w.max)
	}
	w.mu.Unlock()
}

func (w *Writer) loop(interval time.Duration) {
	defer close(w.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			w.Flush()
		case <-w.stop:
			w.Flush()
			return
		}
	}
}

// Close stops the flusher and writes out what is left. Writes after Close
// are still accepted and flushed by later Flush calls.
func (w *Writer) Close() error {
	w.once.Do(func() { close(w.stop) })
	<-w.done
	return nil
}
