package vault

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"gocloud.dev/gcerrors"
	"gocloud.dev/secrets"
)

// KeeperKEK is a KEK held by a key management service (AWS KMS, Google Cloud
// KMS, Azure Key Vault, HashiCorp Vault) or gocloud.dev's local base64key
// keeper, reached through a gocloud.dev/secrets Keeper. The key never enters
// keygate's memory, except with base64key:// whose URL is the key.
type KeeperKEK struct {
	id     string
	url    string // redacted
	keeper *secrets.Keeper
}

// NewKeeperKEK returns a KEK that wraps data keys with keeper, which was
// opened from rawURL. The ID is derived from the whole URL, so it is stable
// for one URL and does not reveal a key the URL holds. The KeeperKEK owns
// keeper: Close closes it.
func NewKeeperKEK(keeper *secrets.Keeper, rawURL string) *KeeperKEK {
	sum := sha256.Sum256([]byte(rawURL))
	return &KeeperKEK{
		id:     "kms:" + hex.EncodeToString(sum[:8]),
		url:    RedactKEKURL(rawURL),
		keeper: keeper,
	}
}

// ID returns "kms:" followed by 16 hex characters of SHA-256 over the KEK URL.
func (k *KeeperKEK) ID() string { return k.id }

// Wrap encrypts a data key with the KMS key.
func (k *KeeperKEK) Wrap(ctx context.Context, dek []byte) ([]byte, error) {
	w, err := k.keeper.Encrypt(ctx, dek)
	if err != nil {
		return nil, fmt.Errorf("vault: KEK %s (%s): the KMS could not wrap a data key; check that keygate can reach the KMS and that its credentials may encrypt with this key: %w", k.id, k.url, err)
	}
	return w, nil
}

// Unwrap decrypts a data key produced by Wrap. When the KMS refuses the
// ciphertext the error wraps ErrTampered: a KMS cannot tell a modified
// wrapped key from one wrapped by a different key. When the KMS could not be
// used at all (unreachable, no permission, cancelled) the error does not
// wrap ErrTampered.
func (k *KeeperKEK) Unwrap(ctx context.Context, wrapped []byte) ([]byte, error) {
	dek, err := k.keeper.Decrypt(ctx, wrapped)
	if err == nil {
		return dek, nil
	}
	if isKMSOutage(err) {
		return nil, fmt.Errorf("vault: KEK %s (%s): the KMS could not unwrap a data key; check that keygate can reach the KMS and that its credentials may decrypt with this key: %w", k.id, k.url, err)
	}
	return nil, fmt.Errorf("vault: KEK %s (%s): the KMS refused the wrapped data key: it was modified, truncated, or wrapped by a different KMS key (the KMS cannot tell which); check that keygate runs with the KEK URL that sealed it: %w: %w", k.id, k.url, ErrTampered, err)
}

// Close releases the keeper. It is safe to call more than once.
func (k *KeeperKEK) Close() error {
	err := k.keeper.Close()
	if gcerrors.Code(err) == gcerrors.FailedPrecondition { // already closed
		return nil
	}
	if err != nil {
		return fmt.Errorf("vault: close KEK %s (%s): %w", k.id, k.url, err)
	}
	return nil
}

// isKMSOutage reports whether a Decrypt error says the KMS could not be used,
// as opposed to refusing the ciphertext.
func isKMSOutage(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	switch gcerrors.Code(err) {
	case gcerrors.Canceled, gcerrors.DeadlineExceeded, gcerrors.PermissionDenied,
		gcerrors.ResourceExhausted, gcerrors.NotFound, gcerrors.FailedPrecondition, gcerrors.Unimplemented:
		return true
	}
	return false
}
