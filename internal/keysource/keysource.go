// Package keysource turns presented keygate keys into principals: it
// verifies a key (shape, checksum, existence by its HMAC), compiles the
// stored record, with its group's limits, into a principal.Principal once
// per version, and keeps the principals in one bounded cache that every
// part of the data plane shares. A change to a key (revocation,
// suspension, new scopes or limits) on this node applies to the very next
// request through Invalidate; on other nodes through the revocation log,
// which each node follows (internal/server), and at worst after the TTL.
//
// It is the boundary between the store and the data plane: the gateway
// sees only principals, never a stored row.
package keysource

import (
	"context"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/principal"
	"github.com/keygate/keygate/internal/store"
)

// Lookup finds stored keys; keygate's database store implements it. Both
// methods return an error wrapping store.ErrNotFound for no such key.
type Lookup interface {
	GetKeyByHash(ctx context.Context, hash []byte) (store.Key, error)
	GetKey(ctx context.Context, id string) (store.Key, error)
}

// GroupLimits returns a key group's limits (JSON) and whether it exists.
type GroupLimits func(name string) ([]byte, bool)

const (
	// DefaultTTL is how long a compiled principal is trusted before its
	// key is read again.
	DefaultTTL = 10 * time.Second
	// DefaultMaxEntries bounds the number of principals cached.
	DefaultMaxEntries = 1_000_000

	maxShards = 64
	// evictScan is how many entries an insert into a full shard inspects
	// looking for an expired one before evicting an arbitrary one.
	evictScan = 8
)

// Option configures a Source.
type Option func(*Source)

// WithTTL sets how long a principal is trusted before its key is read
// again (default 10s; each key's is up to a quarter shorter, so keys
// cached together are not renewed together). For one more TTL after that,
// the principal still answers while one background lookup renews it, so a
// busy key never waits on the store. A TTL of zero or less turns caching
// off.
func WithTTL(d time.Duration) Option { return func(s *Source) { s.ttl = d } }

// WithOutageGrace sets how long past its TTL and grace a cached principal
// still answers while the store cannot be reached (default 5 minutes; 0
// turns it off). A database outage then does not turn away the keys a
// node has served lately; no change can be made to them meanwhile, since
// every change goes through the store, and one made just before reached
// this node through the revocation log. A key the store says is gone is
// dropped at once, whatever the grace.
func WithOutageGrace(d time.Duration) Option { return func(s *Source) { s.outage = max(d, 0) } }

// DefaultOutageGrace is WithOutageGrace's default.
const DefaultOutageGrace = 5 * time.Minute

// WithMaxEntries bounds the number of cached principals (default
// 1,000,000). When the cache is full, expired entries and then arbitrary
// ones are evicted. Zero or less turns caching off.
func WithMaxEntries(n int) Option { return func(s *Source) { s.maxEntries = n } }

// WithGroups gives the source its keys' group limits (default: no group
// has limits).
func WithGroups(g GroupLimits) Option { return func(s *Source) { s.groups = g } }

// SecretGrants returns the vault secrets (names or patterns) a key may
// read at the gateway's /secrets endpoint, by key id; none by default.
type SecretGrants func(keyID string) []string

// WithSecretGrants gives the source the configured secret grants, compiled
// into each key's principal (authz.Grant.Secrets).
func WithSecretGrants(g SecretGrants) Option { return func(s *Source) { s.secrets = g } }

// WithLocation sets where quota and budget days and months start
// (default UTC).
func WithLocation(loc *time.Location) Option { return func(s *Source) { s.loc = loc } }

// Source verifies keygate keys and serves their principals. It is safe for
// concurrent use; the cached path takes only a read lock on one of several
// shards and does not allocate.
type Source struct {
	hasher     *apikey.Hasher
	lookup     Lookup
	groups     GroupLimits
	secrets    SecretGrants
	loc        *time.Location
	ttl        time.Duration
	outage     time.Duration // how long past its grace a principal serves while the store is down
	maxEntries int
	// storeDown is set when a lookup failed for want of the store (not
	// for an unknown key), and cleared by the next that succeeds.
	storeDown atomic.Bool

	shards   []shard
	mask     uint32
	perShard int
	ids      idIndex // key id -> hash, for the token path
	// gen counts invalidations. A lookup that raced with one does not
	// cache its result, which may predate the change.
	gen atomic.Uint64
}

type shard struct {
	mu      sync.RWMutex
	entries map[[32]byte]*entry
	byID    map[string][32]byte
	_       [64]byte // keep shards' locks on separate cache lines
}

type entry struct {
	p       *principal.Principal
	hash    [32]byte
	expires time.Time
	// refreshing is set while one background lookup renews an entry past its TTL.
	refreshing atomic.Bool
}

