package adminclient

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/secret"
)

// canary returns an obviously fake secret value, new on every call.
func canary(t *testing.T) string {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "canary-" + hex.EncodeToString(b)
}

// vaultServer records each request as "METHOD escaped-path?query" with its
// body, and answers with the handler the test gives.
type vaultServer struct {
	mu     sync.Mutex
	seen   []string
	bodies []string
}

func (v *vaultServer) start(t *testing.T, tok string, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+tok {
			writeJSON(w, 401, adminapi.ErrorBody{Error: adminapi.ErrorDetail{Code: "unauthorized", Message: "invalid admin credential"}})
			return
		}
		b, _ := io.ReadAll(r.Body)
		line := r.Method + " " + r.URL.EscapedPath()
		if r.URL.RawQuery != "" {
			line += "?" + r.URL.RawQuery
		}
		v.mu.Lock()
		v.seen = append(v.seen, line)
		v.bodies = append(v.bodies, string(b))
		v.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func (v *vaultServer) requests() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string{}, v.seen...)
}

func TestSecretMethods(t *testing.T) {
	t.Parallel()
	tok := testToken(t)
	value := canary(t)
	now := time.Date(2025, 4, 5, 6, 7, 8, 0, time.UTC)
	meta := adminapi.Secret{Name: "payments/stripe", CurrentVersion: 2, Versions: 2, CreatedAt: now, UpdatedAt: now}
	var vs vaultServer
	srv := vs.start(t, tok, func(w http.ResponseWriter, r *http.Request) {
		p := strings.TrimPrefix(r.URL.Path, "/api/v1")
		switch {
		case r.Method == http.MethodPut:
			writeJSON(w, 201, meta)
		case p == "/secrets":
			writeJSON(w, 200, adminapi.SecretList{Secrets: []adminapi.Secret{meta}})
		case strings.HasSuffix(p, ":versions"):
			writeJSON(w, 200, adminapi.SecretVersionList{Name: "payments/stripe", Versions: []adminapi.SecretVersion{{Version: 1}, {Version: 2, Current: true}}})
		case strings.HasSuffix(p, ":value"):
			version := 2
			if r.URL.Query().Get("version") == "1" {
				version = 1
			}
			writeJSON(w, 200, adminapi.SecretValue{Name: "payments/stripe", Version: version, Value: value})
		case r.Method == http.MethodDelete && r.URL.Query().Get("purge") == "true":
			w.WriteHeader(http.StatusNoContent)
		case r.Method == http.MethodDelete:
			m := meta
			m.DeletedAt, m.PurgeAt = &now, &now
			writeJSON(w, 200, m)
		default:
			writeJSON(w, 200, meta)
		}
	})
	c := newClient(t, srv.URL, tok)
	ctx := context.Background()

	if s, err := c.PutSecret(ctx, "payments/stripe", secret.New(value)); err != nil || s.CurrentVersion != 2 {
		t.Fatalf("PutSecret = %+v, %v", s, err)
	}
	if s, err := c.GetSecret(ctx, "payments/stripe"); err != nil || s.Name != "payments/stripe" {
		t.Fatalf("GetSecret = %+v, %v", s, err)
	}
	if l, err := c.ListSecrets(ctx, false); err != nil || len(l) != 1 {
		t.Fatalf("ListSecrets = %+v, %v", l, err)
	}
	if _, err := c.ListSecrets(ctx, true); err != nil {
		t.Fatal(err)
	}
	if v, err := c.SecretVersions(ctx, "payments/stripe"); err != nil || len(v) != 2 || !v[1].Current {
		t.Fatalf("SecretVersions = %+v, %v", v, err)
	}
	got, ver, err := c.SecretValue(ctx, "payments/stripe", 0)
	if err != nil || got.Reveal() != value || ver != 2 {
		t.Fatalf("SecretValue = %v, %d, %v", got, ver, err)
	}
	if _, ver, err := c.SecretValue(ctx, "payments/stripe", 1); err != nil || ver != 1 {
		t.Fatalf("SecretValue version 1 = %d, %v", ver, err)
	}
	if _, err := c.RollbackSecret(ctx, "payments/stripe", 1); err != nil {
		t.Fatal(err)
	}
	if s, err := c.DeleteSecret(ctx, "payments/stripe", false); err != nil || s.PurgeAt == nil {
		t.Fatalf("DeleteSecret = %+v, %v", s, err)
	}
	if _, err := c.RestoreSecret(ctx, "payments/stripe"); err != nil {
		t.Fatal(err)
	}
	if s, err := c.DeleteSecret(ctx, "payments/stripe", true); err != nil || s.Name != "" {
		t.Fatalf("DeleteSecret purge = %+v, %v", s, err)
	}

	want := []string{
		"PUT /api/v1/secrets/payments/stripe",
		"GET /api/v1/secrets/payments/stripe",
		"GET /api/v1/secrets",
		"GET /api/v1/secrets?deleted=true",
		"GET /api/v1/secrets/payments/stripe:versions",
		"GET /api/v1/secrets/payments/stripe:value",
		"GET /api/v1/secrets/payments/stripe:value?version=1",
		"POST /api/v1/secrets/payments/stripe:rollback",
		"DELETE /api/v1/secrets/payments/stripe",
		"POST /api/v1/secrets/payments/stripe:restore",
		"DELETE /api/v1/secrets/payments/stripe?purge=true",
	}
	if got := vs.requests(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var put adminapi.PutSecretRequest
	if err := json.Unmarshal([]byte(vs.bodies[0]), &put); err != nil || put.Value != value {
		t.Errorf("PUT body = %q, %v", vs.bodies[0], err)
	}
	var rb adminapi.RollbackSecretRequest
	if err := json.Unmarshal([]byte(vs.bodies[7]), &rb); err != nil || rb.Version != 1 {
		t.Errorf("rollback body = %q, %v", vs.bodies[7], err)
	}
}

func TestSecretMethodsValidateBeforeRequest(t *testing.T) {
	t.Parallel()
	tok := testToken(t)
	var vs vaultServer
	srv := vs.start(t, tok, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, adminapi.Secret{}) })
	c := newClient(t, srv.URL, tok)
	ctx := context.Background()
	for _, name := range []string{"", "a//b", "/a", "a/", "../x", "a b", "a?b", "a%2Fb", "a:value"} {
		if _, err := c.GetSecret(ctx, name); err == nil {
			t.Errorf("GetSecret(%q): want an error", name)
		}
		if _, _, err := c.SecretValue(ctx, name, 0); err == nil {
			t.Errorf("SecretValue(%q): want an error", name)
		}
	}
	if _, err := c.PutSecret(ctx, "ok", secret.String{}); err == nil {
		t.Error("PutSecret with an empty value: want an error")
	}
	if _, _, err := c.SecretValue(ctx, "ok", -1); err == nil {
		t.Error("SecretValue version -1: want an error")
	}
	if _, err := c.RollbackSecret(ctx, "ok", 0); err == nil {
		t.Error("RollbackSecret version 0: want an error")
	}
	if _, err := c.RotateProvider(ctx, "openai", secret.String{}, ""); err == nil {
		t.Error("RotateProvider with an empty key: want an error")
	}
	if _, err := c.RotateKEK(ctx, adminapi.RotateKEKRequest{To: " "}); err == nil {
		t.Error("RotateKEK with no URL: want an error")
	}
	if n := len(vs.requests()); n != 0 {
		t.Errorf("%d requests were sent, want none", n)
	}
}

