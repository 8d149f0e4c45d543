package adminclient

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
)

func TestKeyLifecycleMethods(t *testing.T) {
	t.Parallel()
	tok := testToken(t)
	now := time.Date(2025, 7, 1, 9, 0, 0, 0, time.UTC)
	later := now.Add(24 * time.Hour)
	suspended := adminapi.Key{ID: "key_1", Name: "ci bot", Status: "active", SuspendedAt: &now}
	rotated := adminapi.RotatedKey{
		Key:      adminapi.Key{ID: "key_2", Name: "ci bot.rot-20250701T090000", Status: "active", RotatedFrom: "key_1"},
		Secret:   "kg_live_testonlysecret",
		Previous: adminapi.Key{ID: "key_1", Name: "ci bot", Status: "active", ExpiresAt: &later},
	}
	var vs vaultServer
	srv := vs.start(t, tok, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/suspend"):
			writeJSON(w, 200, suspended)
		case strings.HasSuffix(r.URL.Path, "/resume"):
			writeJSON(w, 200, adminapi.Key{ID: "key_1", Name: "ci bot", Status: "active"})
		case strings.HasSuffix(r.URL.Path, "/keys/gone/rotate"):
			writeJSON(w, 409, adminapi.ErrorBody{Error: adminapi.ErrorDetail{Code: "conflict", Message: `key "gone" is revoked or expired; create a new key instead`}})
		case strings.HasSuffix(r.URL.Path, "/rotate"):
			writeJSON(w, 201, rotated)
		case r.URL.Path == "/api/v1/keys":
			writeJSON(w, 200, adminapi.KeyList{Keys: []adminapi.Key{{ID: "key_3", Name: "stale"}}})
		default:
			writeJSON(w, 404, adminapi.ErrorBody{Error: adminapi.ErrorDetail{Code: "not_found", Message: "no such route"}})
		}
	})
	c := newClient(t, srv.URL, tok)
	ctx := context.Background()

	k, err := c.SuspendKey(ctx, "ci bot")
	if err != nil || !reflect.DeepEqual(k, suspended) {
		t.Fatalf("SuspendKey = %+v, %v", k, err)
	}
	if k, err := c.ResumeKey(ctx, "key_1"); err != nil || k.SuspendedAt != nil {
		t.Fatalf("ResumeKey = %+v, %v", k, err)
	}
	rk, err := c.RotateKey(ctx, "ci bot", "2h")
	if err != nil || !reflect.DeepEqual(rk, rotated) {
		t.Fatalf("RotateKey = %+v, %v", rk, err)
	}
	if _, err := c.RotateKey(ctx, "key_1", ""); err != nil {
		t.Fatal(err)
	}
	_, err = c.RotateKey(ctx, "gone", "")
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 409 || !strings.Contains(err.Error(), "create a new key instead") {
		t.Fatalf("RotateKey of a revoked key = %v", err)
	}
	keys, err := c.ListKeysUnused(ctx, " 30d ")
	if err != nil || len(keys) != 1 || keys[0].Name != "stale" {
		t.Fatalf("ListKeysUnused = %+v, %v", keys, err)
	}
	if _, err := c.ListKeysUnused(ctx, "1d12h"); err != nil {
		t.Fatal(err)
	}

	want := []string{
		"POST /api/v1/keys/ci%20bot/suspend", "POST /api/v1/keys/key_1/resume",
		"POST /api/v1/keys/ci%20bot/rotate", "POST /api/v1/keys/key_1/rotate", "POST /api/v1/keys/gone/rotate",
		"GET /api/v1/keys?unused=30d", "GET /api/v1/keys?unused=1d12h",
	}
	if got := vs.requests(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Suspend and resume send no body; rotate sends the grace only when given.
	wantBodies := []string{"", "", `{"grace":"2h"}`, `{}`, `{}`, "", ""}
	vs.mu.Lock()
	bodies := append([]string{}, vs.bodies...)
	vs.mu.Unlock()
	if !reflect.DeepEqual(bodies, wantBodies) {
		t.Errorf("bodies = %q\nwant %q", bodies, wantBodies)
	}

	for _, call := range []struct {
		name string
		err  func() error
		want string
	}{
		{"SuspendKey empty ref", func() error { _, err := c.SuspendKey(ctx, ""); return err }, "key id or name is empty"},
		{"ResumeKey empty ref", func() error { _, err := c.ResumeKey(ctx, " "); return err }, "key id or name is empty"},
		{"RotateKey empty ref", func() error { _, err := c.RotateKey(ctx, "", "1h"); return err }, "key id or name is empty"},
		{"RotateKey bad grace", func() error { _, err := c.RotateKey(ctx, "ci", "soon"); return err }, "grace"},
		{"RotateKey negative grace", func() error { _, err := c.RotateKey(ctx, "ci", "-1h"); return err }, "positive"},
		{"ListKeysUnused empty", func() error { _, err := c.ListKeysUnused(ctx, ""); return err }, "positive"},
		{"ListKeysUnused bad", func() error { _, err := c.ListKeysUnused(ctx, "a month"); return err }, "30d"},
	} {
		if err := call.err(); err == nil || !strings.Contains(err.Error(), call.want) {
			t.Errorf("%s: error %v, want one containing %q", call.name, err, call.want)
		}
	}
	if n := len(vs.requests()); n != len(want) {
		t.Errorf("%d requests, want %d: invalid calls must not reach the server", n, len(want))
	}
}

func TestUpdateKeyScopesOnTheWire(t *testing.T) {
	t.Parallel()
	tok := testToken(t)
	var vs vaultServer
	srv := vs.start(t, tok, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, adminapi.Key{ID: "key_1", Name: "etl"})
	})
	c := newClient(t, srv.URL, tok)
	ctx := context.Background()

	paths := []string{"POST /v1/embeddings"}
	ips := []string{"10.0.0.0/8", "2001:db8::/32"}
	hours := "mon-fri 08:00-20:00 Europe/Berlin"
	none, noHours := []string{}, ""
	for _, req := range []adminapi.UpdateKeyRequest{
		{AllowPaths: &paths, AllowIPs: &ips, Hours: &hours},
		{AllowPaths: &none, AllowIPs: &none, Hours: &noHours},
	} {
		if _, err := c.UpdateKey(ctx, "etl", req); err != nil {
			t.Fatal(err)
		}
	}
	// Lists are replaced whole; an empty list and an empty string are sent,
	// not dropped, because they clear the scope.
	want := []string{
		`{"allow_paths":["POST /v1/embeddings"],"allow_ips":["10.0.0.0/8","2001:db8::/32"],"hours":"mon-fri 08:00-20:00 Europe/Berlin"}`,
		`{"allow_paths":[],"allow_ips":[],"hours":""}`,
	}
	vs.mu.Lock()
	bodies := append([]string{}, vs.bodies...)
	vs.mu.Unlock()
	if !reflect.DeepEqual(bodies, want) {
		t.Errorf("bodies:\n%s\nwant:\n%s", strings.Join(bodies, "\n"), strings.Join(want, "\n"))
	}
}
