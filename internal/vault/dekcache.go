package vault

import (
	"crypto/sha256"
	"sync"
)

// defaultDEKCacheSize bounds the data keys a Vault keeps unwrapped: enough
// for every provider key and secret of a large install.
const defaultDEKCacheSize = 4096

// dekCache keeps unwrapped data keys, as ready AEADs, so that a KEK held in
// a remote KMS is called once per data key rather than on every read. It is
// keyed by a digest of the KEK id and the wrapped key: a rewrapped or
// tampered wrapped key is a different entry, and the associated data still
// binds every ciphertext to its record, so a cached key cannot open another
// record's ciphertext. When full, an arbitrary entry is evicted.
type dekCache struct {
	max int
	mu  sync.RWMutex
	m   map[[32]byte]aeadOpener
}

func newDEKCache(max int) *dekCache {
	return &dekCache{max: max, m: make(map[[32]byte]aeadOpener)}
}

func dekCacheKey(kekID string, wrapped []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(kekID))
	h.Write([]byte{0})
	h.Write(wrapped)
	var k [32]byte
	h.Sum(k[:0])
	return k
}

func (c *dekCache) get(k [32]byte) aeadOpener {
	if c.max <= 0 {
		return nil
	}
	c.mu.RLock()
	a := c.m[k]
	c.mu.RUnlock()
	return a
}

func (c *dekCache) put(k [32]byte, a aeadOpener) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for old := range c.m {
			delete(c.m, old)
			break
		}
	}
	c.m[k] = a
}

// len reports how many data keys are cached.
func (c *dekCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
