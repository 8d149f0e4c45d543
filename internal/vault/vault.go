// Package vault keeps keygate's secrets encrypted at rest: the upstream
// provider credentials, the secrets users store, and keygate's own system
// secrets.
//
// It uses envelope encryption. Every version of a record is sealed with
// AES-256-GCM under its own random data key (DEK); the data key is stored
// wrapped by a key-encryption key (KEK): the master key file, a
// passphrase-derived key, or a key in a cloud KMS. The associated data binds
// each ciphertext to its format, record id and version, so a ciphertext
// copied to another record or version does not open. Any failure is an error
// naming the record and version; the vault never returns garbage and never
// puts key material in an error.
//
// A Vault holds a key ring: the current KEK, which wraps every new data key,
// and older KEKs that still unwrap records not yet rewrapped by a rotation
// (see Rotator). Unwrapped data keys are cached in memory, so a KMS is
// called once per data key, not once per read.
package vault

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
)

// Storage persists sealed record versions. keygate's database store
// implements it.
type Storage interface {
	// PutSecretVersion stores a new version; it returns an error wrapping
	// store.ErrConflict when that version of the record already exists.
	PutSecretVersion(ctx context.Context, v store.SecretVersion) error
	// GetSecretVersion returns one version, or an error wrapping store.ErrNotFound.
	GetSecretVersion(ctx context.Context, id string, version int) (store.SecretVersion, error)
	// LatestSecretVersion returns the highest version, or an error wrapping
	// store.ErrNotFound when the record has none.
	LatestSecretVersion(ctx context.Context, id string) (store.SecretVersion, error)
	// ListSecretVersions returns every version of a record, oldest first.
	ListSecretVersions(ctx context.Context, id string) ([]store.SecretVersion, error)
}

// putAttempts bounds how often Put retries when concurrent writers race for
// the same version number.
const putAttempts = 8

// maxEnsureSize bounds the size of a generated system secret.
const maxEnsureSize = 1024

// Option configures a Vault.
type Option func(*Vault)

// WithPrevious adds KEKs that only unwrap: records sealed under them still
// open until a rotation has rewrapped them. Like the KEK given to New, they
// count as supplied by the operator (see Supplied).
func WithPrevious(keks ...KEK) Option {
	return func(v *Vault) {
		for _, k := range keks {
			v.ring[k.ID()] = k
			v.supplied[k.ID()] = true
		}
	}
}

// WithKEKOpener lets the vault open a KEK it meets in the database but was
// not given, such as the target of a rotation another keygate node started:
// open turns a KEK URL, found in a locator record that a KEK the vault
// holds vouches for, into a KEK (see locator.go). Such URLs never hold key
// material.
func WithKEKOpener(open func(ctx context.Context, url string) (KEK, error)) Option {
	return func(v *Vault) { v.openURL = open }
}

// WithReadCache makes GetCached serve a record's latest version from memory
// for up to ttl after reading it from storage. Zero (the default) disables it.
func WithReadCache(ttl time.Duration) Option {
	return func(v *Vault) { v.readTTL = ttl }
}

// WithDEKCacheSize bounds how many unwrapped data keys the vault keeps in
// memory (default 4096). Zero disables the cache, so every open unwraps
// (calls the KMS).
func WithDEKCacheSize(n int) Option {
	return func(v *Vault) { v.deks = newDEKCache(n) }
}

// Vault seals and opens versioned secrets over a Storage. It is safe for
// concurrent use.
type Vault struct {
	st      Storage
	openURL func(ctx context.Context, url string) (KEK, error)
	readTTL time.Duration
	deks    *dekCache

	current  atomic.Pointer[keyEntry]
	mu       sync.RWMutex
	ring     map[string]KEK  // every KEK this vault can unwrap with, by ID
	supplied map[string]bool // IDs of the KEKs the operator configured (New, WithPrevious)
	urls     map[string]secret.String
	reads    sync.Map // record id -> *cachedRead, for GetCached
	now      func() time.Time
}

type keyEntry struct{ kek KEK }

type cachedRead struct {
	sv      store.SecretVersion
	expires time.Time
}

// New returns a Vault that seals new versions under kek and stores them in st.
func New(kek KEK, st Storage, opts ...Option) *Vault {
	v := &Vault{
		st:       st,
		deks:     newDEKCache(defaultDEKCacheSize),
		ring:     map[string]KEK{kek.ID(): kek},
		supplied: map[string]bool{kek.ID(): true},
		urls:     map[string]secret.String{},
		now:      time.Now,
	}
	v.current.Store(&keyEntry{kek})
	for _, o := range opts {
		o(v)
	}
	return v
}

// KEKID returns the ID of the KEK new versions are sealed under.
func (v *Vault) KEKID() string { return v.Current().ID() }

// Current returns the KEK new data keys are wrapped under.
func (v *Vault) Current() KEK { return v.current.Load().kek }

// SetCurrent makes kek the KEK new data keys are wrapped under; the previous
// one stays in the ring to unwrap older records.
func (v *Vault) SetCurrent(kek KEK) {
	v.AddKEK(kek)
	v.current.Store(&keyEntry{kek})
}