func TestSecretValueForbidden(t *testing.T) {
	t.Parallel()
	tok := testToken(t)
	var vs vaultServer
	srv := vs.start(t, tok, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 403, adminapi.ErrorBody{Error: adminapi.ErrorDetail{Code: "forbidden", Message: "operator credentials may not read secret values"}})
	})
	c := newClient(t, srv.URL, tok)
	v, _, err := c.SecretValue(context.Background(), "db/password", 0)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 403 || apiErr.Code != "forbidden" || !v.IsZero() {
		t.Fatalf("err = %#v", err)
	}
	if want := "keygate admin API: forbidden: operator"; !strings.Contains(err.Error(), want) {
		t.Errorf("Error() = %q, want it to contain %q", err, want)
	}
}

func TestRotateProviderAndKEK(t *testing.T) {
	t.Parallel()
	tok := testToken(t)
	key := canary(t)
	kekURL := "base64key://" + canary(t)
	destroy := time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC)
	var vs vaultServer
	srv := vs.start(t, tok, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/providers/openai/rotate":
			writeJSON(w, 200, adminapi.ProviderRotation{Provider: adminapi.Provider{Name: "openai"}, Version: 3, PreviousVersion: 2, PreviousDestroyAt: destroy})
		case "/api/v1/vault/rotate-kek":
			var req adminapi.RotateKEKRequest
			_ = json.NewDecoder(strings.NewReader(vs.bodies[len(vs.bodies)-1])).Decode(&req)
			if req.BatchSize == 7 {
				// A careless server that repeats the URL it could not open.
				writeJSON(w, 400, adminapi.ErrorBody{Error: adminapi.ErrorDetail{Code: "bad_request", Message: "cannot open " + req.To}})
				return
			}
			writeJSON(w, 202, adminapi.KEKRotation{ID: "rot_1", From: "kek_a", To: "kek_b", State: "running", Remaining: 5})
		case "/api/v1/vault/status":
			writeJSON(w, 200, adminapi.VaultStatus{KEKID: "kek_b", KEKKind: "kms", Counts: []adminapi.KEKCount{{KEKID: "kek_a", Format: 1, Versions: 5}}})
		case "/api/v1/status":
			writeJSON(w, 200, adminapi.Status{Version: "1.0", GatewayURL: "http://127.0.0.1:8787", KEKID: "kek_b"})
		default:
			http.NotFound(w, r)
		}
	})
	c := newClient(t, srv.URL, tok)
	ctx := context.Background()

	rot, err := c.RotateProvider(ctx, "openai", secret.New(key), "7d")
	if err != nil || rot.Version != 3 || !rot.PreviousDestroyAt.Equal(destroy) {
		t.Fatalf("RotateProvider = %+v, %v", rot, err)
	}
	var rp adminapi.RotateProviderRequest
	if err := json.Unmarshal([]byte(vs.bodies[0]), &rp); err != nil || rp.APIKey != key || rp.Grace != "7d" {
		t.Errorf("rotate body = %+v, %v", rp, err)
	}

	kr, err := c.RotateKEK(ctx, adminapi.RotateKEKRequest{To: kekURL, BatchSize: 50, BatchInterval: "10ms"})
	if err != nil || kr.ID != "rot_1" || kr.To != "kek_b" {
		t.Fatalf("RotateKEK = %+v, %v", kr, err)
	}
	_, err = c.RotateKEK(ctx, adminapi.RotateKEKRequest{To: kekURL, BatchSize: 7})
	if err == nil || strings.Contains(err.Error(), kekURL) || strings.Contains(err.Error(), strings.TrimPrefix(kekURL, "base64key://")) {
		t.Fatalf("RotateKEK error repeats the URL or is nil: %v", err)
	}

	st, err := c.VaultStatus(ctx)
	if err != nil || st.KEKKind != "kms" || len(st.Counts) != 1 {
		t.Fatalf("VaultStatus = %+v, %v", st, err)
	}
	s, err := c.Status(ctx)
	if err != nil || s.GatewayURL != "http://127.0.0.1:8787" {
		t.Fatalf("Status = %+v, %v", s, err)
	}
	for _, r := range vs.requests() {
		if strings.Contains(r, key) || strings.Contains(r, kekURL) {
			t.Errorf("a secret reached the request line %q", r)
		}
	}
}

