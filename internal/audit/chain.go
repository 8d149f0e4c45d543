package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"sync"
)

// Chain gives events their place in the trail: it assigns each one the next
// sequence number and links it to the previous event by hash. It is safe for
// concurrent use; callers that also need events stored in chain order must
// append and enqueue under one lock of their own, as Writer does.
type Chain struct {
	mu   sync.Mutex
	seq  uint64
	hash string
}

// NewChain returns a chain that continues after last, the newest event
// already stored. Pass the zero Event to start a new trail at seq 1.
func NewChain(last Event) *Chain {
	return &Chain{seq: last.Seq, hash: last.Hash}
}

// Append returns ev with Seq, Prev and Hash set, its time in UTC and its
// strings made valid UTF-8. Other fields are kept as given. An event that
// cannot be encoded (a time outside years 0-9999) is refused and takes no
// place in the chain.
func (c *Chain) Append(ev Event) (Event, error) {
	normalize(&ev)
	ev.Hash = ""
	c.mu.Lock()
	defer c.mu.Unlock()
	ev.Seq = c.seq + 1
	ev.Prev = c.hash
	b, err := ev.Canonical()
	if err != nil {
		return Event{}, err
	}
	sum := sha256.Sum256(b)
	ev.Hash = hex.EncodeToString(sum[:])
	c.seq, c.hash = ev.Seq, ev.Hash
	return ev, nil
}

// Head returns the sequence number and hash of the newest event in the chain
// (0 and "" for a new trail).
func (c *Chain) Head() (seq uint64, hash string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seq, c.hash
}
