package token

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
)

// AlgEdDSA is the only signing algorithm keygate uses and accepts.
const AlgEdDSA = "EdDSA"

const (
	signingKeyPrefix = "system/signing-key/"
	// keyChainRecord holds the secret that key IDs are derived from, so
	// every keygate node rotating at once picks the same next key ID and the
	// IDs differ between installs.
	keyChainRecord = "system/signing-key-chain"
	kidLen         = 16 // base64url characters: 96 bits
	// clockSkew is how far ahead of a node's clock a key created by another
	// node may start and still be treated as signing now.
	clockSkew = time.Minute
)

// SigningKeyRecord is the vault record holding the private half (the raw
// 32-byte Ed25519 seed) of the signing key with the given kid.
func SigningKeyRecord(kid string) string { return signingKeyPrefix + kid }

// KeyStore persists the public halves of signing keys and their schedule.
// keygate's database store implements it.
type KeyStore interface {
	// PutSigningKey records a key; it returns an error wrapping
	// store.ErrConflict when a key with that kid exists.
	PutSigningKey(ctx context.Context, k store.SigningKey) error
	// ListSigningKeys returns every signing key, oldest first.
	ListSigningKeys(ctx context.Context) ([]store.SigningKey, error)
}

// SecretVault keeps the private halves of signing keys, encrypted. keygate's
// vault implements it.
type SecretVault interface {
	// Ensure returns record id, first creating it from n random bytes when
	// it does not exist; concurrent callers all get the same value.
	Ensure(ctx context.Context, id string, n int) (secret.String, error)
	// Get returns the latest version of record id and its version number.
	Get(ctx context.Context, id string) (secret.String, int, error)
}

// KeyringOptions configures a Keyring. Zero fields take the defaults.
type KeyringOptions struct {
	// RotateEvery is how long each signing key signs new tokens
	// (DefaultRotateEvery).
	RotateEvery time.Duration
	// Overlap is how long before a key stops signing its successor is
	// created, and how long a key stays published past the expiry of the
	// last token it could have signed (DefaultOverlap).
	Overlap time.Duration
	// RefreshInterval is the least time between two reloads caused by a
	// token naming a key this node has not seen (DefaultRefreshInterval).
	RefreshInterval time.Duration
	// Now is the clock used for the key set and reload rate limiting
	// (time.Now).
	Now func() time.Time
}

// Keyring holds keygate's token-signing keys: the one that signs now, and
// every key still published so tokens it signed verify. Several keygate
// nodes share one key set through the store and vault. It is safe for
// concurrent use.
type Keyring struct {
	st           KeyStore
	vault        SecretVault
	rotateEvery  time.Duration
	overlap      time.Duration
	refreshEvery time.Duration
	now          func() time.Time

	mu          sync.Mutex // serialises loads and rotations
	ring        atomic.Pointer[ring]
	lastAttempt atomic.Int64 // when the ring was last (re)loaded or tried, in Unix nanoseconds
}

// ring is one immutable view of the key set.
type ring struct {
	keys  []*ringKey // in store order: oldest first
	byKID map[string]*ringKey
	jwks  atomic.Pointer[jwksDoc]
}

// ringKey is one key of the ring. Its signer is loaded from the vault the
// first time the key signs.
type ringKey struct {
	rec store.SigningKey
	pub ed25519.PublicKey

	mu     sync.Mutex
	signer jose.Signer
}

// jwksDoc is an encoded key set, valid from from until until.
type jwksDoc struct {
	doc         []byte
	from, until time.Time
}

