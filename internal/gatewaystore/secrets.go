package gatewaystore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
)

// SecretStore is the store's part Secrets reads: a secret's record by name.
type SecretStore interface {
	GetSecretMeta(ctx context.Context, name string) (store.SecretMeta, error)
}

// SecretVault opens a secret's versions; internal/vault's Vault implements it.
type SecretVault interface {
	Get(ctx context.Context, id string) (secret.String, int, error)
	GetVersion(ctx context.Context, id string, version int) (secret.String, error)
}

// Hasher names secrets in the audit trail; internal/apikey's Hasher
// implements it.
type Hasher interface {
	Hash(raw string) [32]byte
}

// Secrets serves vault secrets to the gateway's /secrets endpoint
// (gateway.SecretReader): the current version, or one asked for, of a
// secret that is not deleted.
type Secrets struct {
	st SecretStore
	v  SecretVault
	h  Hasher
}

// NewSecrets reads secrets from st and v and names them with h.
func NewSecrets(st SecretStore, v SecretVault, h Hasher) Secrets { return Secrets{st: st, v: v, h: h} }

// ReadSecret implements gateway.SecretReader.
func (s Secrets) ReadSecret(ctx context.Context, name string, version int) (secret.String, int, error) {
	m, err := s.st.GetSecretMeta(ctx, name)
	if errors.Is(err, store.ErrNotFound) || err == nil && m.DeletedAt != nil {
		return secret.String{}, 0, gateway.ErrNoSecret
	}
	if err != nil {
		return secret.String{}, 0, err
	}
	if version == 0 {
		val, ver, err := s.v.Get(ctx, m.RecordID)
		if errors.Is(err, store.ErrNotFound) {
			return secret.String{}, 0, gateway.ErrNoSecret
		}
		return val, ver, err
	}
	val, err := s.v.GetVersion(ctx, m.RecordID, version)
	if errors.Is(err, store.ErrNotFound) {
		return secret.String{}, 0, gateway.ErrNoSecret
	}
	if err != nil {
		return secret.String{}, 0, fmt.Errorf("open version %d: %w", version, err)
	}
	return val, version, nil
}

// SecretRef implements gateway.SecretReader: the same reference the admin
// API records for a secret, so the two trails line up.
func (s Secrets) SecretRef(name string) string {
	h := s.h.Hash("secret-name:" + name)
	return hex.EncodeToString(h[:8])
}
