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

	"github.com/keygate/keygate/internal/store"
)

// Toucher persists keys' last use, many in one transaction; keygate's store implements it.
type Toucher interface {
	TouchKeys(ctx context.Context, uses []store.KeyUse) error
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

// Flush writes every key used since the last flush, in one transaction.
// If the write fails the times are put back for the next flush.
func (r *Recorder) Flush(ctx context.Context) {
	var uses []store.KeyUse
	r.m.Range(func(k, v any) bool {
		if ns := v.(*atomic.Int64).Swap(0); ns != 0 {
			uses = append(uses, store.KeyUse{ID: k.(string), At: time.Unix(0, ns).UTC()})
		}
		return true
	})
	if len(uses) == 0 {
		return
	}
	if err := r.st.TouchKeys(ctx, uses); err != nil {
		r.log.Warn("could not record keys' last use; will retry", "keys", len(uses), "err", err)
		for _, u := range uses {
			v, _ := r.m.Load(u.ID)
			v.(*atomic.Int64).CompareAndSwap(0, u.At.UnixNano())
		}
	}
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