// NewKeyring returns an empty Keyring over st and v. Call Rotate when keygate
// starts (and periodically) to make sure a signing key exists and load the
// key set, and Refresh to pick up other nodes' rotations.
func NewKeyring(st KeyStore, v SecretVault, opts KeyringOptions) (*Keyring, error) {
	k := &Keyring{
		st:           st,
		vault:        v,
		rotateEvery:  orDefault(opts.RotateEvery, DefaultRotateEvery),
		overlap:      orDefault(opts.Overlap, DefaultOverlap),
		refreshEvery: orDefault(opts.RefreshInterval, DefaultRefreshInterval),
		now:          opts.Now,
	}
	if st == nil || v == nil {
		return nil, errors.New("token: a keyring needs a key store and a vault")
	}
	if k.now == nil {
		k.now = time.Now
	}
	if k.overlap < 0 || k.refreshEvery < 0 {
		return nil, fmt.Errorf("token: signing key overlap (%s) and refresh interval (%s) must not be negative", k.overlap, k.refreshEvery)
	}
	if k.rotateEvery <= 2*k.overlap {
		return nil, fmt.Errorf("token: signing keys must sign for longer (%s) than twice the overlap (%s)", k.rotateEvery, k.overlap)
	}
	k.ring.Store(newRing(nil))
	return k, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Rotate makes sure a key signs at now: when none does, or the current one
// stops signing within the overlap, it creates a successor that signs from
// now for RotateEvery and stays published until MaxLifetime plus the
// overlap after that. It then reloads the key set. Nodes rotating at once
// derive the same successor, so they converge on one key. Every node should
// run it at start and then at intervals well under the overlap (every few
// minutes), so a successor exists before the current key stops signing.
func (k *Keyring) Rotate(ctx context.Context, now time.Time) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.lastAttempt.Store(k.now().UnixNano())
	recs, err := k.st.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("token: rotate signing keys: %w", err)
	}
	if covered(recs, now, k.overlap) {
		return k.install(recs)
	}
	kid, err := k.nextKID(ctx, recs)
	if err != nil {
		return err
	}
	seed, err := k.vault.Ensure(ctx, SigningKeyRecord(kid), ed25519.SeedSize)
	if err != nil {
		return fmt.Errorf("token: create signing key %q: %w", kid, err)
	}
	priv, err := privateKey(kid, seed)
	if err != nil {
		return err
	}
	pub := priv.Public().(ed25519.PublicKey)
	clear(priv)
	now = now.UTC()
	until := now.Add(k.rotateEvery)
	rec := store.SigningKey{
		KID:          kid,
		Alg:          AlgEdDSA,
		PublicKey:    pub,
		CreatedAt:    now,
		SignFrom:     now,
		SignUntil:    until,
		PublishUntil: until.Add(MaxLifetime + k.overlap),
	}
	// Another node may have recorded the same successor first; its record
	// carries the same public key, derived from the same vault record.
	if err := k.st.PutSigningKey(ctx, rec); err != nil && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("token: record signing key %q: %w", kid, err)
	}
	recs, err = k.st.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("token: reload signing keys after rotation: %w", err)
	}
	for _, r := range recs {
		if r.KID == kid && subtle.ConstantTimeCompare(r.PublicKey, pub) != 1 {
			return fmt.Errorf("token: signing key %q in the store does not match its vault record %q", kid, SigningKeyRecord(kid))
		}
	}
	return k.install(recs)
}

// covered reports whether some key signs at now (allowing for clock skew
// between nodes) beyond the overlap window.
func covered(recs []store.SigningKey, now time.Time, overlap time.Duration) bool {
	for _, r := range recs {
		if r.Alg == AlgEdDSA && !r.SignFrom.After(now.Add(clockSkew)) && r.SignUntil.Sub(now) > overlap {
			return true
		}
	}
	return false
}

// nextKID derives the successor of the newest key from the install's key
// chain secret, so every node looking at the same key set picks the same ID.
func (k *Keyring) nextKID(ctx context.Context, recs []store.SigningKey) (string, error) {
	chain, err := k.vault.Ensure(ctx, keyChainRecord, 32)
	if err != nil {
		return "", fmt.Errorf("token: read the signing key chain secret: %w", err)
	}
	key := []byte(chain.Reveal())
	defer clear(key)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("keygate signing key after:"))
	if len(recs) > 0 {
		mac.Write([]byte(recs[len(recs)-1].KID))
	}
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))[:kidLen], nil
}

// Refresh reloads the key set from the store, picking up keys other keygate
// nodes created.
func (k *Keyring) Refresh(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.lastAttempt.Store(k.now().UnixNano())
	return k.load(ctx)
}

