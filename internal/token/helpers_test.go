package token_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/store/storetest"
	"github.com/keygate/keygate/internal/token"
	"github.com/keygate/keygate/internal/vault"
)

const (
	testIssuer   = "https://keygate.example"
	testAudience = "https://keygate.example/v1"
)

// t0 is the start of every test's timeline.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// clock is a settable clock for keyrings and authorities.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// countingKeys counts how often the key set is read from the store.
type countingKeys struct {
	token.KeyStore
	lists atomic.Int64
}

func (c *countingKeys) ListSigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	c.lists.Add(1)
	return c.KeyStore.ListSigningKeys(ctx)
}

// env is one keygate database with its vault, shared by the nodes of a test.
type env struct {
	st   *store.Store
	kek  vault.KEK
	path string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	url := storetest.SQLiteURL(t)
	st := storetest.Open(t, url)
	key := make([]byte, vault.MasterKeySize)
	rand.Read(key)
	kek, err := vault.NewLocalKEK(key)
	if err != nil {
		t.Fatal(err)
	}
	return &env{st: st, kek: kek, path: strings.TrimPrefix(url, "sqlite://")}
}

// node is one keygate process: its own vault, keyring and authority over
// the shared database.
type node struct {
	vault *vault.Vault
	keys  *countingKeys
	ring  *token.Keyring
	auth  *token.Authority
	clock *clock
}

func (e *env) node(t testing.TB, now time.Time) *node {
	t.Helper()
	n := &node{vault: vault.New(e.kek, e.st), keys: &countingKeys{KeyStore: e.st}, clock: newClock(now)}
	var err error
	n.ring, err = token.NewKeyring(n.keys, n.vault, token.KeyringOptions{Now: n.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	n.auth, err = token.NewAuthority(n.ring, token.Options{Issuer: testIssuer, Audience: testAudience, Now: n.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// rotatedNode returns a node whose keyring holds a key signing from t0.
func rotatedNode(t testing.TB) (*env, *node) {
	t.Helper()
	e := newEnv(t)
	n := e.node(t, t0)
	if err := n.ring.Rotate(ctx(t), t0); err != nil {
		t.Fatal(err)
	}
	return e, n
}

// currentKID returns the kid of the newest key in n's ring.
func (n *node) currentKID(t testing.TB) string {
	t.Helper()
	keys := n.ring.Keys()
	if len(keys) == 0 {
		t.Fatal("the keyring holds no keys")
	}
	return keys[len(keys)-1].KID
}

// privateKey reads the private half of a signing key from the vault, as an
// attacker who stole it would hold it.
func (n *node) privateKey(t testing.TB, kid string) ed25519.PrivateKey {
	t.Helper()
	seed, _, err := n.vault.Get(ctx(t), token.SigningKeyRecord(kid))
	if err != nil {
		t.Fatal(err)
	}
	return ed25519.NewKeyFromSeed([]byte(seed.Reveal()))
}

func (n *node) issue(t testing.TB, c token.Claims) string {
	t.Helper()
	raw, err := n.auth.Issue(ctx(t), c)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return raw
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// forge builds a compact JWS from header and claims, signed by sign (nil
// for an empty signature).
func forge(t testing.TB, header map[string]any, claims any, sign func(in []byte) []byte) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	p, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	in := b64(h) + "." + b64(p)
	var sig []byte
	if sign != nil {
		sig = sign([]byte(in))
	}
	return in + "." + b64(sig)
}

func edSigner(priv ed25519.PrivateKey) func([]byte) []byte {
	return func(in []byte) []byte { return ed25519.Sign(priv, in) }
}

// validClaims returns the claims of a well-formed token issued at iat.
func validClaims(iat time.Time) map[string]any {
	return map[string]any{
		"iss":       testIssuer,
		"aud":       testAudience,
		"sub":       "key_123",
		"client_id": "ci-agent",
		"jti":       "jti_1",
		"iat":       iat.Unix(),
		"nbf":       iat.Unix(),
		"exp":       iat.Add(15 * time.Minute).Unix(),
	}
}

func edHeader(kid string) map[string]any {
	return map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": kid}
}

// wantErr fails unless err matches want.
func wantErr(t testing.TB, err, want error, what string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: error = %v, want %v", what, err, want)
	}
}

// noSecretIn fails if err's message contains any part of raw longer than a
// few characters.
func noSecretIn(t testing.TB, err error, raw string) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	parts := strings.Split(raw, ".")
	parts = append(parts, raw)
	if strings.HasPrefix(raw, "kgr_") {
		parts = append(parts, raw[4:])
	}
	for _, p := range parts {
		if len(p) >= 8 && strings.Contains(msg, p) {
			t.Fatalf("error %q quotes the token", msg)
		}
	}
}