// New returns a Source that hashes keys with h and reads them through
// lookup.
func New(h *apikey.Hasher, lookup Lookup, opts ...Option) *Source {
	s := &Source{hasher: h, lookup: lookup, ttl: DefaultTTL, outage: DefaultOutageGrace, maxEntries: DefaultMaxEntries, loc: time.UTC}
	for _, o := range opts {
		o(s)
	}
	if s.groups == nil {
		s.groups = func(string) ([]byte, bool) { return nil, false }
	}
	if s.ttl <= 0 || s.maxEntries <= 0 {
		return s // caching off
	}
	n := 1
	for n < maxShards && n*2 <= s.maxEntries {
		n *= 2
	}
	s.shards = make([]shard, n)
	s.mask = uint32(n - 1)
	s.perShard = max(1, s.maxEntries/n)
	for i := range s.shards {
		s.shards[i].entries = make(map[[32]byte]*entry)
		s.shards[i].byID = make(map[string][32]byte)
	}
	return s
}

// Verify checks raw and returns its key's principal. The checks run in
// order: shape and checksum (apikey.ErrMalformed), existence
// (apikey.ErrUnknown), revocation (apikey.ErrRevoked), expiry at now
// (apikey.ErrExpired: a key is expired from the instant of its expiry).
// With ErrRevoked and ErrExpired the principal is returned too, so the
// caller can record which key was refused. A failing lookup returns its
// error wrapped, and the caller should refuse the request.
func (s *Source) Verify(ctx context.Context, raw string, now time.Time) (*principal.Principal, error) {
	p, err := apikey.Parse(raw)
	if err != nil {
		return nil, err
	}
	if p.Env == apikey.AdminEnv {
		return nil, apikey.ErrUnknown // admin credentials are not gateway keys
	}
	h := s.hasher.Hash(raw)
	pr, ok := s.cached(&h, now)
	if !ok {
		if pr, err = s.fetch(ctx, h, now); err != nil {
			if pr = s.stale(&h, now); pr == nil {
				return nil, err
			}
		}
	}
	return pr, usable(pr, now)
}

// stale returns the principal cached under h when the lookup that should
// have renewed it has just found the store down and it is within the
// outage grace: the request that discovers an outage is served like the
// ones after it, not refused.
func (s *Source) stale(h *[32]byte, now time.Time) *principal.Principal {
	if s.shards == nil || s.outage <= 0 || !s.storeDown.Load() {
		return nil
	}
	sh := s.shardFor(h)
	sh.mu.RLock()
	e := sh.entries[*h]
	sh.mu.RUnlock()
	if e == nil || subtle.ConstantTimeCompare(e.hash[:], h[:]) != 1 || !now.Before(e.expires.Add(s.ttl+s.outage)) {
		return nil
	}
	return e.p
}

// ByID returns the principal of the key with id, as the access tokens
// exchanged for it stand for it. It answers apikey.ErrUnknown for no such
// key, and ErrRevoked or ErrExpired, with the principal, like Verify.
func (s *Source) ByID(ctx context.Context, id string, now time.Time) (*principal.Principal, error) {
	if h, ok := s.ids.get(id); ok {
		if pr, ok := s.cached(&h, now); ok && pr.ID == id {
			return pr, usable(pr, now)
		}
	}
	gen := s.gen.Load()
	k, err := s.lookup.GetKey(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		s.storeDown.Store(false)
		return nil, apikey.ErrUnknown
	}
	if err != nil {
		if ctx.Err() == nil || errors.Is(err, context.DeadlineExceeded) {
			s.storeDown.Store(true)
		}
		if h, ok := s.ids.get(id); ok {
			if pr := s.stale(&h, now); pr != nil && pr.ID == id {
				return pr, usable(pr, now)
			}
		}
		return nil, fmt.Errorf("keysource: look up key: %w", err)
	}
	s.storeDown.Store(false)
	var h [32]byte
	copy(h[:], k.Hash)
	pr := s.insert(&h, k, now, gen)
	return pr, usable(pr, now)
}

// usable refuses a revoked or expired key.
func usable(p *principal.Principal, now time.Time) error {
	switch {
	case p.Revoked:
		return apikey.ErrRevoked
	case p.Expired(now):
		return apikey.ErrExpired
	}
	return nil
}

// Invalidate drops the principal of key keyID, so a change made on this
// node applies to the very next request.
func (s *Source) Invalidate(keyID string) {
	s.gen.Add(1)
	s.ids.del(keyID)
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		if h, ok := sh.byID[keyID]; ok {
			delete(sh.entries, h)
			delete(sh.byID, keyID)
		}
		sh.mu.Unlock()
	}
}

// InvalidateAll drops every principal, after a change that may touch many
// keys at once (a group's limits).
func (s *Source) InvalidateAll() {
	s.gen.Add(1)
	s.ids.clear()
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		clear(sh.entries)
		clear(sh.byID)
		sh.mu.Unlock()
	}
}

// Len returns the number of principals cached.
func (s *Source) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		n += len(sh.entries)
		sh.mu.RUnlock()
	}
	return n
}

func (s *Source) shardFor(h *[32]byte) *shard {
	return &s.shards[binary.LittleEndian.Uint32(h[:4])&s.mask]
}

