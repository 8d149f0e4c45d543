package apikey

import (
	"context"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/internal/store"
)

// ErrUnknown means a well-formed key matches no key keygate has issued.
var ErrUnknown = errors.New("apikey: unknown keygate key")

// ErrRevoked means the key was revoked.
var ErrRevoked = errors.New("apikey: keygate key has been revoked")

// ErrExpired means the key is past its expiry time.
var ErrExpired = errors.New("apikey: keygate key has expired")

// Lookup finds a stored key by its hash. keygate's database store implements
// it. It returns an error wrapping store.ErrNotFound when no key has that hash.
type Lookup interface {
	GetKeyByHash(ctx context.Context, hash []byte) (store.Key, error)
}

const (
	// DefaultTTL is how long Verify trusts a key record it has read.
	DefaultTTL = 10 * time.Second
	// DefaultMaxEntries bounds the number of key records Verify caches.
	DefaultMaxEntries = 1_000_000

	maxShards = 64
	// evictScan is how many entries an insert into a full shard inspects
	// looking for an expired one before evicting an arbitrary one.
	evictScan = 8
)

// Option configures a Verifier.
type Option func(*Verifier)

// WithTTL sets how long a key record read from the store is trusted before
// it is read again (default 10s; each key's is up to a quarter shorter, so
// keys cached together are not renewed together). For one more TTL after that, the record
// still answers while one background lookup renews it, so a busy key never
// waits on the store. Revocations made on another keygate node therefore
// take effect once the TTL has passed and that lookup returns; on this node,
// Invalidate makes them immediate. A TTL of zero or less turns caching off.
func WithTTL(d time.Duration) Option {
	return func(v *Verifier) { v.ttl = d }
}

// WithMaxEntries bounds the number of cached key records (default 1,000,000).
// When the cache is full, expired entries and then arbitrary ones are
// evicted. Zero or less turns caching off.
func WithMaxEntries(n int) Option {
	return func(v *Verifier) { v.maxEntries = n }
}

// Verifier checks presented keygate keys. Only keys found in the store are
// cached, keyed by their hash, for the TTL; unknown keys are never cached, so
// a newly issued key works at once. It is safe for concurrent use, and the
// cached path takes only a read lock on one of several shards.
type Verifier struct {
	hasher     *Hasher
	lookup     Lookup
	ttl        time.Duration
	maxEntries int

	shards   []shard
	mask     uint32
	perShard int
	// gen counts Invalidate calls. A lookup that raced with one does not
	// cache its result, which may predate the revocation.
	gen atomic.Uint64
}

type shard struct {
	mu      sync.RWMutex
	entries map[[32]byte]*entry
	byID    map[string][32]byte
	_       [64]byte // keep shards' locks on separate cache lines
}

type entry struct {
	key     store.Key
	expires time.Time
	// refreshing is set while one background lookup renews a record past its TTL.
	refreshing atomic.Bool
}

// NewVerifier returns a Verifier that hashes keys with h and reads them
// through lookup.
func NewVerifier(h *Hasher, lookup Lookup, opts ...Option) *Verifier {
	v := &Verifier{hasher: h, lookup: lookup, ttl: DefaultTTL, maxEntries: DefaultMaxEntries}
	for _, o := range opts {
		o(v)
	}
	if v.ttl <= 0 || v.maxEntries <= 0 {
		return v // caching off
	}
	n := 1
	for n < maxShards && n*2 <= v.maxEntries {
		n *= 2
	}
	v.shards = make([]shard, n)
	v.mask = uint32(n - 1)
	v.perShard = v.maxEntries / n
	for i := range v.shards {
		v.shards[i].entries = make(map[[32]byte]*entry)
		v.shards[i].byID = make(map[string][32]byte)
	}
	return v
}

// Verify checks raw and returns its key record. The checks run in order:
// shape and checksum (ErrMalformed), existence (ErrUnknown), revocation
// (ErrRevoked), expiry at now (ErrExpired: a key is expired from the instant
// of its ExpiresAt). With ErrRevoked and ErrExpired the key record is
// returned too, so the caller can record which key was refused. A failing
// lookup returns its error wrapped, and the caller should refuse the request.
//
// The returned record may share slices with the cache: callers must not
// modify it.
func (v *Verifier) Verify(ctx context.Context, raw string, now time.Time) (store.Key, error) {
	p, err := Parse(raw)
	if err != nil {
		return store.Key{}, err
	}
	if p.Env == AdminEnv {
		return store.Key{}, ErrUnknown // admin credentials are not gateway keys
	}
	h := v.hasher.Hash(raw)
	k, ok := v.cached(&h, now)
	if !ok {
		if k, err = v.fetch(ctx, h, now); err != nil {
			return store.Key{}, err
		}
	}
	if subtle.ConstantTimeCompare(k.Hash, h[:]) != 1 {
		return store.Key{}, ErrUnknown
	}
	if k.RevokedAt != nil {
		return k, ErrRevoked
	}
	if k.ExpiresAt != nil && !now.Before(*k.ExpiresAt) {
		return k, ErrExpired
	}
	return k, nil
}

