// Package lastused records when each keygate key was last used, without
// touching the database on the request path: a request stores one atomic
// timestamp per key, and a flusher writes the changed keys in the
// background and once more at shutdown.
package lastused

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Toucher persists a key's last use; keygate's store implements it.
type Toucher interface {
	TouchKey(ctx context.Context, id string, at time.Time) error
}

// Recorder gathers last-use times. It is safe for concurrent use.
type Recorder struct {
	st  Toucher
	log *slog.Logger
	m   sync.Map // key id -> *atomic.Int64 (unix nanoseconds; 0 when flushed)
}

// New returns a recorder that writes through st.
func New(st Toucher, log *slog.Logger) *Recorder { return &Recorder{st: st, log: log} }

// Seen records that key id was used at t. After a key's first use it
// allocates nothing and takes no lock.
func (r *Recorder) Seen(id string, t time.Time) {
	v, ok := r.m.Load(id)
	if !ok {
		v, _ = r.m.LoadOrStore(id, new(atomic.Int64))
	}
	v.(*atomic.Int64).Store(t.UnixNano())
}

// Flush writes every key used since the last flush.
func (r *Recorder) Flush(ctx context.Context) {
	r.m.Range(func(k, v any) bool {
		ns := v.(*atomic.Int64).Swap(0)
		if ns == 0 {
			return true
		}
		if err := r.st.TouchKey(ctx, k.(string), time.Unix(0, ns).UTC()); err != nil {
			r.log.Warn("could not record a key's last use", "key_id", k, "err", err)
		}
		return true
	})
}

// Run flushes every interval until ctx ends, then flushes once more.
func (r *Recorder) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			r.Flush(ctx)
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			r.Flush(fctx)
			cancel()
			return
		}
	}
}
