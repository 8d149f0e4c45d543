package apikey

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"hash"
	"sync"
)

// MinPepperSize is the shortest pepper NewHasher accepts, in bytes.
const MinPepperSize = 32

// Hasher computes the value keygate stores for a key: HMAC-SHA256 under a
// secret pepper kept in the vault. A database leak alone therefore reveals
// no usable key, and the hash cannot be brute-forced without the pepper.
// Hash runs on every request, so a Hasher reuses its HMAC states; it is safe
// for concurrent use.
type Hasher struct {
	pool sync.Pool
}

// hashState is one reusable HMAC with scratch space, so Hash does not allocate.
type hashState struct {
	mac hash.Hash
	buf [128]byte
	sum [sha256.Size]byte
}

// NewHasher returns a Hasher for pepper, which must be at least 32 bytes.
// The pepper is copied.
func NewHasher(pepper []byte) (*Hasher, error) {
	if len(pepper) < MinPepperSize {
		return nil, fmt.Errorf("apikey: the key pepper must be at least %d bytes, got %d; check the vault record that holds it", MinPepperSize, len(pepper))
	}
	p := bytes.Clone(pepper)
	h := &Hasher{}
	h.pool.New = func() any { return &hashState{mac: hmac.New(sha256.New, p)} }
	return h, nil
}

// Hash returns HMAC-SHA256(pepper, raw).
func (h *Hasher) Hash(raw string) [32]byte {
	s := h.pool.Get().(*hashState)
	s.mac.Reset()
	for len(raw) > 0 {
		n := copy(s.buf[:], raw)
		s.mac.Write(s.buf[:n])
		raw = raw[n:]
	}
	clear(s.buf[:])
	var out [32]byte
	copy(out[:], s.mac.Sum(s.sum[:0]))
	h.pool.Put(s)
	return out
}
