package admin_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/admin"
	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/store/storetest"
	"github.com/keygate/keygate/internal/vault"
)

// lockedBuffer collects log output written from any goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// harness is an admin API over a real SQLite store, a real vault and a real
// hasher, with a clock the test moves and a record of the change callbacks.
type harness struct {
	t      testing.TB
	dbPath string
	st     *store.Store
	vault  *vault.Vault
	rot    *vault.Rotator
	hasher *apikey.Hasher
	api    *admin.API
	opts   admin.Options
	log    *lockedBuffer
	token  string // the bootstrap admin credential
	now    time.Time

	mu              sync.Mutex
	providerChanges int
	revoked         []string
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// newHarness builds the harness; mods adjust the admin API's options.
func newHarness(t testing.TB, mods ...func(*admin.Options)) *harness {
	t.Helper()
	url := storetest.SQLiteURL(t)
	st := storetest.Open(t, url)
	kek, err := vault.NewLocalKEK(randomBytes(t, vault.MasterKeySize))
	if err != nil {
		t.Fatal(err)
	}
	hasher, err := apikey.NewHasher(randomBytes(t, apikey.MinPepperSize))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{
		t: t, dbPath: strings.TrimPrefix(url, "sqlite://"), st: st, vault: vault.New(kek, st),
		hasher: hasher, log: &lockedBuffer{},
		now: time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC),
	}
	// The tests move the clock by months: the harness's owner credential
	// outlives them (the real bootstrap credential's expiry has its own test).
	tok, _, err := admin.NewToken(context.Background(), st, hasher, admin.TokenSpec{Name: "bootstrap", Kind: store.AdminTokenBootstrap, Role: "owner", TTL: 10 * 365 * 24 * time.Hour}, h.now)
	if err != nil {
		t.Fatalf("bootstrap token: %v", err)
	}
	h.token = tok.Reveal()
	h.rot = vault.NewRotator(t.Context(), h.vault, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(h.rot.Wait)
	opts := admin.Options{
		Rotator: h.rot,
		OpenKEK: func(ctx context.Context, url string) (vault.KEK, error) {
			o, err := vault.OpenKEK(ctx, url, vault.KEKOptions{DataDir: t.TempDir(), Create: true, Registry: st})
			if err != nil {
				return nil, err
			}
			t.Cleanup(func() { _ = o.Close() })
			return o.KEK, nil
		},
		Backup: func(ctx context.Context, w io.Writer) error {
			snap, err := st.ExportSnapshot(ctx)
			if err != nil {
				return err
			}
			return vault.WriteBackup(ctx, w, h.vault.Current(), snap, h.now)
		},
		GatewayURL: "http://127.0.0.1:8787",
		Version:    "test",
		Store:      st, Vault: h.vault, Hasher: hasher,
		People: st, Credentials: st, Approvals: st, Invitations: st,
		Log: slog.New(slog.NewTextHandler(h.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now: func() time.Time { return h.now },
		ProvidersChanged: func(context.Context) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.providerChanges++
			return nil
		},
		KeyRevoked: func(id string) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.revoked = append(h.revoked, id)
		},
	}
	for _, m := range mods {
		m(&opts)
	}
	h.opts = opts
	h.api = admin.New(opts)
	return h
}

func (h *harness) changes() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.providerChanges
}

func (h *harness) revocations() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.revoked...)
}

// call sends one request with the given Authorization header value ("" for none).
func (h *harness) call(method, path, body, auth string) *httptest.ResponseRecorder {
	h.t.Helper()
	var r *http.Request
	if body == "" {
		r = httptest.NewRequest(method, path, nil)
	} else {
		r = httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	h.api.ServeHTTP(w, r)
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		h.t.Errorf("%s %s: Cache-Control %q, want no-store", method, path, cc)
	}
	return w
}

// do sends a request with the bootstrap admin credential.
func (h *harness) do(method, path, body string) *httptest.ResponseRecorder {
	h.t.Helper()
	return h.call(method, path, body, "Bearer "+h.token)
}

