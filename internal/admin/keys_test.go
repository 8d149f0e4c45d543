package admin_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/keysource"
)

func (h *harness) createKey(body string) adminapi.CreatedKey {
	h.t.Helper()
	w := h.do("POST", "/api/v1/keys", body)
	h.mustStatus(w, http.StatusCreated)
	var k adminapi.CreatedKey
	decode(h.t, w, &k)
	return k
}

// TestKeyValidation: each bad key request is a 400 naming the field, and
// none of them creates a key.
func TestKeyValidation(t *testing.T) {
	h := newHarness(t)
	h.createProvider(providerBody("openai", "https://api.example.test/v1", "sk-test-k", ""))
	for _, tc := range []struct {
		name, body, field string
	}{
		{"empty name", `{"name":""}`, "name"},
		{"missing name", `{}`, "name"},
		{"name with a space", `{"name":"my app"}`, "name"},
		{"name starting with a dot", `{"name":".app"}`, "name"},
		{"name of 65 characters", `{"name":"` + strings.Repeat("a", 65) + `"}`, "name"},
		{"admin env", `{"name":"app","env":"admin"}`, "env"},
		{"upper-case env", `{"name":"app","env":"LIVE"}`, "env"},
		{"one-letter env", `{"name":"app","env":"x"}`, "env"},
		{"env starting with a digit", `{"name":"app","env":"1abc"}`, "env"},
		{"env too long", `{"name":"app","env":"abcdefghijk"}`, "env"},
		{"invalid model pattern", `{"name":"app","allow_models":["gpt-4o*","["]}`, "allow_models"},
		{"empty model pattern", `{"name":"app","allow_models":[""]}`, "allow_models"},
		{"unknown provider", `{"name":"app","allow_providers":["openai","nope"]}`, "allow_providers"},
		{"expiry in words", `{"name":"app","expires_in":"soon"}`, "expires_in"},
		{"zero expiry", `{"name":"app","expires_in":"0d"}`, "expires_in"},
		{"negative expiry", `{"name":"app","expires_in":"-1h"}`, "expires_in"},
		{"unknown field", `{"name":"app","secret":"kg_live_mine"}`, "secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, h.do("POST", "/api/v1/keys", tc.body), http.StatusBadRequest, "bad_request", tc.field)
		})
	}
	t.Run("body over 1 MiB", func(t *testing.T) {
		body := `{"name":"app","allow_models":["` + strings.Repeat("g", 1<<20) + `"]}`
		wantError(t, h.do("POST", "/api/v1/keys", body), http.StatusBadRequest, "bad_request", "larger than")
	})
	var ks adminapi.KeyList
	decode(t, h.do("GET", "/api/v1/keys", ""), &ks)
	if len(ks.Keys) != 0 {
		t.Fatalf("refused requests created keys: %+v", ks.Keys)
	}
}

// TestKeyCreation: what a new key looks like, its defaults, its expiry from
// the admin API's clock, and the one-name-one-key rule.
func TestKeyCreation(t *testing.T) {
	h := newHarness(t)
	h.createProvider(providerBody("openai", "https://api.example.test/v1", "sk-test-k", ""))

	plain := h.createKey(`{"name":"  laptop  "}`)
	k := plain.Key
	if k.Name != "laptop" || k.Env != "live" || k.Status != "active" || !strings.HasPrefix(k.ID, "key_") {
		t.Fatalf("defaults: %+v", k)
	}
	if !strings.HasPrefix(plain.Secret, "kg_live_") || !strings.HasPrefix(plain.Secret, k.Prefix) || len(k.Prefix) >= len(plain.Secret)/2 {
		t.Fatalf("secret %d chars with prefix %q", len(plain.Secret), k.Prefix)
	}
	if k.ExpiresAt != nil || k.RevokedAt != nil || k.LastUsedAt != nil || !k.CreatedAt.Equal(h.now) {
		t.Fatalf("times: %+v", k)
	}
	if k.AllowModels == nil || k.AllowProviders == nil || len(k.AllowModels)+len(k.AllowProviders) != 0 {
		t.Fatalf("allowances must be empty lists: %+v", k)
	}

	scoped := h.createKey(`{"name":"ci.bot_1","env":"test","allow_models":["gpt-4o*","openai/o4-*"],"allow_providers":["openai"],"expires_in":"30d"}`)
	s := scoped.Key
	if s.Env != "test" || !strings.HasPrefix(scoped.Secret, "kg_test_") {
		t.Fatalf("env test: %+v", s)
	}
	if s.ExpiresAt == nil || !s.ExpiresAt.Equal(h.now.Add(30*24*time.Hour)) {
		t.Fatalf("expires_at %v, want 30 days after %v", s.ExpiresAt, h.now)
	}
	if strings.Join(s.AllowModels, ",") != "gpt-4o*,openai/o4-*" || strings.Join(s.AllowProviders, ",") != "openai" {
		t.Fatalf("allowances: %+v", s)
	}
	mixed := h.createKey(`{"name":"mixed","expires_in":"1d12h"}`)
	if mixed.Key.ExpiresAt == nil || !mixed.Key.ExpiresAt.Equal(h.now.Add(36*time.Hour)) {
		t.Fatalf("1d12h: expires_at %v", mixed.Key.ExpiresAt)
	}
	long := h.createKey(`{"name":"` + strings.Repeat("a", 64) + `"}`)
	if len(long.Key.Name) != 64 {
		t.Fatalf("64-character name: %q", long.Key.Name)
	}

	wantError(t, h.do("POST", "/api/v1/keys", `{"name":"laptop","env":"dev"}`), http.StatusConflict, "conflict", `"laptop"`)

	// Stored as the API described it, with the hash of the returned secret.
	stored, err := h.st.GetKey(context.Background(), s.ID)
	if err != nil {
		t.Fatal(err)
	}
	sum := h.hasher.Hash(scoped.Secret)
	if !bytes.Equal(stored.Hash, sum[:]) || stored.Prefix != s.Prefix || stored.Env != "test" {
		t.Fatalf("stored key: %+v", stored)
	}
	if secrets := map[string]bool{plain.Secret: true, scoped.Secret: true, mixed.Secret: true, long.Secret: true}; len(secrets) != 4 {
		t.Fatal("two keys share a secret")
	}
}

