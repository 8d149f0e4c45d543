package adminclient

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/secret"
)

// testToken builds an obviously fake admin credential at run time.
func testToken(t *testing.T) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "kg_admin_testonly" + hex.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func newClient(t *testing.T, url, token string, opts ...Option) *Client {
	t.Helper()
	c, err := New(url, secret.New(token), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRequestsCarryBearerAndDecode(t *testing.T) {
	t.Parallel()
	tok := testToken(t)
	var gotBody adminapi.CreateProviderRequest
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+tok {
			writeJSON(w, 401, adminapi.ErrorBody{Error: adminapi.ErrorDetail{Code: "unauthorized", Message: "invalid admin credential"}})
			return
		}
		paths = append(paths, r.Method+" "+r.URL.EscapedPath())
		switch {
		case r.URL.Path == "/base/api/v1/whoami":
			writeJSON(w, 200, adminapi.WhoAmI{TokenID: "adm_1", Name: "bootstrap"})
		case r.Method == http.MethodPost && r.URL.Path == "/base/api/v1/providers":
			if r.Header.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type = %q", r.Header.Get("Content-Type"))
			}
			_ = json.NewDecoder(r.Body).Decode(&gotBody)
			writeJSON(w, 201, adminapi.Provider{ID: "prv_1", Name: gotBody.Name})
		case r.Method == http.MethodDelete:
			w.WriteHeader(http.StatusNoContent)
		case r.URL.Path == "/base/api/v1/keys":
			writeJSON(w, 200, adminapi.KeyList{Keys: []adminapi.Key{{ID: "key_1", Name: "ci"}}})
		default:
			writeJSON(w, 200, adminapi.Key{ID: "key_2", Name: "x", Status: "revoked"})
		}
	}))
	defer srv.Close()
	c := newClient(t, srv.URL+"/base/", tok)
	ctx := context.Background()

	who, err := c.WhoAmI(ctx)
	if err != nil || who.Name != "bootstrap" {
		t.Fatalf("WhoAmI = %+v, %v", who, err)
	}
	p, err := c.CreateProvider(ctx, adminapi.CreateProviderRequest{Name: "openai", BaseURL: "https://api.openai.example/v1", APIKey: "test-upstream-key-123"})
	if err != nil || p.ID != "prv_1" || gotBody.APIKey != "test-upstream-key-123" {
		t.Fatalf("CreateProvider = %+v, %v (body %+v)", p, err, gotBody)
	}
	if err := c.DeleteProvider(ctx, "a b/c"); err != nil {
		t.Fatal(err)
	}
	keys, err := c.ListKeys(ctx)
	if err != nil || len(keys) != 1 || keys[0].Name != "ci" {
		t.Fatalf("ListKeys = %+v, %v", keys, err)
	}
	k, err := c.RevokeKey(ctx, "x")
	if err != nil || k.Status != "revoked" {
		t.Fatalf("RevokeKey = %+v, %v", k, err)
	}
	want := []string{
		"GET /base/api/v1/whoami", "POST /base/api/v1/providers", "DELETE /base/api/v1/providers/a%20b%2Fc",
		"GET /base/api/v1/keys", "POST /base/api/v1/keys/x/revoke",
	}
	if strings.Join(paths, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(paths, "\n"), strings.Join(want, "\n"))
	}
	if _, err := c.GetKey(ctx, " "); err == nil {
		t.Error("GetKey with an empty ref: want an error")
	}
	if s := fmt.Sprintf("%+v %#v", c, c); strings.Contains(s, tok) {
		t.Error("formatting the client shows the admin credential")
	}
}

func TestAPIError(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/keys/x") {
			writeJSON(w, 404, adminapi.ErrorBody{Error: adminapi.ErrorDetail{Code: "not_found", Message: `no key named "x"`}})
			return
		}
		http.Error(w, "upstream down", http.StatusBadGateway) // not keygate's ErrorBody
	}))
	defer srv.Close()
	c := newClient(t, srv.URL, testToken(t))

	_, err := c.GetKey(context.Background(), "x")
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 404 || apiErr.Code != "not_found" {
		t.Fatalf("err = %#v", err)
	}
	if got, want := err.Error(), `keygate admin API: not found: no key named "x"`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}

	_, err = c.ListProviders(context.Background())
	if !errors.As(err, &apiErr) || apiErr.Status != 502 || apiErr.Code != "" {
		t.Fatalf("err = %#v", err)
	}
	if !strings.Contains(err.Error(), "HTTP 502 Bad Gateway") || !strings.Contains(err.Error(), "admin listener") {
		t.Errorf("Error() = %q", err)
	}
}

func TestConnectionRefused(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(nil)
	url := srv.URL
	srv.Close()
	_, err := newClient(t, url, testToken(t)).WhoAmI(context.Background())
	var nr *NotRunningError
	if !errors.As(err, &nr) || nr.URL != url {
		t.Fatalf("err = %#v", err)
	}
	for _, want := range []string{"keygate does not seem to be running at " + url, "keygate serve", "--admin-url", "KEYGATE_ADMIN_URL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestCAFile(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, adminapi.WhoAmI{TokenID: "adm_1", Name: "bootstrap"})
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted handshake below is expected
	srv.StartTLS()
	defer srv.Close()
	tok := testToken(t)

	_, err := newClient(t, srv.URL, tok).WhoAmI(context.Background())
	if err == nil || !strings.Contains(err.Error(), "--admin-ca") {
		t.Fatalf("untrusted certificate: %v", err)
	}

	dir := t.TempDir()
	ca := filepath.Join(dir, "admin.pem")
	pemData := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(ca, pemData, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := newClient(t, srv.URL, tok, WithCAFile(ca)).WhoAmI(context.Background()); err != nil {
		t.Fatalf("with the CA file: %v", err)
	}

	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(srv.URL, secret.New(tok), WithCAFile(bad)); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("bad CA file: %v", err)
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	t.Parallel()
	var reached atomic.Bool
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Store(true) }))
	defer other.Close()
	srv := httptest.NewServer(http.RedirectHandler(other.URL+"/api/v1/whoami", http.StatusTemporaryRedirect))
	defer srv.Close()
	_, err := newClient(t, srv.URL, testToken(t)).WhoAmI(context.Background())
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusTemporaryRedirect {
		t.Fatalf("err = %v", err)
	}
	if reached.Load() {
		t.Error("the client followed a redirect with the admin credential")
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	tok := secret.New(testToken(t))
	for _, u := range []string{"", "127.0.0.1:8788", "ftp://127.0.0.1", "http://", "http://u:p@127.0.0.1:8788", "http://127.0.0.1:8788?x=1"} {
		if _, err := New(u, tok); err == nil {
			t.Errorf("New(%q): want an error", u)
		}
	}
	if _, err := New("http://127.0.0.1:8788", secret.String{}); err == nil {
		t.Error("New with an empty credential: want an error")
	}
	c, err := New(" https://keygate.example:8788/ ", tok)
	if err != nil || c.BaseURL() != "https://keygate.example:8788" {
		t.Errorf("BaseURL = %v, %v", c, err)
	}
}
