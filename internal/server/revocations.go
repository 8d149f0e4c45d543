package server

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/token"
)

// revocationFollower applies revocations recorded by any node to this
// one's caches: a revoked, suspended, rotated or changed key is re-read on
// its next request, a revoked token family or token is refused. Build
// reads where the log ends, so nothing recorded after Build is missed.
type revocationFollower struct {
	st    *store.Store
	apply func(store.Revocation)
	// warm reads a key this node was told of into its key cache, once
	// every revocation of the poll is applied: a key just created, rotated
	// or changed is then ready here before its first request, and a
	// database outage that starts a moment later does not find it unknown
	// (nil: nothing is read ahead).
	warm    func(ctx context.Context, keyID string)
	log     *slog.Logger
	last    int64
	failing bool
	wake    chan struct{} // a change notification: poll now
}

// kick makes the follower poll now rather than at its next tick.
func (f *revocationFollower) kick() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// maxWarm bounds the keys one poll reads ahead; past it (a bulk change),
// keys are read at their first request as before.
const maxWarm = 256

// newRevocationFollower starts following at the end of the revocation log.
func newRevocationFollower(ctx context.Context, st *store.Store, apply func(store.Revocation), log *slog.Logger) *revocationFollower {
	f := &revocationFollower{st: st, apply: apply, log: log, wake: make(chan struct{}, 1)}
	last, err := st.LatestRevocationSeq(ctx)
	if err != nil {
		log.Warn("could not read the revocation log; changes made on other nodes apply within key_cache_ttl until it can be", "err", err)
	}
	f.last = last
	return f
}

// poll applies the revocations recorded since the last poll. It is a task
// of its own (not one of the change follower's topics), so a reload that
// stalls (a slow KMS holding up the vault's) never delays a revocation.
func (f *revocationFollower) poll(ctx context.Context) {
	revs, err := f.st.RevocationsSince(ctx, f.last)
	if err != nil {
		if !f.failing && ctx.Err() == nil {
			f.log.Warn("could not read the revocation log; will retry", "err", err)
		}
		f.failing = true
		return
	}
	f.failing = false
	var warm []string
	for _, r := range revs {
		f.apply(r)
		f.last = r.Seq
		if r.Kind == token.RevokedKey && len(warm) < maxWarm && !slices.Contains(warm, r.Subject) {
			warm = append(warm, r.Subject)
		}
	}
	if f.warm == nil {
		return
	}
	for _, id := range warm {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		f.warm(wctx, id)
		cancel()
		if ctx.Err() != nil {
			return
		}
	}
}
