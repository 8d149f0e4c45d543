// Package vault keeps keygate's secrets encrypted at rest: the upstream
// provider credentials and keygate's own system secrets.
//
// It uses envelope encryption. Every version of a record is sealed with
// AES-256-GCM under its own random data key (DEK); the data key is stored
// wrapped by a key-encryption key (KEK), such as the master key file. The
// associated data binds each ciphertext to its format, record id and
// version, so a ciphertext copied to another record or version does not
// open. Any failure is an error naming the record and version; the vault
// never returns garbage and never puts key material in an error.
package vault

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
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
}

// putAttempts bounds how often Put retries when concurrent writers race for
// the same version number.
const putAttempts = 8

// maxEnsureSize bounds the size of a generated system secret.
const maxEnsureSize = 1024

// Vault seals and opens versioned secrets with one KEK over a Storage.
// It is safe for concurrent use.
type Vault struct {
	kek KEK
	st  Storage
}

// New returns a Vault that seals new versions under kek and stores them in st.
func New(kek KEK, st Storage) *Vault {
	return &Vault{kek: kek, st: st}
}

// KEKID returns the ID of the KEK new versions are sealed under.
func (v *Vault) KEKID() string { return v.kek.ID() }

// Put stores plaintext as a new version of record id (version 1 for a new
// record) and returns that version number. Earlier versions stay readable
// with GetVersion. When another writer adds a version at the same moment,
// Put retries with the next number.
func (v *Vault) Put(ctx context.Context, id string, plaintext secret.String) (int, error) {
	pt := []byte(plaintext.Reveal())
	defer clear(pt)
	for attempt := 0; attempt < putAttempts; attempt++ {
		next := 1
		latest, err := v.st.LatestSecretVersion(ctx, id)
		switch {
		case err == nil:
			next = latest.Version + 1
		case !errors.Is(err, store.ErrNotFound):
			return 0, fmt.Errorf("vault: record %q: read latest version: %w", id, err)
		}
		sv, err := SealVersion(ctx, v.kek, id, next, pt)
		if err != nil {
			return 0, err
		}
		sv.CreatedAt = time.Now().UTC()
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

// Get opens the latest version of record id and returns it with its version
// number. A record with no versions gives an error wrapping store.ErrNotFound.
func (v *Vault) Get(ctx context.Context, id string) (secret.String, int, error) {
	sv, err := v.st.LatestSecretVersion(ctx, id)
	if err != nil {
		return secret.String{}, 0, fmt.Errorf("vault: record %q: read latest version: %w", id, err)
	}
	s, err := v.open(ctx, id, 0, sv)
	if err != nil {
		return secret.String{}, 0, err
	}
	return s, sv.Version, nil
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
	sv, err := SealVersion(ctx, v.kek, id, 1, buf)
	if err != nil {
		return secret.String{}, err
	}
	sv.CreatedAt = time.Now().UTC()
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
	pt, err := OpenVersion(ctx, v.kek, sv)
	if err != nil {
		return secret.String{}, err
	}
	defer clear(pt)
	return secret.New(string(pt)), nil
}
