package server

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/store/pgnotify"
)

// changePoll is how often a node reads the change generations. A change
// made through any node is in force on every node within about this long;
// on PostgreSQL a notification wakes the follower at once, and the poll
// only covers the moments its listening connection is down.
const changePoll = 250 * time.Millisecond

// changeFollower reloads what this node caches when another node changes
// it. Every write to a cached table moves its topic's generation (a
// database trigger does it, so no write path can forget); the follower
// reads the generations and runs the reload of each topic that moved.
// Each reload also runs every safetyNet whatever the generations say, and
// all of them run on the follower's one goroutine, never two at once.
type changeFollower struct {
	st        *store.Store
	log       *slog.Logger
	topics    []changeTopic
	safetyNet time.Duration
	last      map[string]int64
	ran       []time.Time // by index in topics
	wake      chan struct{}
	failing   bool
	// notified, when set, is called with every change notification too
	// (the revocation follower, a task of its own, is woken by it).
	notified func()
}

// changeTopic is one topic and what reloads it.
type changeTopic struct {
	name   string
	reload func(context.Context)
}

// newChangeFollower starts from the generations as they are now: what
// Build loaded is current up to them.
func newChangeFollower(ctx context.Context, st *store.Store, topics []changeTopic, safetyNet time.Duration, log *slog.Logger) *changeFollower {
	f := &changeFollower{st: st, log: log, topics: topics, safetyNet: safetyNet,
		ran: make([]time.Time, len(topics)), wake: make(chan struct{}, 1)}
	now := time.Now()
	for i := range f.ran {
		f.ran[i] = now
	}
	last, err := st.ChangeGenerations(ctx)
	if err != nil {
		log.Warn("could not read the change generations; changes made on other nodes apply at the next periodic reload until it can", "err", err)
	}
	f.last = last
	return f
}

// kick makes the follower poll now rather than at its next tick.
func (f *changeFollower) kick() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// poll runs the reload of every topic whose generation moved since the
// last poll, or whose last reload is older than the safety net. Only the
// background task calls it.
func (f *changeFollower) poll(ctx context.Context) {
	now := time.Now()
	gens, err := f.st.ChangeGenerations(ctx)
	if err != nil {
		if !f.failing && ctx.Err() == nil {
			f.log.Warn("could not read the change generations; will retry", "err", err)
		}
		f.failing = true
		return
	}
	f.failing = false
	if f.last == nil {
		// The first read after a failed start: reload everything once.
		f.last = map[string]int64{}
		for topic := range gens {
			f.last[topic] = gens[topic] - 1
		}
	}
	for i, t := range f.topics {
		gen, moved := gens[t.name], gens[t.name] != f.last[t.name]
		if !moved && now.Sub(f.ran[i]) < f.safetyNet {
			continue
		}
		f.last[t.name], f.ran[i] = gen, now
		t.reload(ctx)
	}
}

// listen wakes the follower on every change notification, for as long as
// ctx lasts; the task runner calls it again a moment after the connection
// fails. On SQLite, which cannot push, it returns at once and the poll does
// all the work.
func (f *changeFollower) listen(ctx context.Context) {
	kick := func() {
		f.kick()
		if f.notified != nil {
			f.notified()
		}
	}
	err := pgnotify.Listen(ctx, f.st, kick, func(string) { kick() })
	switch {
	case errors.Is(err, store.ErrListenUnsupported), ctx.Err() != nil:
	default:
		f.log.Warn("lost the change notification connection; changes from other nodes arrive by polling until it is back", "err", err)
	}
}