// decode reads a JSON answer into v, refusing fields v does not declare.
func decode(t testing.TB, w *httptest.ResponseRecorder, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %T from %d %s: %v", v, w.Code, w.Body, err)
	}
}

// wantError checks status, that the body is an adminapi.ErrorBody with the
// code, and that its message contains every one of words.
func wantError(t testing.TB, w *httptest.ResponseRecorder, status int, code string, words ...string) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d: %s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("error Content-Type %q", ct)
	}
	var e adminapi.ErrorBody
	decode(t, w, &e)
	if e.Error.Code != code || e.Error.Message == "" {
		t.Fatalf("error body %+v, want code %q and a message", e, code)
	}
	for _, word := range words {
		if !strings.Contains(e.Error.Message, word) {
			t.Errorf("error message %q does not mention %q", e.Error.Message, word)
		}
	}
}

func (h *harness) mustStatus(w *httptest.ResponseRecorder, status int) {
	h.t.Helper()
	if w.Code != status {
		h.t.Fatalf("status %d, want %d: %s", w.Code, status, w.Body)
	}
}

// canary returns a fake upstream key that is unique to this run.
func canary(t *testing.T, label string) string {
	return "sk-test-canary-" + label + "-" + hex.EncodeToString(randomBytes(t, 12))
}