// refreshSoon reloads the key set unless it was loaded within the refresh
// interval. It reports whether it reloaded.
func (k *Keyring) refreshSoon(ctx context.Context) (bool, error) {
	recent := func() bool { return k.now().UnixNano()-k.lastAttempt.Load() < int64(k.refreshEvery) }
	if recent() {
		return false, nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if recent() {
		// Another caller reloaded while this one waited.
		return true, nil
	}
	k.lastAttempt.Store(k.now().UnixNano())
	return true, k.load(ctx)
}

func (k *Keyring) load(ctx context.Context) error {
	recs, err := k.st.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("token: load signing keys: %w", err)
	}
	return k.install(recs)
}

// install replaces the ring with recs, keeping the loaded signers of keys
// that did not change. Records keygate cannot use are left out and reported;
// the others are installed regardless.
func (k *Keyring) install(recs []store.SigningKey) error {
	old := k.ring.Load()
	var keys []*ringKey
	var errs []error
	for _, r := range recs {
		if r.Alg != AlgEdDSA {
			errs = append(errs, fmt.Errorf("token: signing key %q has algorithm %q; keygate uses only %s keys, so it is ignored", r.KID, r.Alg, AlgEdDSA))
			continue
		}
		if len(r.PublicKey) != ed25519.PublicKeySize {
			errs = append(errs, fmt.Errorf("token: signing key %q has a %d-byte public key, not %d; it is ignored", r.KID, len(r.PublicKey), ed25519.PublicKeySize))
			continue
		}
		if prev, ok := old.byKID[r.KID]; ok && sameKey(prev.rec, r) {
			keys = append(keys, prev)
			continue
		}
		keys = append(keys, &ringKey{rec: r, pub: ed25519.PublicKey(bytes.Clone(r.PublicKey))})
	}
	k.ring.Store(newRing(keys))
	return errors.Join(errs...)
}

// sameKey reports whether two records describe the same key and schedule.
func sameKey(a, b store.SigningKey) bool {
	return a.KID == b.KID && bytes.Equal(a.PublicKey, b.PublicKey) &&
		a.SignFrom.Equal(b.SignFrom) && a.SignUntil.Equal(b.SignUntil) && a.PublishUntil.Equal(b.PublishUntil)
}

func newRing(keys []*ringKey) *ring {
	r := &ring{keys: keys, byKID: make(map[string]*ringKey, len(keys))}
	for _, k := range keys {
		r.byKID[k.rec.KID] = k
	}
	return r
}

// signingKey returns the newest key whose signing window contains now, or
// failing that one that starts within the allowed clock skew.
func (r *ring) signingKey(now time.Time) *ringKey {
	for _, early := range []time.Duration{0, clockSkew} {
		for i := len(r.keys) - 1; i >= 0; i-- {
			k := r.keys[i]
			if !k.rec.SignFrom.After(now.Add(early)) && now.Before(k.rec.SignUntil) {
				return k
			}
		}
	}
	return nil
}

// published returns the key with the given kid if it is still published at now.
func (r *ring) published(kid string, now time.Time) (*ringKey, bool) {
	k, ok := r.byKID[kid]
	if !ok || !now.Before(k.rec.PublishUntil) {
		return nil, false
	}
	return k, true
}

// signer returns the key that signs at now, ready to sign. When none does
// it reloads the key set once (another node may have rotated), within the
// refresh interval.
func (k *Keyring) signer(ctx context.Context, now time.Time) (*ringKey, jose.Signer, error) {
	rk := k.ring.Load().signingKey(now)
	if rk == nil {
		if _, err := k.refreshSoon(ctx); err != nil {
			return nil, nil, err
		}
		if rk = k.ring.Load().signingKey(now); rk == nil {
			return nil, nil, fmt.Errorf("%w at %s; keygate creates one with Keyring.Rotate", ErrNoSigningKey, now.UTC().Format(time.RFC3339))
		}
	}
	s, err := rk.loadSigner(ctx, k.vault)
	if err != nil {
		return nil, nil, err
	}
	return rk, s, nil
}