// Invalidate drops cached records of key keyID, so a revocation or change
// made on this node applies to the very next request.
func (v *Verifier) Invalidate(keyID string) {
	v.gen.Add(1)
	for i := range v.shards {
		s := &v.shards[i]
		s.mu.Lock()
		if h, ok := s.byID[keyID]; ok {
			delete(s.entries, h)
			delete(s.byID, keyID)
		}
		s.mu.Unlock()
	}
}

func (v *Verifier) shardFor(h *[32]byte) *shard {
	return &v.shards[binary.LittleEndian.Uint32(h[:4])&v.mask]
}

func (v *Verifier) cached(h *[32]byte, now time.Time) (store.Key, bool) {
	if v.shards == nil {
		return store.Key{}, false
	}
	s := v.shardFor(h)
	s.mu.RLock()
	e := s.entries[*h]
	s.mu.RUnlock()
	if e == nil {
		return store.Key{}, false
	}
	if now.Before(e.expires) {
		return e.key, true
	}
	// Past its TTL but within one more TTL, the record still answers while a
	// single background lookup renews it, so busy keys never wait on the
	// store. Older records are read again before the request goes on.
	if now.Before(e.expires.Add(v.ttl)) {
		if e.refreshing.CompareAndSwap(false, true) {
			go v.refresh(*h, e, now)
		}
		return e.key, true
	}
	return store.Key{}, false
}

// refresh renews a cached record in the background. A key that has gone
// from the store is dropped; on a failed lookup the stale record stays until
// its grace runs out, and a later request tries again.
func (v *Verifier) refresh(h [32]byte, e *entry, now time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := v.fetch(ctx, h, now); err != nil {
		if errors.Is(err, ErrUnknown) {
			v.Invalidate(e.key.ID)
			return
		}
		e.refreshing.Store(false)
	}
}

// fetch reads the key from the store and caches it. It takes h by value so
// the cached path keeps h on the stack.
func (v *Verifier) fetch(ctx context.Context, h [32]byte, now time.Time) (store.Key, error) {
	gen := v.gen.Load()
	k, err := v.lookup.GetKeyByHash(ctx, h[:])
	if errors.Is(err, store.ErrNotFound) {
		return store.Key{}, ErrUnknown
	}
	if err != nil {
		return store.Key{}, fmt.Errorf("apikey: look up key: %w", err)
	}
	if subtle.ConstantTimeCompare(k.Hash, h[:]) != 1 {
		return store.Key{}, ErrUnknown
	}
	v.insert(&h, k, now, gen)
	return k, nil
}

func (v *Verifier) insert(h *[32]byte, k store.Key, now time.Time, gen uint64) {
	if v.shards == nil {
		return
	}
	// Keys first seen together must not all expire together: each one's
	// TTL is shortened by up to a quarter, by an amount taken from its own
	// hash, so renewals spread out instead of arriving in a burst.
	jitter := time.Duration(binary.LittleEndian.Uint32(h[4:8])) % (v.ttl/4 + 1)
	e := &entry{key: k, expires: now.Add(v.ttl - jitter)}
	s := v.shardFor(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	if v.gen.Load() != gen {
		return // an Invalidate ran during the lookup; k may be stale
	}
	if old, ok := s.byID[k.ID]; ok && old != *h {
		delete(s.entries, old)
	}
	if _, ok := s.entries[*h]; !ok && len(s.entries) >= v.perShard {
		s.evictOne(now)
	}
	s.entries[*h] = e
	s.byID[k.ID] = *h
}

// evictOne removes an expired entry if one of the first few it sees is
// expired, and otherwise an arbitrary entry. Map iteration starts at a
// random position, so repeated evictions spread over the shard.
func (s *shard) evictOne(now time.Time) {
	var victim [32]byte
	seen := 0
	for h, e := range s.entries {
		if seen == 0 || !now.Before(e.expires) {
			victim = h
		}
		seen++
		if seen >= evictScan || !now.Before(e.expires) {
			break
		}
	}
	if seen == 0 {
		return
	}
	if e := s.entries[victim]; e != nil && s.byID[e.key.ID] == victim {
		delete(s.byID, e.key.ID)
	}
	delete(s.entries, victim)
}