// TestKeySecretShownOnce: the secret in the creation answer is a working
// key, and no later answer carries it or a secret field.
func TestKeySecretShownOnce(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	created := h.createKey(`{"name":"agent","expires_in":"12h"}`)

	v := keysource.New(h.hasher, h.st)
	got, err := v.Verify(ctx, created.Secret, h.now)
	if err != nil || got.ID != created.Key.ID || got.Name != "agent" {
		t.Fatalf("the returned secret does not verify: %+v %v", got, err)
	}
	// One changed character is refused.
	wrong := []byte(created.Secret)
	wrong[len("kg_live_")+5] ^= 1
	if _, err := v.Verify(ctx, string(wrong), h.now); err == nil {
		t.Fatal("a mistyped key verifies")
	}

	var later bytes.Buffer
	for _, path := range []string{"/api/v1/keys", "/api/v1/keys/agent", "/api/v1/keys/" + created.Key.ID} {
		w := h.do("GET", path, "")
		h.mustStatus(w, http.StatusOK)
		later.Write(w.Body.Bytes())
	}
	w := h.do("POST", "/api/v1/keys/agent/revoke", "")
	h.mustStatus(w, http.StatusOK)
	later.Write(w.Body.Bytes())
	if strings.Contains(later.String(), created.Secret) || strings.Contains(later.String(), `"secret"`) {
		t.Fatalf("a later answer carries the secret:\n%s", later.String())
	}
	if !strings.Contains(later.String(), created.Key.Prefix) {
		t.Fatalf("later answers should show the prefix %q", created.Key.Prefix)
	}
	if strings.Contains(h.log.String(), created.Secret) {
		t.Fatal("the log carries the key's secret")
	}
	var shown adminapi.Key
	decode(t, h.do("GET", "/api/v1/keys/"+created.Key.ID, ""), &shown)
	if shown.ID != created.Key.ID || shown.Prefix != created.Key.Prefix || shown.Name != "agent" {
		t.Fatalf("show by id: %+v", shown)
	}
}

func (h *harness) showKey(ref string) adminapi.Key {
	h.t.Helper()
	w := h.do("GET", "/api/v1/keys/"+ref, "")
	h.mustStatus(w, http.StatusOK)
	var k adminapi.Key
	decode(h.t, w, &k)
	return k
}

func (h *harness) listStatus() map[string]string {
	h.t.Helper()
	var ks adminapi.KeyList
	decode(h.t, h.do("GET", "/api/v1/keys", ""), &ks)
	out := map[string]string{}
	for _, k := range ks.Keys {
		out[k.Name] = k.Status
	}
	return out
}

