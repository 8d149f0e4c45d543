package scrub

import (
	"encoding/binary"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/keygate/keygate/internal/secret"
)

// Cache keeps the Sets of the credentials in use, so the data path builds
// each Set once instead of on every call (see BenchmarkForRequest). It is
// safe for concurrent use. Entries are found by the credential strings
// themselves (length-prefixed, in a canonical order), kept only in memory
// like the Sets' needles, which are those same strings in other forms;
// when full, an arbitrary entry makes room, so a rotated key's Set does
// not stay forever.
type Cache struct {
	mu   sync.Mutex
	max  int
	sets map[string]*Set
}

// NewCache returns a Cache of at most size Sets (at least 1). A Set takes
// about 20 KiB; size the cache for the number of upstream credentials.
func NewCache(size int) *Cache {
	return &Cache{max: max(1, size), sets: make(map[string]*Set)}
}

// ForRequest returns the Set ForRequest would build for req and keys,
// from the cache when the same credentials went out before.
func (c *Cache) ForRequest(req *http.Request, keys ...secret.String) *Set {
	creds := requestCredentials(req, keys)
	if len(creds) == 0 {
		return New()
	}
	var arr [512]byte
	id := fingerprint(arr[:0], creds)
	c.mu.Lock()
	s, ok := c.sets[string(id)] // no allocation for the lookup
	c.mu.Unlock()
	if ok {
		return s
	}
	s = New(creds...)
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.sets[string(id)]; ok {
		return prev // built at the same time by another call
	}
	for k := range c.sets {
		if len(c.sets) < c.max {
			break
		}
		delete(c.sets, k)
	}
	c.sets[string(id)] = s
	return s
}

// Len returns the number of Sets held.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sets)
}

// requestCredentials lists each non-empty key, and each header value of
// req that carries one of them, raw or inside Basic's base64.
func requestCredentials(req *http.Request, keys []secret.String) []Credential {
	var creds []Credential
	for _, k := range keys {
		if k.IsZero() {
			continue
		}
		creds = append(creds, Credential{Key: k})
		if req == nil {
			continue
		}
		raw := k.Reveal()
		for _, vals := range req.Header {
			for _, v := range vals {
				if v != raw && (strings.Contains(v, raw) || (len(v) > 6 && strings.EqualFold(v[:6], "basic ") && strings.Contains(basicUserPass(v), raw))) {
					creds = append(creds, Credential{Key: k, Header: secret.New(v)})
				}
			}
		}
	}
	return creds
}

// fingerprint appends to buf what identifies a list of credentials
// regardless of order: their length-prefixed strings, sorted. It sorts
// creds.
func fingerprint(buf []byte, creds []Credential) []byte {
	if len(creds) > 1 {
		slices.SortFunc(creds, func(a, b Credential) int {
			if c := strings.Compare(a.Key.Reveal(), b.Key.Reveal()); c != 0 {
				return c
			}
			return strings.Compare(a.Header.Reveal(), b.Header.Reveal())
		})
	}
	for _, c := range creds {
		k, h := c.Key.Reveal(), c.Header.Reveal()
		buf = binary.AppendUvarint(buf, uint64(len(k)))
		buf = append(buf, k...)
		buf = binary.AppendUvarint(buf, uint64(len(h)))
		buf = append(buf, h...)
	}
	return buf
}
