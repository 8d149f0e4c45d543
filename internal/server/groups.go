package server

import (
	"bytes"
	"context"
	"maps"
	"sync/atomic"

	"github.com/keygate/keygate/internal/store"
)

// groupCache serves key groups' limits to the gateway from memory. It is
// reloaded when this node changes a group and on the provider refresh
// timer, which brings other nodes' changes.
type groupCache struct {
	st *store.Store
	m  atomic.Pointer[map[string][]byte]
	// onChange runs after a reload that found a group added, removed or
	// with other limits.
	onChange func()
}

func newGroupCache(st *store.Store) *groupCache {
	g := &groupCache{st: st}
	empty := map[string][]byte{}
	g.m.Store(&empty)
	return g
}

// reload reads every group; on failure the previous set stays.
func (g *groupCache) reload(ctx context.Context) error {
	gs, err := g.st.ListGroups(ctx)
	if err != nil {
		return err
	}
	m := make(map[string][]byte, len(gs))
	for _, gr := range gs {
		m[gr.Name] = gr.Limits
	}
	old := g.m.Swap(&m)
	if g.onChange != nil && !maps.EqualFunc(*old, m, bytes.Equal) {
		g.onChange()
	}
	return nil
}

// limits returns a group's limits (JSON) and whether it exists.
func (g *groupCache) limits(name string) ([]byte, bool) {
	l, ok := (*g.m.Load())[name]
	return l, ok
}
