package store

import (
	"errors"
	"time"
)

// ErrNotFound is returned when a record does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a record with the same unique name or id already exists.
var ErrConflict = errors.New("already exists")

// Provider is an upstream API that keygate forwards to, with a reference to
// the vault record holding its credential. The credential itself is never here.
type Provider struct {
	ID        string    // "prv_" + random; stable across renames
	Name      string    // unique, lower case, used as the model prefix ("openai/gpt-4o")
	Dialect   string    // wire dialect: "openai" or "anthropic"
	BaseURL   string    // as the provider's own SDK takes it ("https://api.openai.com/v1")
	Models    []string  // glob patterns of bare model names this provider serves ("gpt-*")
	IsDefault bool      // the default provider for its dialect when no pattern matches
	SecretID  string    // vault record that holds the upstream credential
	CreatedAt time.Time // UTC
}

// SecretVersion is one encrypted version of a vault record (envelope encryption:
// the ciphertext is sealed by a per-version data key, which is wrapped by a KEK).
type SecretVersion struct {
	ID         string    // record id, e.g. "provider/openai" or "system/pepper"
	Version    int       // 1, 2, ...; part of the associated data
	Format     int       // ciphertext format version
	KEKID      string    // which key-encryption key wrapped the data key
	WrappedDEK []byte    // data key, wrapped by the KEK
	Ciphertext []byte    // nonce || AES-256-GCM(ciphertext || tag)
	CreatedAt  time.Time // UTC
}

// Key is a keygate API key as stored: only an HMAC of the secret is kept.
type Key struct {
	ID             string     // "key_" + random; the public identifier
	Name           string     // unique among keys, chosen by the operator
	Env            string     // environment tag from the key's prefix: "live", "test", "dev", ...
	Prefix         string     // the first characters of the key, for display ("kg_live_4fTq")
	Hash           []byte     // HMAC-SHA256(pepper, full key); unique
	AllowModels    []string   // glob patterns; empty means any model
	AllowProviders []string   // provider names; empty means any provider
	CreatedAt      time.Time  // UTC
	ExpiresAt      *time.Time // nil: never expires
	RevokedAt      *time.Time // nil: not revoked
	LastUsedAt     *time.Time // nil: never used
}

// AdminToken is a credential for the admin API, stored as an HMAC.
type AdminToken struct {
	ID        string     // "adm_" + random
	Name      string     // "bootstrap", or what the operator chose
	Hash      []byte     // HMAC-SHA256(pepper, token); unique
	CreatedAt time.Time  // UTC
	RevokedAt *time.Time // nil: active
}