func TestBackupStreams(t *testing.T) {
	t.Parallel()
	tok := testToken(t)
	payload := bytes.Repeat([]byte("keygate-test-backup\x00\x01"), 100000) // about 2 MB: many reads, binary bytes
	mode := map[string]string{}
	var mu sync.Mutex
	var vs vaultServer
	srv := vs.start(t, tok, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		m := mode["m"]
		mu.Unlock()
		switch m {
		case "forbidden":
			writeJSON(w, 403, adminapi.ErrorBody{Error: adminapi.ErrorDetail{Code: "forbidden", Message: "operator credentials may not export backups"}})
		case "html":
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte("<html>a login page</html>"))
		case "cut":
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Length", "1000000")
			_, _ = w.Write(payload[:1000])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler) // the connection drops mid-way
		default:
			if r.Header.Get("Accept") != "application/octet-stream" {
				t.Errorf("Accept = %q", r.Header.Get("Accept"))
			}
			w.Header().Set("Content-Type", "application/octet-stream")
			_, _ = w.Write(payload)
		}
	})
	c := newClient(t, srv.URL, tok)
	ctx := context.Background()

	var buf bytes.Buffer
	if err := c.Backup(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), payload) {
		t.Fatalf("backup: got %d bytes, want %d identical ones", buf.Len(), len(payload))
	}

	set := func(m string) { mu.Lock(); mode["m"] = m; mu.Unlock() }
	set("forbidden")
	err := c.Backup(ctx, io.Discard)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Code != "forbidden" {
		t.Fatalf("forbidden: %v", err)
	}
	set("html")
	if err := c.Backup(ctx, io.Discard); err == nil || !strings.Contains(err.Error(), "admin listener") {
		t.Fatalf("HTML answer: %v", err)
	}
	set("cut")
	if err := c.Backup(ctx, io.Discard); err == nil || !strings.Contains(err.Error(), "1000 bytes") {
		t.Fatalf("cut answer: %v", err)
	}
	if got := vs.requests(); got[0] != "GET /api/v1/vault/backup" {
		t.Errorf("request = %q", got[0])
	}
}