// holdWrites makes the vault wrap nothing new: the vault was rotated to KEK
// id, which this keygate cannot open (err says why), and sealing new data
// keys under the KEK being retired would leave them for the old key to
// open. Records under KEKs in the ring still open. SetCurrent with the KEK
// ends the hold.
func (v *Vault) holdWrites(id string, err error) {
	v.current.Store(&keyEntry{unavailableKEK{id: id, err: err}})
}

// held reports whether the vault is holding writes (see holdWrites).
func (v *Vault) held() bool {
	_, ok := v.Current().(unavailableKEK)
	return ok
}

// unavailableKEK stands in for the current KEK while the vault holds writes.
type unavailableKEK struct {
	id  string
	err error
}

func (k unavailableKEK) ID() string { return k.id }

func (k unavailableKEK) Wrap(context.Context, []byte) ([]byte, error) {
	return nil, fmt.Errorf("vault: keygate seals nothing new until it can open the vault's current KEK: %w", k.err)
}

func (k unavailableKEK) Unwrap(context.Context, []byte) ([]byte, error) {
	return nil, fmt.Errorf("vault: %w: %w", k.err, ErrWrongKEK)
}

// Supplied reports whether the operator configured the KEK with the given
// ID (as kek or kek_previous), rather than keygate finding it through a
// locator record.
func (v *Vault) Supplied(id string) bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.supplied[id]
}

// AddKEK adds kek to the ring, to unwrap records sealed under it.
func (v *Vault) AddKEK(kek KEK) {
	v.mu.Lock()
	v.ring[kek.ID()] = kek
	v.mu.Unlock()
}

// SetKEKURL records, in memory, where the KEK with the given ID comes from,
// so a rotation can leave a locator for other keygate nodes when the URL
// holds no key material (see storableKEKURL).
func (v *Vault) SetKEKURL(id string, url secret.String) {
	v.mu.Lock()
	v.urls[id] = url
	v.mu.Unlock()
}

func (v *Vault) kekURL(id string) (secret.String, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	u, ok := v.urls[id]
	return u, ok
}

// KEK returns the ring's KEK with the given ID.
func (v *Vault) KEK(id string) (KEK, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	k, ok := v.ring[id]
	return k, ok
}

// Put stores plaintext as a new version of record id (version 1 for a new
// record) and returns that version number. Earlier versions stay readable
// with GetVersion. When another writer adds a version at the same moment,
// Put retries with the next number.
func (v *Vault) Put(ctx context.Context, id string, plaintext secret.String) (int, error) {
	return v.putUnder(ctx, v.Current(), id, plaintext, nil)
}

// putUnder stores plaintext as the next version of record id, its data key
// wrapped by kek.
func (v *Vault) putUnder(ctx context.Context, kek KEK, id string, plaintext secret.String, destroyAt *time.Time) (int, error) {
	pt := []byte(plaintext.Reveal())
	defer clear(pt)
	defer v.reads.Delete(id)
	for attempt := 0; attempt < putAttempts; attempt++ {
		next := 1
		latest, err := v.st.LatestSecretVersion(ctx, id)
		switch {
		case err == nil:
			next = latest.Version + 1
		case !errors.Is(err, store.ErrNotFound):
			return 0, fmt.Errorf("vault: record %q: read latest version: %w", id, err)
		}
		sv, err := SealVersion(ctx, kek, id, next, pt)
		if err != nil {
			return 0, err
		}
		sv.CreatedAt = v.now().UTC()
		sv.DestroyAt = destroyAt
		err = v.st.PutSecretVersion(ctx, sv)
		if err == nil {
			return next, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return 0, fmt.Errorf("vault: record %q: store version %d: %w", id, next, err)
		}
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("vault: record %q: %w", id, err)
		}
	}
	return 0, fmt.Errorf("vault: record %q: %d concurrent writers kept taking the next version; try again: %w", id, putAttempts, store.ErrConflict)
}

// Get opens the latest version of record id, read from storage, and returns
// it with its version number. A record with no versions gives an error
// wrapping store.ErrNotFound.
func (v *Vault) Get(ctx context.Context, id string) (secret.String, int, error) {
	sv, err := v.st.LatestSecretVersion(ctx, id)
	if err != nil {
		return secret.String{}, 0, fmt.Errorf("vault: record %q: read latest version: %w", id, err)
	}
	v.reads.Store(id, &cachedRead{sv: sv, expires: v.now().Add(v.readTTL)})
	s, err := v.open(ctx, id, 0, sv)
	if err != nil {
		return secret.String{}, 0, err
	}
	return s, sv.Version, nil
}

// GetCached is Get for hot paths that can accept a value up to the read
// cache's TTL old (WithReadCache): within it, a read costs a map lookup and
// one AES-GCM open, with no database or KMS call. Writes through this Vault
// take effect at once; writes by other keygate nodes within the TTL.
// Without a read cache it is Get.
func (v *Vault) GetCached(ctx context.Context, id string) (secret.String, int, error) {
	if v.readTTL > 0 {
		if c, ok := v.reads.Load(id); ok {
			cr := c.(*cachedRead)
			if v.now().Before(cr.expires) {
				s, err := v.open(ctx, id, 0, cr.sv)
				if err == nil {
					return s, cr.sv.Version, nil
				}
				v.reads.Delete(id)
			}
		}
	}
	return v.Get(ctx, id)
}

