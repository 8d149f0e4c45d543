package admin_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	_ "gocloud.dev/secrets/localsecrets" // base64key:// KEKs for the rotation tests

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/vault"
)

func putBody(t *testing.T, value string) string {
	b, err := json.Marshal(adminapi.PutSecretRequest{Value: value})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func secretValue(t *testing.T, h *harness, path string) adminapi.SecretValue {
	t.Helper()
	w := h.do("GET", path, "")
	h.mustStatus(w, http.StatusOK)
	var v adminapi.SecretValue
	decode(t, w, &v)
	return v
}

// TestSecretLifecycle walks one secret through every route a user has.
func TestSecretLifecycle(t *testing.T) {
	h := newHarness(t)
	const base = "/api/v1/secrets/payments/stripe"
	v1, v2 := canary(t, "stripe-1"), canary(t, "stripe-2")

	w := h.do("PUT", base, putBody(t, v1))
	h.mustStatus(w, http.StatusCreated)
	var s adminapi.Secret
	decode(t, w, &s)
	if s.Name != "payments/stripe" || s.CurrentVersion != 1 || s.Versions != 1 {
		t.Fatalf("created %+v", s)
	}
	h.now = h.now.Add(time.Minute)
	w = h.do("PUT", base, putBody(t, v2))
	h.mustStatus(w, http.StatusOK)
	decode(t, w, &s)
	if s.CurrentVersion != 2 || !s.UpdatedAt.Equal(h.now) {
		t.Fatalf("second put %+v", s)
	}
	if got := secretValue(t, h, base+":value"); got.Value != v2 || got.Version != 2 {
		t.Fatalf("value = v%d", got.Version)
	}
	if got := secretValue(t, h, base+":value?version=1"); got.Value != v1 {
		t.Fatal("version 1 holds another value")
	}
	var vl adminapi.SecretVersionList
	decode(t, h.do("GET", base+":versions", ""), &vl)
	if len(vl.Versions) != 2 || vl.Versions[0].Current || !vl.Versions[1].Current || vl.Versions[1].KEKID != h.vault.KEKID() {
		t.Fatalf("versions %+v", vl)
	}

	// Rollback stores version 1's value as version 3.
	w = h.do("POST", base+":rollback", `{"version":1}`)
	h.mustStatus(w, http.StatusOK)
	decode(t, w, &s)
	if s.CurrentVersion != 3 {
		t.Fatalf("after rollback %+v", s)
	}
	if got := secretValue(t, h, base+":value"); got.Value != v1 || got.Version != 3 {
		t.Fatal("rollback did not make version 1's value current")
	}
	wantError(t, h.do("POST", base+":rollback", `{"version":3}`), http.StatusBadRequest, "bad_request", "earlier version")

	// Metadata never carries the value.
	for _, path := range []string{base, base + ":versions", "/api/v1/secrets"} {
		if body := h.do("GET", path, "").Body.String(); strings.Contains(body, v1) || strings.Contains(body, v2) {
			t.Fatalf("GET %s returned a secret value", path)
		}
	}

	// Soft delete: hidden, unreadable, restorable.
	w = h.do("DELETE", base, "")
	h.mustStatus(w, http.StatusOK)
	decode(t, w, &s)
	if s.DeletedAt == nil || s.PurgeAt == nil || !s.PurgeAt.Equal(h.now.Add(30*24*time.Hour)) {
		t.Fatalf("deleted %+v", s)
	}
	wantError(t, h.do("GET", base+":value", ""), http.StatusNotFound, "not_found", "deleted", "restore")
	wantError(t, h.do("PUT", base, putBody(t, v2)), http.StatusConflict, "conflict", "restore", "purge")
	wantError(t, h.do("DELETE", base, ""), http.StatusConflict, "conflict", "already deleted")
	var list adminapi.SecretList
	decode(t, h.do("GET", "/api/v1/secrets", ""), &list)
	if len(list.Secrets) != 0 {
		t.Fatalf("deleted secret listed: %+v", list)
	}
	decode(t, h.do("GET", "/api/v1/secrets?deleted=true", ""), &list)
	if len(list.Secrets) != 1 || list.Secrets[0].DeletedAt == nil {
		t.Fatalf("list with deleted: %+v", list)
	}
	h.mustStatus(h.do("POST", base+":restore", ""), http.StatusOK)
	if got := secretValue(t, h, base+":value"); got.Value != v1 {
		t.Fatal("restored secret lost its value")
	}

	// Purge destroys it for good.
	h.mustStatus(h.do("DELETE", base+"?purge=true", ""), http.StatusNoContent)
	wantError(t, h.do("GET", base, ""), http.StatusNotFound, "not_found")
	wantError(t, h.do("POST", base+":restore", ""), http.StatusNotFound, "not_found", "purged")
	if n := strings.Count(h.log.String(), "secret value read"); n != 4 {
		t.Errorf("%d value reads logged, want 4", n)
	}
	logs := h.log.String()
	for _, bad := range []string{v1, v2, "payments/stripe"} {
		if strings.Contains(logs, bad) {
			t.Fatalf("the log holds %q; secrets are logged by reference only", bad)
		}
	}
}

func TestSecretValidation(t *testing.T) {
	h := newHarness(t)
	for _, name := range []string{"a//b", "a/", "/a", "a b", "a/../b", "-x", "a:b/c", strings.Repeat("n", 256)} {
		w := h.do("PUT", "/api/v1/secrets/"+strings.ReplaceAll(name, " ", "%20"), putBody(t, "x"))
		// The router answers unclean paths (a//b, a/../b) with a redirect to
		// the clean one, which stores nothing either.
		if w.Code != http.StatusBadRequest && w.Code != http.StatusNotFound && w.Code != http.StatusTemporaryRedirect {
			t.Errorf("name %q: status %d, want 400, 404 or 307", name, w.Code)
		}
	}
	wantError(t, h.do("PUT", "/api/v1/secrets/app/x", putBody(t, "")), http.StatusBadRequest, "bad_request", "value")
	wantError(t, h.do("PUT", "/api/v1/secrets/app/x", putBody(t, strings.Repeat("v", 64<<10+1))), http.StatusBadRequest, "bad_request", "bytes")
	wantError(t, h.do("GET", "/api/v1/secrets/app/none:value", ""), http.StatusNotFound, "not_found")
	h.mustStatus(h.do("PUT", "/api/v1/secrets/app/x", putBody(t, "fake-value")), http.StatusCreated)
	wantError(t, h.do("GET", "/api/v1/secrets/app/x:value?version=0", ""), http.StatusBadRequest, "bad_request", "version")
	wantError(t, h.do("GET", "/api/v1/secrets/app/x:value?version=9", ""), http.StatusNotFound, "not_found", "version 9")
	wantError(t, h.do("POST", "/api/v1/secrets/app/x:explode", ""), http.StatusNotFound, "not_found", ":rollback")
	var list adminapi.SecretList
	decode(t, h.do("GET", "/api/v1/secrets", ""), &list)
	if len(list.Secrets) != 1 {
		t.Fatalf("refused puts stored something: %+v", list)
	}
}

// operator makes an operator credential and returns its Authorization value.
func operator(t *testing.T, h *harness) string {
	t.Helper()
	tok, err := apikey.GenerateAdmin()
	if err != nil {
		t.Fatal(err)
	}
	sum := h.hasher.Hash(tok.Reveal())
	if err := h.st.CreateAdminToken(context.Background(), store.AdminToken{
		ID: "adm_operator", Name: "ops", Role: adminapi.RoleOperator, Hash: sum[:], CreatedAt: h.now,
	}); err != nil {
		t.Fatal(err)
	}
	return "Bearer " + tok.Reveal()
}

// TestOperatorCannotReadSecrets: an operator manages secrets but never sees
// one, nor exports a backup, nor moves the KEK.
func TestOperatorCannotReadSecrets(t *testing.T) {
	h := newHarness(t)
	op := operator(t, h)
	value := canary(t, "operator")
	h.mustStatus(h.call("PUT", "/api/v1/secrets/app/db", putBody(t, value), op), http.StatusCreated)
	h.mustStatus(h.call("GET", "/api/v1/secrets/app/db", "", op), http.StatusOK)
	for _, req := range []struct{ method, path, body string }{
		{"GET", "/api/v1/secrets/app/db:value", ""},
		{"GET", "/api/v1/vault/backup", ""},
		{"POST", "/api/v1/vault/rotate-kek", `{"to":"base64key://"}`},
	} {
		w := h.call(req.method, req.path, req.body, op)
		wantError(t, w, http.StatusForbidden, "forbidden", "operator")
		if strings.Contains(w.Body.String(), value) {
			t.Fatal("a refused read returned the value")
		}
	}
	if got := secretValue(t, h, "/api/v1/secrets/app/db:value"); got.Value != value {
		t.Fatal("the admin cannot read what the operator stored")
	}
}

func TestRotateProvider(t *testing.T) {
	h := newHarness(t)
	first, second := canary(t, "first"), canary(t, "second")
	h.mustStatus(h.do("POST", "/api/v1/providers", providerBody("openai", "https://api.openai.example/v1", first, "")), http.StatusCreated)
	before := h.changes()

	w := h.do("POST", "/api/v1/providers/openai/rotate", fmt.Sprintf(`{"api_key":%q,"grace":"2h"}`, second))
	h.mustStatus(w, http.StatusOK)
	var rot adminapi.ProviderRotation
	decode(t, w, &rot)
	if rot.Version != 2 || rot.PreviousVersion != 1 || !rot.PreviousDestroyAt.Equal(h.now.Add(2*time.Hour)) || rot.Provider.Name != "openai" {
		t.Fatalf("rotation %+v", rot)
	}
	if strings.Contains(w.Body.String(), second) || strings.Contains(h.log.String(), second) {
		t.Fatal("the new key was echoed")
	}
	if h.changes() != before+1 {
		t.Fatal("the gateway was not told to reload its providers")
	}
	p, err := h.st.GetProvider(context.Background(), "openai")
	if err != nil {
		t.Fatal(err)
	}
	cur, ver, err := h.vault.Get(context.Background(), p.SecretID)
	if err != nil || ver != 2 || cur.Reveal() != second {
		t.Fatalf("current key is v%d, %v", ver, err)
	}
	vs, _ := h.st.ListSecretVersions(context.Background(), p.SecretID)
	if len(vs) != 2 || vs[0].DestroyAt == nil || !vs[0].DestroyAt.Equal(h.now.Add(2*time.Hour)) || vs[1].DestroyAt != nil {
		t.Fatalf("versions after rotation: %+v", vs)
	}

	// Default grace, and the errors.
	w = h.do("POST", "/api/v1/providers/openai/rotate", fmt.Sprintf(`{"api_key":%q}`, canary(t, "third")))
	decode(t, w, &rot)
	if !rot.PreviousDestroyAt.Equal(h.now.Add(24 * time.Hour)) {
		t.Fatalf("default grace: previous destroyed at %v", rot.PreviousDestroyAt)
	}
	wantError(t, h.do("POST", "/api/v1/providers/openai/rotate", `{"api_key":""}`), http.StatusBadRequest, "bad_request", "api_key")
	wantError(t, h.do("POST", "/api/v1/providers/openai/rotate", `{"api_key":"k","grace":"soon"}`), http.StatusBadRequest, "bad_request", "grace")
	wantError(t, h.do("POST", "/api/v1/providers/nope/rotate", `{"api_key":"k"}`), http.StatusNotFound, "not_found")
}

func base64KeyURL(t *testing.T) string {
	return "base64key://" + base64.URLEncoding.EncodeToString(randomBytes(t, 32))
}

func TestRotateKEKThroughTheAPI(t *testing.T) {
	h := newHarness(t)
	for i := range 12 {
		h.mustStatus(h.do("PUT", fmt.Sprintf("/api/v1/secrets/app/s%d", i), putBody(t, canary(t, "s"))), http.StatusCreated)
	}
	oldID := h.vault.KEKID()
	h.vault.SetKEKURL(oldID, secretOf("file:///not/used/by/this/test"))
	to := base64KeyURL(t)

	w := h.do("POST", "/api/v1/vault/rotate-kek", fmt.Sprintf(`{"to":%q,"batch_size":5}`, to))
	h.mustStatus(w, http.StatusAccepted)
	if strings.Contains(w.Body.String(), strings.TrimPrefix(to, "base64key://")) || strings.Contains(h.log.String(), strings.TrimPrefix(to, "base64key://")) {
		t.Fatal("the new KEK's key material was echoed or logged")
	}
	var rot adminapi.KEKRotation
	decode(t, w, &rot)
	if rot.From != oldID || rot.To == oldID || !strings.HasPrefix(rot.To, "kms:") {
		t.Fatalf("rotation %+v", rot)
	}
	var st adminapi.VaultStatus
	deadline := time.Now().Add(20 * time.Second)
	for {
		decode(t, h.do("GET", "/api/v1/vault/status", ""), &st)
		if st.Rotation != nil && st.Rotation.State == "finished" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rotation did not finish: %+v", st.Rotation)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st.KEKID != rot.To || st.KEKKind != "kms" || st.Rotation.Remaining != 0 || st.Rotation.Rewrapped < 12 {
		t.Fatalf("status %+v rotation %+v", st, st.Rotation)
	}
	if got := secretValue(t, h, "/api/v1/secrets/app/s3:value"); got.Value == "" {
		t.Fatal("a rotated secret does not open")
	}
	// The status says what each KEK still opens: the old one, only the
	// locator of the new one (a file URL, not key material), kept for the
	// grace in which other nodes may follow; the new one's URL is its key,
	// so it is recorded redacted and never stored.
	if len(st.KEKs) != 2 || !st.KEKs[0].Current || st.KEKs[0].KEKID != rot.To || st.KEKs[0].URL != "base64key://REDACTED" ||
		st.KEKs[0].Opens < 12 || !strings.HasPrefix(st.KEKs[0].Verdict, "wraps ") {
		t.Fatalf("the current KEK in the status: %+v", st.KEKs)
	}
	if o := st.KEKs[1]; o.KEKID != oldID || o.Current || o.Opens != 0 || o.Verdict != "opens nothing; it can be destroyed once no keygate is configured with it" {
		t.Fatalf("the old KEK in the status: %+v", o)
	}

	wantError(t, h.do("POST", "/api/v1/vault/rotate-kek", fmt.Sprintf(`{"to":%q}`, to)), http.StatusConflict, "conflict", "already")
	bad := "base64key://" + strings.Repeat("A", 10)
	w = h.do("POST", "/api/v1/vault/rotate-kek", fmt.Sprintf(`{"to":%q}`, bad))
	wantError(t, w, http.StatusBadRequest, "bad_request")
	if strings.Contains(w.Body.String(), strings.Repeat("A", 10)) {
		t.Fatalf("a bad KEK URL was echoed: %s", w.Body)
	}
	wantError(t, h.do("POST", "/api/v1/vault/rotate-kek", `{"to":""}`), http.StatusBadRequest, "bad_request", "to is required")
	wantError(t, h.do("POST", "/api/v1/vault/rotate-kek", fmt.Sprintf(`{"to":%q,"batch_interval":"forever"}`, base64KeyURL(t))), http.StatusBadRequest, "bad_request", "batch_interval")
}

func TestBackupThroughTheAPI(t *testing.T) {
	h := newHarness(t)
	value := canary(t, "backup")
	h.mustStatus(h.do("PUT", "/api/v1/secrets/app/backed-up", putBody(t, value)), http.StatusCreated)
	w := h.do("GET", "/api/v1/vault/backup", "")
	h.mustStatus(w, http.StatusOK)
	if ct := w.Header().Get("Content-Type"); ct != "application/octet-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	if bytes.Contains(w.Body.Bytes(), []byte(value)) || bytes.Contains(w.Body.Bytes(), []byte("app/backed-up")) {
		t.Fatal("the backup holds a secret or a secret's name in clear")
	}
	snap, hdr, err := vault.ReadBackup(context.Background(), bytes.NewReader(w.Body.Bytes()),
		func(context.Context, vault.BackupHeader) (vault.KEK, error) { return h.vault.Current(), nil })
	if err != nil {
		t.Fatal(err)
	}
	if hdr.KEKID != h.vault.KEKID() || len(snap.Secrets) != 1 || snap.Secrets[0].Name != "app/backed-up" {
		t.Fatalf("backup header %+v, secrets %+v", hdr, snap.Secrets)
	}
}

func secretOf(s string) secret.String { return secret.New(s) }

// TestAuditRef: an admin computes the reference a secret's name is logged
// under, and finds it in the log line of a read.
func TestAuditRef(t *testing.T) {
	h := newHarness(t)
	h.mustStatus(h.do("PUT", "/api/v1/secrets/payments/stripe", putBody(t, canary(t, "ref"))), http.StatusCreated)
	h.mustStatus(h.do("GET", "/api/v1/secrets/payments/stripe:value", ""), http.StatusOK)
	var ref struct {
		Ref string `json:"ref"`
	}
	decode(t, h.do("POST", "/api/v1/audit/ref", `{"value":"payments/stripe"}`), &ref)
	if !strings.HasPrefix(ref.Ref, "ref:") || !strings.Contains(h.log.String(), strings.TrimPrefix(ref.Ref, "ref:")) {
		t.Fatalf("ref %q not in the log", ref.Ref)
	}
	wantError(t, h.do("POST", "/api/v1/audit/ref", `{}`), http.StatusBadRequest, "bad_request")
}
