package server

import (
	"context"
	"fmt"
	"time"

	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/token"
	"github.com/keygate/keygate/internal/vault"
)

// tokens is the short-lived token machinery: the signing-key ring, the
// authority that issues and verifies access tokens, refresh families.
type tokens struct {
	ring    *token.Keyring
	gateway *gateway.TokenOptions
}

func newTokens(ctx context.Context, cfg config.Config, st *store.Store, v *vault.Vault) (*tokens, error) {
	ring, err := token.NewKeyring(st, v, token.KeyringOptions{})
	if err != nil {
		return nil, fmt.Errorf("token signing keys: %w", err)
	}
	if err := ring.Rotate(ctx, time.Now()); err != nil {
		return nil, fmt.Errorf("token signing keys: %w", err)
	}
	auth, err := token.NewAuthority(ring, token.Options{Issuer: cfg.Tokens.Issuer, Audience: cfg.Tokens.Audience})
	if err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	// Refresh tokens get their own pepper: a leak of one table's hashes
	// says nothing about the other's.
	pepper, err := v.Ensure(ctx, "system/refresh-pepper", 32)
	if err != nil {
		return nil, fmt.Errorf("refresh token pepper: %w", err)
	}
	h, err := apikey.NewHasher([]byte(pepper.Reveal()))
	if err != nil {
		return nil, err
	}
	fams, err := token.NewFamilies(st, h, token.FamilyOptions{})
	if err != nil {
		return nil, fmt.Errorf("refresh tokens: %w", err)
	}
	// Revocations are set once the key service exists (buildParts).
	return &tokens{ring: ring, gateway: &gateway.TokenOptions{
		Authority: auth, Families: fams, Keyring: ring, Denied: &gateway.Denylist{},
	}}, nil
}