// TestKeyStatusFollowsTheClock: a key is expired from the instant of its
// expiry, by the admin API's clock, and revoked trumps expired.
func TestKeyStatusFollowsTheClock(t *testing.T) {
	h := newHarness(t)
	start := h.now
	h.createKey(`{"name":"short","expires_in":"1h"}`)
	h.createKey(`{"name":"forever"}`)

	h.now = start.Add(time.Hour - time.Second)
	if st := h.showKey("short").Status; st != "active" {
		t.Fatalf("one second before expiry: %s", st)
	}
	h.now = start.Add(time.Hour)
	if st := h.showKey("short").Status; st != "expired" {
		t.Fatalf("at the expiry instant: %s", st)
	}
	h.now = start.Add(1000 * 24 * time.Hour)
	if got := h.listStatus(); got["short"] != "expired" || got["forever"] != "active" {
		t.Fatalf("list statuses: %v", got)
	}
	h.mustStatus(h.do("POST", "/api/v1/keys/short/revoke", ""), http.StatusOK)
	if got := h.listStatus(); got["short"] != "revoked" || got["forever"] != "active" {
		t.Fatalf("after revoking the expired key: %v", got)
	}
	// Moving the clock back does not un-revoke.
	h.now = start
	if st := h.showKey("short").Status; st != "revoked" {
		t.Fatalf("revoked key with the clock before its expiry: %s", st)
	}
}

// TestKeyRevocation: by id or by name, the gateway's cache is told at once,
// the first revocation time stands, and the key stops verifying.
func TestKeyRevocation(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	byID := h.createKey(`{"name":"by-id"}`)
	byName := h.createKey(`{"name":"by-name"}`)
	keep := h.createKey(`{"name":"keep"}`)

	// A verifier that has cached both keys, as the gateway's would.
	v := keysource.New(h.hasher, h.st, keysource.WithTTL(time.Hour))
	for _, s := range []string{byID.Secret, byName.Secret, keep.Secret} {
		if _, err := v.Verify(ctx, s, h.now); err != nil {
			t.Fatal(err)
		}
	}
	revokedAt := h.now
	w := h.do("POST", "/api/v1/keys/"+byID.Key.ID+"/revoke", "")
	h.mustStatus(w, http.StatusOK)
	var k adminapi.Key
	decode(t, w, &k)
	if k.ID != byID.Key.ID || k.Status != "revoked" || k.RevokedAt == nil || !k.RevokedAt.Equal(revokedAt) {
		t.Fatalf("revoke by id: %+v", k)
	}
	h.now = h.now.Add(time.Minute)
	w = h.do("POST", "/api/v1/keys/by-name/revoke", "")
	h.mustStatus(w, http.StatusOK)
	decode(t, w, &k)
	if k.ID != byName.Key.ID || k.Status != "revoked" || !k.RevokedAt.Equal(h.now) {
		t.Fatalf("revoke by name: %+v", k)
	}
	if got := h.revocations(); len(got) != 2 || got[0] != byID.Key.ID || got[1] != byName.Key.ID {
		t.Fatalf("KeyRevoked calls %v, want [%s %s]", got, byID.Key.ID, byName.Key.ID)
	}

	// Revoking again changes nothing: the first revocation time stands.
	h.now = h.now.Add(time.Hour)
	w = h.do("POST", "/api/v1/keys/"+byID.Key.ID+"/revoke", "")
	h.mustStatus(w, http.StatusOK)
	decode(t, w, &k)
	if k.Status != "revoked" || k.RevokedAt == nil || !k.RevokedAt.Equal(revokedAt) {
		t.Fatalf("second revoke moved revoked_at: %+v, first %v", k, revokedAt)
	}
	if shown := h.showKey("by-id"); !shown.RevokedAt.Equal(revokedAt) {
		t.Fatalf("stored revoked_at %v, want %v", shown.RevokedAt, revokedAt)
	}

	// Wired to the verifier as keygate wires it, the revocations apply to
	// the very next check despite the hour-long cache.
	for _, id := range h.revocations() {
		v.Invalidate(id)
	}
	for _, s := range []string{byID.Secret, byName.Secret} {
		if _, err := v.Verify(ctx, s, h.now); !errors.Is(err, apikey.ErrRevoked) {
			t.Fatalf("revoked key verifies: %v", err)
		}
	}
	if _, err := v.Verify(ctx, keep.Secret, h.now); err != nil {
		t.Fatalf("an unrelated key stopped verifying: %v", err)
	}
	if st := h.listStatus(); st["keep"] != "active" {
		t.Fatalf("unrelated key: %v", st)
	}
	wantError(t, h.do("POST", "/api/v1/keys/nobody/revoke", ""), http.StatusNotFound, "not_found", `"nobody"`)
}

// TestKeyRefByNameThatLooksLikeAnID: a key whose name starts with key_ is
// still found by its name.
func TestKeyRefByNameThatLooksLikeAnID(t *testing.T) {
	h := newHarness(t)
	created := h.createKey(`{"name":"key_rotation-bot"}`)
	if got := h.showKey("key_rotation-bot"); got.ID != created.Key.ID {
		t.Fatalf("show by a key_-prefixed name: %+v", got)
	}
	h.mustStatus(h.do("POST", "/api/v1/keys/key_rotation-bot/revoke", ""), http.StatusOK)
	if got := h.showKey(created.Key.ID); got.Status != "revoked" {
		t.Fatalf("revoke by a key_-prefixed name: %+v", got)
	}
}
