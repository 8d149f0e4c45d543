package admin_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
)

func TestKeyScopesSuspendRotate(t *testing.T) {
	h := newHarness(t)
	for _, bad := range []struct{ body, field string }{
		{`{"name":"k","allow_paths":["POST"]}`, "allow_paths"},
		{`{"name":"k","allow_ips":["10.0.0.0/33"]}`, "allow_ips"},
		{`{"name":"k","hours":"someday 25:00-26:00 Mars/Olympus"}`, "hours"},
	} {
		wantError(t, h.do("POST", "/api/v1/keys", bad.body), http.StatusBadRequest, "bad_request", bad.field)
	}
	w := h.do("POST", "/api/v1/keys", `{"name":"etl","env":"prod","allow_paths":["POST /v1/embeddings"],"allow_ips":["10.0.0.0/8","2001:db8::/32"],"hours":"mon-fri 08:00-20:00 Europe/Berlin","expires_in":"30d"}`)
	h.mustStatus(w, http.StatusCreated)
	var created adminapi.CreatedKey
	decode(t, w, &created)
	k := created.Key
	if !strings.HasPrefix(created.Secret, "kg_prod_") || len(k.AllowPaths) != 1 || len(k.AllowIPs) != 2 || k.Hours == "" {
		t.Fatalf("created %+v", k)
	}

	// Scopes change on a live key; [] and "" clear them.
	var up adminapi.Key
	w = h.do("PATCH", "/api/v1/keys/etl", `{"allow_paths":[],"hours":""}`)
	h.mustStatus(w, http.StatusOK)
	decode(t, w, &up)
	if len(up.AllowPaths) != 0 || up.Hours != "" || len(up.AllowIPs) != 2 {
		t.Fatalf("after clearing: %+v", up)
	}
	wantError(t, h.do("PATCH", "/api/v1/keys/etl", `{"allow_ips":["nope"]}`), http.StatusBadRequest, "bad_request", "allow_ips")

	// Suspend and resume.
	before := len(h.revocations())
	w = h.do("POST", "/api/v1/keys/etl/suspend", "")
	h.mustStatus(w, http.StatusOK)
	up = adminapi.Key{}
	decode(t, w, &up)
	if up.SuspendedAt == nil || len(h.revocations()) != before+1 {
		t.Fatalf("suspend: %+v", up)
	}
	w = h.do("POST", "/api/v1/keys/etl/resume", "")
	up = adminapi.Key{}
	decode(t, w, &up)
	if up.SuspendedAt != nil {
		t.Fatalf("resume: %+v", up)
	}

	// Rotation: a successor with the same scopes; the old key works for
	// the grace only, and a grace never extends it past its own expiry.
	w = h.do("POST", "/api/v1/keys/etl/rotate", `{"grace":"2h"}`)
	h.mustStatus(w, http.StatusCreated)
	var rot adminapi.RotatedKey
	decode(t, w, &rot)
	if !strings.HasPrefix(rot.Secret, "kg_prod_") || rot.Key.RotatedFrom != k.ID || len(rot.Key.AllowIPs) != 2 ||
		!strings.HasPrefix(rot.Key.Name, "etl.rot-") || rot.Previous.ExpiresAt == nil || !rot.Previous.ExpiresAt.Equal(h.now.Add(2*time.Hour)) {
		t.Fatalf("rotation %+v", rot)
	}
	if rot.Key.ExpiresAt == nil || !rot.Key.ExpiresAt.Equal(h.now.Add(30*24*time.Hour)) {
		t.Fatalf("successor expires %v, want a full 30 days", rot.Key.ExpiresAt)
	}
	h.now = h.now.Add(time.Minute)
	w = h.do("POST", "/api/v1/keys/etl/rotate", `{"grace":"90d"}`)
	h.mustStatus(w, http.StatusCreated)
	rot = adminapi.RotatedKey{}
	decode(t, w, &rot)
	if !rot.Previous.ExpiresAt.Equal(h.now.Add(-time.Minute).Add(2 * time.Hour)) {
		t.Fatalf("a longer grace extended the old key to %v", rot.Previous.ExpiresAt)
	}
	h.mustStatus(h.do("POST", "/api/v1/keys/etl/revoke", ""), http.StatusOK)
	wantError(t, h.do("POST", "/api/v1/keys/etl/rotate", ""), http.StatusConflict, "conflict", "revoked")
}

func TestUnusedKeysReport(t *testing.T) {
	h := newHarness(t)
	for _, name := range []string{"fresh", "stale", "used"} {
		h.mustStatus(h.do("POST", "/api/v1/keys", `{"name":"`+name+`"}`), http.StatusCreated)
	}
	ctx := context.Background()
	used, _ := h.st.GetKeyByName(ctx, "used")
	h.now = h.now.Add(40 * 24 * time.Hour)
	if err := h.st.TouchKey(ctx, used.ID, h.now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	var list adminapi.KeyList
	decode(t, h.do("GET", "/api/v1/keys?unused=30d", ""), &list)
	names := []string{}
	for _, k := range list.Keys {
		names = append(names, k.Name)
	}
	slices.Sort(names)
	if strings.Join(names, ",") != "fresh,stale" {
		t.Fatalf("unused for 30 days: %v", names)
	}
	wantError(t, h.do("GET", "/api/v1/keys?unused=soon", ""), http.StatusBadRequest, "bad_request", "unused")
}