func (s *Source) cached(h *[32]byte, now time.Time) (*principal.Principal, bool) {
	if s.shards == nil {
		return nil, false
	}
	sh := s.shardFor(h)
	sh.mu.RLock()
	e := sh.entries[*h]
	sh.mu.RUnlock()
	if e == nil || subtle.ConstantTimeCompare(e.hash[:], h[:]) != 1 {
		return nil, false
	}
	if now.Before(e.expires) {
		return e.p, true
	}
	// Past its TTL but within one more TTL, the entry still answers while
	// a single background lookup renews it, so busy keys never wait on the
	// store. Older entries are read again before the request goes on.
	// While the store is down, it answers for the outage grace more.
	if now.Before(e.expires.Add(s.ttl)) || (s.storeDown.Load() && now.Before(e.expires.Add(s.ttl+s.outage))) {
		if e.refreshing.CompareAndSwap(false, true) {
			go s.refresh(*h, e, now)
		}
		return e.p, true
	}
	return nil, false
}

// StoreDown reports whether the last lookup failed for want of the store.
func (s *Source) StoreDown() bool { return s.storeDown.Load() }

// refresh renews a cached entry in the background. A key that has gone
// from the store is dropped; on a failed lookup the stale entry stays
// until its grace runs out, and a later request tries again.
func (s *Source) refresh(h [32]byte, e *entry, now time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.fetch(ctx, h, now); err != nil {
		if errors.Is(err, apikey.ErrUnknown) {
			s.Invalidate(e.p.ID)
			return
		}
		e.refreshing.Store(false)
	}
}

// fetch reads the key from the store, compiles it and caches it. It takes
// h by value so the cached path keeps h on the stack.
func (s *Source) fetch(ctx context.Context, h [32]byte, now time.Time) (*principal.Principal, error) {
	gen := s.gen.Load()
	k, err := s.lookup.GetKeyByHash(ctx, h[:])
	if errors.Is(err, store.ErrNotFound) {
		s.storeDown.Store(false)
		return nil, apikey.ErrUnknown
	}
	if err != nil {
		if ctx.Err() == nil || errors.Is(err, context.DeadlineExceeded) {
			s.storeDown.Store(true)
		}
		return nil, fmt.Errorf("keysource: look up key: %w", err)
	}
	s.storeDown.Store(false)
	if subtle.ConstantTimeCompare(k.Hash, h[:]) != 1 {
		return nil, apikey.ErrUnknown
	}
	return s.insert(&h, k, now, gen), nil
}

// insert compiles k and caches its principal, unless an invalidation ran
// since gen was read (the record may predate it): then the principal is
// returned uncached.
func (s *Source) insert(h *[32]byte, k store.Key, now time.Time, gen uint64) *principal.Principal {
	groupLimits, _ := s.groups(k.Group)
	pr := Compile(k, groupLimits, s.loc)
	if s.secrets != nil {
		pr.Grant.Secrets = s.secrets(k.ID)
	}
	if s.shards == nil {
		return pr
	}
	// Keys first seen together must not all expire together: each one's
	// TTL is shortened by up to a quarter, by an amount taken from its own
	// hash, so renewals spread out instead of arriving in a burst.
	jitter := time.Duration(binary.LittleEndian.Uint32(h[4:8])) % (s.ttl/4 + 1)
	e := &entry{p: pr, hash: *h, expires: now.Add(s.ttl - jitter)}
	sh := s.shardFor(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if s.gen.Load() != gen {
		return pr
	}
	if old, ok := sh.byID[k.ID]; ok && old != *h {
		delete(sh.entries, old)
	}
	if _, ok := sh.entries[*h]; !ok && len(sh.entries) >= s.perShard {
		sh.evictOne(now, &s.ids)
	}
	sh.entries[*h] = e
	sh.byID[k.ID] = *h
	s.ids.set(k.ID, *h)
	return pr
}

// evictOne removes an expired entry if one of the first few it sees is
// expired, and otherwise an arbitrary entry. Map iteration starts at a
// random position, so repeated evictions spread over the shard.
func (sh *shard) evictOne(now time.Time, ids *idIndex) {
	var victim [32]byte
	seen := 0
	for h, e := range sh.entries {
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
	if e := sh.entries[victim]; e != nil && sh.byID[e.p.ID] == victim {
		delete(sh.byID, e.p.ID)
		ids.del(e.p.ID)
	}
	delete(sh.entries, victim)
}

// idIndex maps key ids to the hashes their principals are cached under,
// so the token path, which knows only the id, finds them in one lookup.
// It holds an id for as long as its principal is cached.
type idIndex struct {
	mu sync.RWMutex
	m  map[string][32]byte
}

func (x *idIndex) get(id string) ([32]byte, bool) {
	x.mu.RLock()
	h, ok := x.m[id]
	x.mu.RUnlock()
	return h, ok
}

func (x *idIndex) set(id string, h [32]byte) {
	x.mu.Lock()
	if x.m == nil {
		x.m = map[string][32]byte{}
	}
	x.m[id] = h
	x.mu.Unlock()
}

func (x *idIndex) del(id string) {
	x.mu.Lock()
	delete(x.m, id)
	x.mu.Unlock()
}

func (x *idIndex) clear() {
	x.mu.Lock()
	clear(x.m)
	x.mu.Unlock()
}