func providerBody(name, baseURL, apiKey string, extra string) string {
	b := `{"name":` + quote(name) + `,"base_url":` + quote(baseURL) + `,"api_key":` + quote(apiKey)
	if extra != "" {
		b += "," + extra
	}
	return b + "}"
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

var allRoutes = []struct{ method, path, body string }{
	{"GET", "/api/v1/whoami", ""},
	{"POST", "/api/v1/providers", `{"name":"openai","base_url":"https://api.example.test/v1","api_key":"sk-test-unauth"}`},
	{"GET", "/api/v1/providers", ""},
	{"GET", "/api/v1/providers/openai", ""},
	{"DELETE", "/api/v1/providers/openai", ""},
	{"POST", "/api/v1/keys", `{"name":"sneaky"}`},
	{"GET", "/api/v1/keys", ""},
	{"GET", "/api/v1/keys/app", ""},
	{"POST", "/api/v1/keys/app/revoke", ""},
	{"GET", "/api/v1/no-such-route", ""},
	{"GET", "/", ""},
}

// TestEveryRouteNeedsAnAdminCredential: no admin route, known or not, runs
// for a request without a valid, unrevoked admin credential, and nothing is
// changed by such a request.
func TestEveryRouteNeedsAnAdminCredential(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()

	// A real data-plane key, issued through the API and stored.
	w := h.do("POST", "/api/v1/keys", `{"name":"app"}`)
	h.mustStatus(w, http.StatusCreated)
	var created adminapi.CreatedKey
	decode(t, w, &created)

	// A second admin credential that works, then is revoked.
	second, err := apikey.GenerateAdmin()
	if err != nil {
		t.Fatal(err)
	}
	sum := h.hasher.Hash(second.Reveal())
	if err := h.st.CreateAdminToken(ctx, store.AdminToken{ID: "adm_second", Name: "ci", Hash: sum[:], CreatedAt: h.now}); err != nil {
		t.Fatal(err)
	}
	h.mustStatus(h.call("GET", "/api/v1/whoami", "", "Bearer "+second.Reveal()), http.StatusOK)
	if err := h.st.RevokeAdminToken(ctx, "adm_second", h.now); err != nil {
		t.Fatal(err)
	}
	// Well formed, correct checksum, never issued.
	unknown, err := apikey.GenerateAdmin()
	if err != nil {
		t.Fatal(err)
	}
	garbled := []byte(h.token)
	garbled[len(garbled)-3] ^= 1

	creds := map[string]string{
		"none":                     "",
		"empty bearer":             "Bearer ",
		"not bearer":               "Basic " + h.token,
		"malformed":                "Bearer kg_admin_not-a-real-credential",
		"bad checksum":             "Bearer " + string(garbled),
		"data-plane key":           "Bearer " + created.Secret,
		"revoked admin credential": "Bearer " + second.Reveal(),
		"unknown admin credential": "Bearer " + unknown.Reveal(),
	}
	for name, auth := range creds {
		for _, rt := range allRoutes {
			t.Run(name+" "+rt.method+" "+rt.path, func(t *testing.T) {
				wantError(t, h.call(rt.method, rt.path, rt.body, auth), http.StatusUnauthorized, "unauthorized")
			})
		}
	}

	// None of those requests changed anything.
	var ps adminapi.ProviderList
	decode(t, h.do("GET", "/api/v1/providers", ""), &ps)
	var ks adminapi.KeyList
	decode(t, h.do("GET", "/api/v1/keys", ""), &ks)
	if len(ps.Providers) != 0 || len(ks.Keys) != 1 || ks.Keys[0].Status != "active" {
		t.Fatalf("unauthenticated requests changed state: %+v %+v", ps, ks)
	}
	if h.changes() != 0 || len(h.revocations()) != 0 {
		t.Fatalf("callbacks ran for unauthenticated requests: %d changes, revoked %v", h.changes(), h.revocations())
	}
}

// TestAuthenticatedAnswers: a valid credential reaches the routes, answers
// carry the security headers, and an unknown route is a JSON 404.
func TestAuthenticatedAnswers(t *testing.T) {
	h := newHarness(t)
	w := h.call("GET", "/api/v1/keys", "", "bearer "+h.token) // the scheme is case-insensitive
	h.mustStatus(w, http.StatusOK)
	for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"} {
		if got := w.Header().Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	wantError(t, h.do("GET", "/api/v1/no-such-route", ""), http.StatusNotFound, "not_found", "/api/v1/no-such-route")
	wantError(t, h.do("GET", "/api/v1/providers/none", ""), http.StatusNotFound, "not_found", `"none"`)
	wantError(t, h.do("DELETE", "/api/v1/providers/none", ""), http.StatusNotFound, "not_found")
	wantError(t, h.do("GET", "/api/v1/keys/none", ""), http.StatusNotFound, "not_found")
	wantError(t, h.do("POST", "/api/v1/keys/key_000000000000000000000000/revoke", ""), http.StatusNotFound, "not_found")
}

// TestWhoAmI names the credential that made the request.
func TestWhoAmI(t *testing.T) {
	h := newHarness(t)
	tok, err := h.st.GetAdminTokenByHash(context.Background(), func() []byte { s := h.hasher.Hash(h.token); return s[:] }())
	if err != nil {
		t.Fatal(err)
	}
	var who adminapi.WhoAmI
	w := h.do("GET", "/api/v1/whoami", "")
	h.mustStatus(w, http.StatusOK)
	decode(t, w, &who)
	if who.TokenID != tok.ID || !strings.HasPrefix(who.TokenID, "adm_") || who.Name != "bootstrap" {
		t.Fatalf("whoami %+v, want id %q name bootstrap", who, tok.ID)
	}

	// A second credential is told apart from the first.
	other, err := apikey.GenerateAdmin()
	if err != nil {
		t.Fatal(err)
	}
	sum := h.hasher.Hash(other.Reveal())
	if err := h.st.CreateAdminToken(context.Background(), store.AdminToken{ID: "adm_automation", Name: "automation", Hash: sum[:], CreatedAt: h.now}); err != nil {
		t.Fatal(err)
	}
	w = h.call("GET", "/api/v1/whoami", "", "Bearer "+other.Reveal())
	h.mustStatus(w, http.StatusOK)
	decode(t, w, &who)
	// A credential of no user stored without a role is an owner's, as
	// every credential was before roles existed.
	if who.TokenID != "adm_automation" || who.Name != "automation" || who.Role != adminapi.RoleOwner || who.Kind != "token" || who.Via != "admin token" {
		t.Fatalf("whoami for the second credential: %+v", who)
	}

	// The bootstrap credential is made only once.
	if _, created, err := admin.EnsureBootstrapToken(context.Background(), h.st, h.hasher, h.now); err != nil || created {
		t.Fatalf("second bootstrap: created=%v err=%v", created, err)
	}
}