// verifier returns the public key published under kid at now. For a kid
// the ring does not hold it reloads the key set once, within the refresh
// interval. A kid that is known but no longer published is refused without
// a reload.
func (k *Keyring) verifier(ctx context.Context, kid string, now time.Time) (*ringKey, error) {
	r := k.ring.Load()
	if rk, ok := r.published(kid, now); ok {
		return rk, nil
	}
	if _, known := r.byKID[kid]; !known {
		reloaded, err := k.refreshSoon(ctx)
		if err != nil {
			return nil, fmt.Errorf("token: look up signing key %.40q: %w", kid, err)
		}
		if reloaded {
			if rk, ok := k.ring.Load().published(kid, now); ok {
				return rk, nil
			}
		}
	}
	return nil, refuse(ErrUnknownKey, fmt.Sprintf("no published signing key has kid %.40q", kid))
}

func (rk *ringKey) loadSigner(ctx context.Context, v SecretVault) (jose.Signer, error) {
	rk.mu.Lock()
	defer rk.mu.Unlock()
	if rk.signer != nil {
		return rk.signer, nil
	}
	kid := rk.rec.KID
	seed, _, err := v.Get(ctx, SigningKeyRecord(kid))
	if err != nil {
		return nil, fmt.Errorf("token: load private half of signing key %q: %w", kid, err)
	}
	priv, err := privateKey(kid, seed)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(priv.Public().(ed25519.PublicKey), rk.pub) != 1 {
		clear(priv)
		return nil, fmt.Errorf("token: vault record %q does not match the public key of signing key %q in the store", SigningKeyRecord(kid), kid)
	}
	s, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: AlgEdDSA}},
		(&jose.SignerOptions{}).WithType(accessTokenType),
	)
	if err != nil {
		return nil, fmt.Errorf("token: prepare signing key %q: %w", kid, err)
	}
	rk.signer = s
	return s, nil
}

// privateKey turns a vault record holding a raw seed into a private key.
func privateKey(kid string, seed secret.String) (ed25519.PrivateKey, error) {
	raw := []byte(seed.Reveal())
	defer clear(raw)
	if len(raw) != ed25519.SeedSize {
		return nil, fmt.Errorf("token: vault record %q holds %d bytes, not a %d-byte Ed25519 seed", SigningKeyRecord(kid), len(raw), ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(raw), nil
}

// JWKS returns the public keys still published, newest first, as a JSON Web
// Key Set (RFC 7517) for keygate's JWKS endpoint. The encoding is cached
// until the set changes.
func (k *Keyring) JWKS() []byte {
	now := k.now()
	r := k.ring.Load()
	if d := r.jwks.Load(); d != nil && !now.Before(d.from) && now.Before(d.until) {
		return bytes.Clone(d.doc)
	}
	d := r.encodeJWKS(now)
	r.jwks.Store(d)
	return bytes.Clone(d.doc)
}

func (r *ring) encodeJWKS(now time.Time) *jwksDoc {
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	until := now.Add(365 * 24 * time.Hour)
	for i := len(r.keys) - 1; i >= 0; i-- {
		k := r.keys[i]
		if !now.Before(k.rec.PublishUntil) {
			continue
		}
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.pub, KeyID: k.rec.KID, Algorithm: AlgEdDSA, Use: "sig"})
		if k.rec.PublishUntil.Before(until) {
			until = k.rec.PublishUntil
		}
	}
	doc, err := json.Marshal(set)
	if err != nil {
		// Ed25519 public keys always encode; an empty set is the safe answer.
		doc = []byte(`{"keys":[]}`)
	}
	return &jwksDoc{doc: doc, from: now, until: until}
}

// Keys returns the key set as last loaded, oldest first: public halves and
// schedules, for display.
func (k *Keyring) Keys() []store.SigningKey {
	r := k.ring.Load()
	out := make([]store.SigningKey, len(r.keys))
	for i, rk := range r.keys {
		out[i] = rk.rec
		out[i].PublicKey = bytes.Clone(rk.rec.PublicKey)
	}
	return out
}
