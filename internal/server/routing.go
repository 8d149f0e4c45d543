package server

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/routing"
	"github.com/keygate/keygate/internal/store"
)

// routingPoll is how often a node reads the routing generation, one row,
// to learn that routing changed through another node: well inside the
// second a change may take to reach every node.
//
// The poll is the fallback of a change bus: a node told of a routing
// change (a LISTEN/NOTIFY topic, say) calls routingFollower.poll at once,
// and the poll below only catches what the bus missed.
const routingPoll = 250 * time.Millisecond

// routingStore is what the routing follower reads.
type routingStore interface {
	RoutingGeneration(ctx context.Context) (int64, error)
	ListRoutingEntries(ctx context.Context) ([]store.RoutingEntry, int64, error)
}

// routingFollower merges the configuration file's routing with the
// database's for each table load, and reloads the table when the
// database's routing generation moves.
type routingFollower struct {
	st     routingStore
	file   routing.File
	reload func(ctx context.Context) error // the gateway's one table reload
	log    *slog.Logger
	// loaded is the generation of the routing the current table was built
	// from; -1 before the first load.
	loaded atomic.Int64
}

func newRoutingFollower(st routingStore, file routing.File, log *slog.Logger) *routingFollower {
	f := &routingFollower{st: st, file: file, log: log}
	f.loaded.Store(-1)
	return f
}

// load reads the database's routing and merges it with the file's. A name
// both define, or a database entry keygate cannot read, fails the load:
// at start the node refuses to start, later the current table stays. done
// records the generation once the table built from it is in place.
func (f *routingFollower) load(ctx context.Context) (set routing.Set, done func(), err error) {
	rows, gen, err := f.st.ListRoutingEntries(ctx)
	if err != nil {
		return routing.Set{}, nil, err
	}
	db, err := routing.DecodeAll(rows)
	if err != nil {
		return routing.Set{}, nil, err
	}
	if set, err = routing.Merge(f.file, db); err != nil {
		return routing.Set{}, nil, err
	}
	if err := routing.Check(set); err != nil {
		return routing.Set{}, nil, err
	}
	return set, func() { f.loaded.Store(gen) }, nil
}

// poll reloads the routing table when the routing generation has moved
// since the table was built.
func (f *routingFollower) poll(ctx context.Context) {
	gen, err := f.st.RoutingGeneration(ctx)
	if err != nil {
		if ctx.Err() == nil {
			f.log.Warn("could not read the routing generation; will retry", "err", err)
		}
		return
	}
	if gen == f.loaded.Load() {
		return
	}
	if err := f.reload(ctx); err != nil && ctx.Err() == nil {
		f.log.Error("routing changed but the new routing cannot be loaded; keeping the previous one", "generation", gen, "err", err)
	}
}

// routingHealth is the gateway's report of this node's aliases and their
// deployments' health, as the admin API answers it.
func routingHealth(as []gateway.AliasHealth) []adminapi.AliasHealth {
	out := make([]adminapi.AliasHealth, 0, len(as))
	for _, a := range as {
		ah := adminapi.AliasHealth{Name: a.Name, Strategy: a.Strategy, Unavailable: a.Unavailable, Deployments: make([]adminapi.DeploymentHealth, 0, len(a.Deployments))}
		for _, d := range a.Deployments {
			dh := adminapi.DeploymentHealth{Name: d.Name, Provider: d.Provider, Model: d.Model, Breaker: d.Breaker, Failures: d.Failures,
				InFlight: d.InFlight, LatencyMS: d.Latency.Milliseconds(), Errors: make([]adminapi.UpstreamError, 0, len(d.Errors))}
			if !d.CoolingUntil.IsZero() {
				t := d.CoolingUntil.UTC()
				dh.CoolingUntil = &t
			}
			for _, e := range d.Errors {
				dh.Errors = append(dh.Errors, adminapi.UpstreamError{At: e.At, Status: e.Status, Reason: e.Reason})
			}
			ah.Deployments = append(ah.Deployments, dh)
		}
		out = append(out, ah)
	}
	return out
}
