package server

import (
	"context"
	"log/slog"

	"github.com/keygate/keygate/internal/store"
)

// revocationFollower applies revocations recorded by any node to this
// one's caches: a revoked, suspended, rotated or changed key is re-read on
// its next request, a revoked token family or token is refused. Build
// reads where the log ends, so nothing recorded after Build is missed.
type revocationFollower struct {
	st      *store.Store
	apply   func(store.Revocation)
	log     *slog.Logger
	last    int64
	failing bool
}

// newRevocationFollower starts following at the end of the revocation log.
func newRevocationFollower(ctx context.Context, st *store.Store, apply func(store.Revocation), log *slog.Logger) *revocationFollower {
	f := &revocationFollower{st: st, apply: apply, log: log}
	last, err := st.LatestRevocationSeq(ctx)
	if err != nil {
		log.Warn("could not read the revocation log; changes made on other nodes apply within key_cache_ttl until it can be", "err", err)
	}
	f.last = last
	return f
}

// poll applies the revocations recorded since the last poll. Only the
// change follower calls it, when the revocation log grows.
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
	for _, r := range revs {
		f.apply(r)
		f.last = r.Seq
	}
}
