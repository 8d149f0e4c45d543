package token

import (
	"bytes"
	"crypto/sha256"
	"slices"
	"sync"
	"time"
)

// DefaultCacheSize is how many verified access tokens an Authority
// remembers by default.
const DefaultCacheSize = 10000

// verifiedCache remembers tokens whose signature and static claims have
// been checked, keyed by the SHA-256 of the token. A client presents the
// same access token on every call for its whole life, so most verifications
// are hits that skip the signature check. A hit still checks the token's
// times and that its key is still published; only tokens that verified
// enter the cache, so an attacker cannot fill it.
type verifiedCache struct {
	max int

	mu      sync.RWMutex
	entries map[[sha256.Size]byte]*cachedClaims
}

type cachedClaims struct {
	kid    string
	claims Claims
}

func newVerifiedCache(max int) *verifiedCache {
	if max <= 0 {
		return nil
	}
	return &verifiedCache{max: max, entries: make(map[[sha256.Size]byte]*cachedClaims)}
}

func (c *verifiedCache) get(sum [sha256.Size]byte) (*cachedClaims, bool) {
	c.mu.RLock()
	e, ok := c.entries[sum]
	c.mu.RUnlock()
	return e, ok
}

// put remembers a verified token. When the cache is full it first drops
// tokens that have expired by now, then arbitrary ones, down to three
// quarters of its size.
func (c *verifiedCache) put(sum [sha256.Size]byte, e *cachedClaims, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		for k, v := range c.entries {
			if now.After(v.claims.Expiry.Add(Leeway)) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < c.max*3/4 {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[sum] = e
}

// clone returns c with its own copies of every slice, so a caller changing
// the claims it got cannot change the cached ones.
func (c Claims) clone() Claims {
	c.AMR = slices.Clone(c.AMR)
	c.Scope.Providers = slices.Clone(c.Scope.Providers)
	c.Scope.Models = slices.Clone(c.Scope.Models)
	c.Scope.Paths = slices.Clone(c.Scope.Paths)
	c.Scope.Services = slices.Clone(c.Scope.Services)
	c.Scope.Secrets = slices.Clone(c.Scope.Secrets)
	c.Scope.Tools = slices.Clone(c.Scope.Tools)
	c.Scope.Limits = bytes.Clone(c.Scope.Limits)
	return c
}
