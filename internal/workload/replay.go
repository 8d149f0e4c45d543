package workload

import (
	"context"
	"sync"
	"time"
)

// ReplayGuard remembers the identity tokens already exchanged, by their
// issuer and jti, until they expire, so that each is exchanged once. The
// server gives it the store, which every node shares; Memory serves one
// node.
type ReplayGuard interface {
	// Claim records id as used until until and reports whether it was
	// fresh: false means it was recorded before (a replay). An error
	// means it could not tell; the exchange is then refused.
	Claim(ctx context.Context, id string, until, now time.Time) (bool, error)
}

// Memory is a ReplayGuard for one node. It is safe for concurrent use.
type Memory struct {
	mu   sync.Mutex
	seen map[string]time.Time
	adds int
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory { return &Memory{seen: map[string]time.Time{}} }

// Claim implements ReplayGuard.
func (m *Memory) Claim(_ context.Context, id string, until, now time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if u, ok := m.seen[id]; ok && !u.Before(now) {
		return false, nil
	}
	m.seen[id] = until
	if m.adds++; m.adds%256 == 0 { // forget what has expired, now and then
		for k, u := range m.seen {
			if u.Before(now) {
				delete(m.seen, k)
			}
		}
	}
	return true, nil
}
