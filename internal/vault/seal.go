package vault

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/keygate/keygate/internal/store"
)

// ErrTampered means a stored record failed authentication: it was modified,
// truncated, or moved to another record id or version. keygate never returns
// the plaintext of such a record.
var ErrTampered = errors.New("vault record failed authentication")

// ErrWrongKEK means a record was sealed under a different key-encryption key
// than the one keygate is running with.
var ErrWrongKEK = errors.New("vault record belongs to another key-encryption key")

// ErrUnknownFormat means a record was written in a ciphertext format this
// build of keygate does not know, usually by a newer keygate.
var ErrUnknownFormat = errors.New("vault record has an unknown format")

// FormatV1 is the ciphertext format SealVersion writes: AES-256-GCM under a
// per-version random data key, Ciphertext = nonce || ciphertext || tag, with
// the format, record id and version as associated data.
const FormatV1 = 1

const (
	dekSize = 32
	adLabel = "keygate secret"
)

// SealVersion encrypts plaintext as version of record id. Each call draws a
// fresh random data key, which kek wraps. The result has no CreatedAt; the
// caller sets it. SealVersion does not retain plaintext.
func SealVersion(ctx context.Context, kek KEK, id string, version int, plaintext []byte) (store.SecretVersion, error) {
	if id == "" {
		return store.SecretVersion{}, errors.New("vault: cannot seal a record with an empty id")
	}
	if version < 1 {
		return store.SecretVersion{}, fmt.Errorf("vault: record %q: version must be 1 or more, got %d", id, version)
	}
	dek := make([]byte, dekSize)
	defer clear(dek)
	if _, err := rand.Read(dek); err != nil {
		return store.SecretVersion{}, fmt.Errorf("vault: record %q version %d: generate data key: %w", id, version, err)
	}
	aead, err := newAEAD(dek)
	if err != nil {
		return store.SecretVersion{}, fmt.Errorf("vault: record %q version %d: %w", id, version, err)
	}
	wrapped, err := kek.Wrap(ctx, dek)
	if err != nil {
		return store.SecretVersion{}, fmt.Errorf("vault: record %q version %d: wrap data key with KEK %s: %w", id, version, kek.ID(), err)
	}
	return store.SecretVersion{
		ID:         id,
		Version:    version,
		Format:     FormatV1,
		KEKID:      kek.ID(),
		WrappedDEK: wrapped,
		Ciphertext: aead.Seal(nil, nil, plaintext, associatedData(FormatV1, id, version)),
	}, nil
}

// OpenVersion decrypts a record sealed by SealVersion. It fails with an error
// wrapping ErrUnknownFormat, ErrWrongKEK or ErrTampered (for the local KEK)
// rather than return anything but the original plaintext. The caller should
// clear the returned bytes when done with them.
func OpenVersion(ctx context.Context, kek KEK, sv store.SecretVersion) ([]byte, error) {
	if err := checkSealed(sv); err != nil {
		return nil, err
	}
	if sv.KEKID != kek.ID() {
		return nil, fmt.Errorf("vault: record %q version %d was sealed under KEK %q, but keygate is running with KEK %q; start keygate with the master key that sealed it: %w",
			sv.ID, sv.Version, sv.KEKID, kek.ID(), ErrWrongKEK)
	}
	aead, err := unwrapDataKey(ctx, kek, sv)
	if err != nil {
		return nil, err
	}
	return openWith(aead, sv)
}

// aeadOpener is an unwrapped data key, ready to open ciphertexts.
type aeadOpener = cipher.AEAD

// checkSealed rejects a version that cannot be a sealed record before any
// key is touched.
func checkSealed(sv store.SecretVersion) error {
	if sv.Format != FormatV1 {
		return fmt.Errorf("vault: record %q version %d has ciphertext format %d, which this keygate does not know (it writes format %d); upgrade keygate to the version that wrote it: %w",
			sv.ID, sv.Version, sv.Format, FormatV1, ErrUnknownFormat)
	}
	if sv.ID == "" || sv.Version < 1 {
		return fmt.Errorf("vault: record %q version %d is not a valid record id and version: %w", sv.ID, sv.Version, ErrTampered)
	}
	if len(sv.Ciphertext) < gcmOverhead {
		return fmt.Errorf("vault: record %q version %d: ciphertext is truncated (%d bytes, at least %d expected); restore the record from a backup or set the secret again: %w",
			sv.ID, sv.Version, len(sv.Ciphertext), gcmOverhead, ErrTampered)
	}
	return nil
}

// unwrapDataKey unwraps sv's data key with kek and returns it as an AEAD.
// The raw key bytes are cleared before it returns.
func unwrapDataKey(ctx context.Context, kek KEK, sv store.SecretVersion) (aeadOpener, error) {
	dek, err := kek.Unwrap(ctx, sv.WrappedDEK)
	defer clear(dek)
	if err != nil {
		return nil, fmt.Errorf("vault: record %q version %d: could not unwrap its data key with KEK %s; if the record was modified, restore it from a backup or set the secret again: %w",
			sv.ID, sv.Version, kek.ID(), err)
	}
	if len(dek) != dekSize {
		return nil, fmt.Errorf("vault: record %q version %d: unwrapped data key has the wrong length; restore the record from a backup or set the secret again: %w",
			sv.ID, sv.Version, ErrTampered)
	}
	aead, err := newAEAD(dek)
	if err != nil {
		return nil, fmt.Errorf("vault: record %q version %d: %w", sv.ID, sv.Version, err)
	}
	return aead, nil
}

// openWith decrypts sv's ciphertext with its unwrapped data key.
func openWith(aead aeadOpener, sv store.SecretVersion) ([]byte, error) {
	plaintext, err := aead.Open(nil, nil, sv.Ciphertext, associatedData(sv.Format, sv.ID, sv.Version))
	if err != nil {
		return nil, fmt.Errorf("vault: record %q version %d: ciphertext failed authentication (modified, truncated, or copied from another record or version); restore the record from a backup or set the secret again: %w",
			sv.ID, sv.Version, ErrTampered)
	}
	return plaintext, nil
}

// gcmOverhead is the size of the nonce and tag around every ciphertext.
const gcmOverhead = 12 + 16

func newAEAD(dek []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(dek)
	if err != nil {
		return nil, fmt.Errorf("data key: %w", err)
	}
	return cipher.NewGCMWithRandomNonce(block)
}

// associatedData binds a ciphertext to its format, record id and version.
// Every field has a fixed width or a length prefix, so no two distinct
// (id, version) pairs share an encoding.
func associatedData(format int, id string, version int) []byte {
	ad := make([]byte, 0, len(adLabel)+1+8+8+len(id)+8)
	ad = append(ad, adLabel...)
	ad = append(ad, 0)
	ad = binary.BigEndian.AppendUint64(ad, uint64(format))
	ad = binary.BigEndian.AppendUint64(ad, uint64(len(id)))
	ad = append(ad, id...)
	ad = binary.BigEndian.AppendUint64(ad, uint64(version))
	return ad
}