// GetVersion opens one version of record id. A missing version gives an
// error wrapping store.ErrNotFound.
func (v *Vault) GetVersion(ctx context.Context, id string, version int) (secret.String, error) {
	sv, err := v.st.GetSecretVersion(ctx, id, version)
	if err != nil {
		return secret.String{}, fmt.Errorf("vault: record %q: read version %d: %w", id, version, err)
	}
	return v.open(ctx, id, version, sv)
}

// Forget drops record id from the read cache, after it was deleted or
// changed outside Put.
func (v *Vault) Forget(id string) { v.reads.Delete(id) }

// Ensure returns the latest version of record id, first creating version 1
// from n random bytes when the record does not exist. keygate uses it for
// system secrets such as the key pepper. When several processes start at
// once, they all end up with the same value.
func (v *Vault) Ensure(ctx context.Context, id string, n int) (secret.String, error) {
	if n < 1 || n > maxEnsureSize {
		return secret.String{}, fmt.Errorf("vault: record %q: a generated secret must be 1 to %d bytes, got %d", id, maxEnsureSize, n)
	}
	s, _, err := v.Get(ctx, id)
	if err == nil || !errors.Is(err, store.ErrNotFound) {
		return s, err
	}
	buf := make([]byte, n)
	defer clear(buf)
	if _, err := rand.Read(buf); err != nil {
		return secret.String{}, fmt.Errorf("vault: record %q: generate secret: %w", id, err)
	}
	sv, err := SealVersion(ctx, v.Current(), id, 1, buf)
	if err != nil {
		return secret.String{}, err
	}
	sv.CreatedAt = v.now().UTC()
	if err := v.st.PutSecretVersion(ctx, sv); err != nil && !errors.Is(err, store.ErrConflict) {
		return secret.String{}, fmt.Errorf("vault: record %q: store version 1: %w", id, err)
	}
	// Read back rather than trust buf: another process may have stored
	// version 1 first, and every process must agree on the value.
	s, _, err = v.Get(ctx, id)
	return s, err
}

// open decrypts sv after checking the store returned the record asked for.
// version 0 means "the latest", which matches any version.
func (v *Vault) open(ctx context.Context, id string, version int, sv store.SecretVersion) (secret.String, error) {
	if sv.ID != id || (version != 0 && sv.Version != version) {
		return secret.String{}, fmt.Errorf("vault: asked the store for record %q but it returned record %q version %d; check the database: %w",
			id, sv.ID, sv.Version, ErrTampered)
	}
	pt, err := v.Open(ctx, sv)
	if err != nil {
		return secret.String{}, err
	}
	defer clear(pt)
	return secret.New(string(pt)), nil
}

// Open decrypts a stored version with the ring's KEK for it, using the data
// key cache. The caller should clear the returned bytes when done.
func (v *Vault) Open(ctx context.Context, sv store.SecretVersion) ([]byte, error) {
	if err := checkSealed(sv); err != nil {
		return nil, err
	}
	aead, err := v.dataKey(ctx, sv)
	if err != nil {
		return nil, err
	}
	return openWith(aead, sv)
}

// dataKey returns the AEAD for sv's data key, from the cache or by
// unwrapping it with the ring's KEK.
func (v *Vault) dataKey(ctx context.Context, sv store.SecretVersion) (aeadOpener, error) {
	ck := dekCacheKey(sv.KEKID, sv.WrappedDEK)
	if a := v.deks.get(ck); a != nil {
		return a, nil
	}
	kek, err := v.kekFor(ctx, sv)
	if err != nil {
		return nil, err
	}
	a, err := unwrapDataKey(ctx, kek, sv)
	if err != nil {
		return nil, err
	}
	v.deks.put(ck, a)
	return a, nil
}

// kekFor finds the KEK that wrapped sv's data key: in the ring, or, failing
// that, by following a locator sealed under a KEK the ring has.
func (v *Vault) kekFor(ctx context.Context, sv store.SecretVersion) (KEK, error) {
	if k, ok := v.KEK(sv.KEKID); ok {
		return k, nil
	}
	if v.openURL != nil {
		k, err := v.Resolve(ctx, sv.KEKID)
		if err == nil {
			return k, nil
		}
		return nil, fmt.Errorf("vault: record %q version %d was sealed under KEK %q, which keygate cannot open: %v: %w",
			sv.ID, sv.Version, sv.KEKID, err, ErrWrongKEK)
	}
	return nil, fmt.Errorf("vault: record %q version %d was sealed under KEK %q, but keygate is running with KEK %q; start keygate with the key that sealed it (kek, or kek_previous during a rotation): %w",
		sv.ID, sv.Version, sv.KEKID, v.KEKID(), ErrWrongKEK)
}
