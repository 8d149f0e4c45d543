package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/keygate/keygate/internal/store"
)

// revocationPoll is how often a node looks for revocations made on other
// nodes; a revocation takes effect everywhere within about this long.
const revocationPoll = 250 * time.Millisecond

// followRevocations applies revocations recorded by any node to this one's
// caches until ctx ends: a revoked, suspended, rotated or changed key is
// re-read on its next request.
func followRevocations(ctx context.Context, st *store.Store, apply func(store.Revocation), log *slog.Logger) {
	last, err := st.LatestRevocationSeq(ctx)
	if err != nil {
		log.Warn("could not read the revocation log; changes made on other nodes apply within key_cache_ttl until it can be", "err", err)
	}
	t := time.NewTicker(revocationPoll)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		revs, err := st.RevocationsSince(ctx, last)
		if err != nil {
			if !failing && ctx.Err() == nil {
				log.Warn("could not read the revocation log; will retry", "err", err)
			}
			failing = true
			continue
		}
		failing = false
		for _, r := range revs {
			apply(r)
			last = r.Seq
		}
	}
}
