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

// Recorder gathers last-use times. It is safe for concurrent use. It holds
// only the keys used lately: a key found unused by a flush (nothing since
// the one before) is dropped, so memory follows the keys in use, not every
// key ever used.
type Recorder struct {
	st  Toucher
	log *slog.Logger
	m   sync.Map // key id -> *atomic.Int64 (unix nanoseconds; 0 when flushed, dropped when dropped)
}

// dropped marks an entry a flush removed: a Seen that finds it stores its
// time in a fresh entry instead.
const dropped = -1

// New returns a recorder that writes through st.
func New(st Toucher, log *slog.Logger) *Recorder { return &Recorder{st: st, log: log} }

// Seen records that key id was used at t. For a key used at least once
// between flushes it allocates nothing and takes no lock.
func (r *Recorder) Seen(id string, t time.Time) {
	for {
		v, ok := r.m.Load(id)
		if !ok {
			v, _ = r.m.LoadOrStore(id, new(atomic.Int64))
		}
		if v.(*atomic.Int64).Swap(t.UnixNano()) != dropped {
			return
		}
		r.m.CompareAndDelete(id, v) // the flush may not have removed it yet
	}
}

// Flush writes every key used since the last flush, in one transaction.
// If the write fails the times are put back for the next flush.
func (r *Recorder) Flush(ctx context.Context) {
	var uses []store.KeyUse
	r.m.Range(func(k, v any) bool {
		a := v.(*atomic.Int64)
		switch ns := a.Swap(0); {
		case ns > 0:
			uses = append(uses, store.KeyUse{ID: k.(string), At: time.Unix(0, ns).UTC()})
		case ns == 0 && a.CompareAndSwap(0, dropped):
			r.m.CompareAndDelete(k, v) // unused since the last flush
		case ns == dropped:
			a.Store(dropped)
			r.m.CompareAndDelete(k, v)
		}
		return true
	})
	if len(uses) == 0 {
		return
	}
	if err := r.st.TouchKeys(ctx, uses); err != nil {
		r.log.Warn("could not record keys' last use; will retry", "keys", len(uses), "err", err)
		for _, u := range uses {
			if v, ok := r.m.Load(u.ID); ok {
				v.(*atomic.Int64).CompareAndSwap(0, u.At.UnixNano())
			}
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
