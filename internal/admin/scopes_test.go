package admin_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/admin"
	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/egress"
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

func TestAutomaticRotationDelivers(t *testing.T) {
	// The receiver runs on loopback, which the egress policy must list.
	h := newHarness(t, func(o *admin.Options) {
		o.Egress = egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	})
	var got struct {
		body []byte
		sig  string
	}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.body, _ = io.ReadAll(r.Body)
		got.sig = r.Header.Get("X-Keygate-Signature")
	}))
	t.Cleanup(hook.Close)
	wantError(t, h.do("POST", "/api/v1/keys", `{"name":"x","rotation":{"every":"30d"}}`), http.StatusBadRequest, "bad_request", "deliver_to")
	wantError(t, h.do("POST", "/api/v1/keys", `{"name":"x","rotation":{"every":"30d","grace":"31d","deliver_to":"secret:a"}}`), http.StatusBadRequest, "bad_request", "grace")
	h.mustStatus(h.do("POST", "/api/v1/keys", `{"name":"bot","rotation":{"every":"30d","grace":"1d","deliver_to":"secret:agents/bot-key"}}`), http.StatusCreated)
	h.mustStatus(h.do("POST", "/api/v1/keys", `{"name":"hooked","rotation":{"every":"7d","grace":"1h","deliver_to":"webhook:`+hook.URL+`"}}`), http.StatusCreated)

	ctx := context.Background()
	h.api.RunRotations(ctx)
	if vs, _ := h.st.GetSecretMeta(ctx, "agents/bot-key"); vs.Name != "" {
		t.Fatal("a rotation ran before it was due")
	}
	h.now = h.now.Add(31 * 24 * time.Hour)
	h.api.RunRotations(ctx)

	// The secret holds a working successor key.
	var val adminapi.SecretValue
	decode(t, h.do("GET", "/api/v1/secrets/agents/bot-key:value", ""), &val)
	sum := h.hasher.Hash(val.Value)
	next, err := h.st.GetKeyByHash(ctx, sum[:])
	if err != nil {
		t.Fatalf("the delivered key is not a keygate key: %v", err)
	}
	old, _ := h.st.GetKeyByName(ctx, "bot")
	if next.RotatedFrom != old.ID || next.RotateEvery != 30*24*time.Hour || next.NextRotationAt == nil || !next.NextRotationAt.Equal(h.now.Add(30*24*time.Hour)) {
		t.Fatalf("successor %+v", next)
	}
	if old.ExpiresAt == nil || !old.ExpiresAt.Equal(h.now.Add(24*time.Hour)) || old.RotateEvery != 0 {
		t.Fatalf("old key %+v", old)
	}

	// The webhook got the other key, signed.
	var m map[string]any
	if err := json.Unmarshal(got.body, &m); err != nil || m["event"] != "key.rotated" {
		t.Fatalf("webhook body %s", got.body)
	}
	signing, err := h.vault.Ensure(ctx, "system/webhook-signing-key", 32)
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, []byte(signing.Reveal()))
	mac.Write(got.body)
	if got.sig != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
		t.Fatal("the webhook signature does not verify")
	}
	hookSum := h.hasher.Hash(m["key"].(string))
	if k, err := h.st.GetKeyByHash(ctx, hookSum[:]); err != nil || !strings.HasPrefix(k.Name, "hooked.rot-") {
		t.Fatalf("webhook key: %v", err)
	}
	if strings.Contains(h.log.String(), val.Value) || strings.Contains(h.log.String(), m["key"].(string)) {
		t.Fatal("a rotated key reached the log")
	}

	// Nothing more is due.
	before, _ := h.st.ListKeys(ctx)
	h.api.RunRotations(ctx)
	after, _ := h.st.ListKeys(ctx)
	if len(after) != len(before) {
		t.Fatalf("a second run rotated again: %d keys, then %d", len(before), len(after))
	}
}

func TestExpiryWarningForKeysInUse(t *testing.T) {
	h := newHarness(t)
	h.mustStatus(h.do("POST", "/api/v1/keys", `{"name":"busy"}`), http.StatusCreated)
	h.mustStatus(h.do("POST", "/api/v1/keys", `{"name":"idle"}`), http.StatusCreated)
	ctx := context.Background()
	for _, name := range []string{"busy", "idle"} {
		k, _ := h.st.GetKeyByName(ctx, name)
		if _, err := h.st.ShortenKeyExpiry(ctx, k.ID, h.now.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if name == "busy" {
			if err := h.st.TouchKey(ctx, k.ID, h.now.Add(-time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
	}
	h.api.RunRotations(ctx)
	h.api.RunRotations(ctx)
	logs := h.log.String()
	if n := strings.Count(logs, "stops working soon"); n != 1 || !strings.Contains(logs, "name=busy") {
		t.Fatalf("%d expiry warnings, want one for the key in use:\n%s", n, logs)
	}
}

// TestRotationDeliveryCannotBeAimedInside: a rotation policy set through
// the admin API cannot deliver a key to a cloud metadata endpoint or any
// internal address (refused when set for an address, when connecting for
// a name that resolves to one), and never overwrites a secret it did not
// create: a person's secret, or another key's deliveries.
func TestRotationDeliveryCannotBeAimedInside(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	for _, target := range []string{"http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:8788/x", "http://[::1]/x", "http://10.0.0.7/x", "http://[fd00::1]/x"} {
		wantError(t, h.do("POST", "/api/v1/keys", `{"name":"bot","rotation":{"every":"7d","grace":"1h","deliver_to":"webhook:`+target+`"}}`),
			http.StatusBadRequest, "bad_request", "egress.allow")
	}
	// A name that resolves to loopback passes the check when set, and is
	// refused when keygate connects: nothing is delivered.
	var hits atomic.Int64
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(hook.Close)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(hook.URL, "http://"))
	h.mustStatus(h.do("POST", "/api/v1/keys", `{"name":"named","rotation":{"every":"7d","grace":"1h","deliver_to":"webhook:http://localhost:`+port+`/hook"}}`), http.StatusCreated)
	h.now = h.now.Add(8 * 24 * time.Hour)
	h.api.RunRotations(ctx)
	if hits.Load() != 0 {
		t.Fatal("a rotated key was delivered to a loopback receiver the egress policy does not list")
	}
	if !strings.Contains(h.log.String(), "could not be delivered") || !strings.Contains(h.log.String(), "loopback") {
		t.Fatalf("the refused delivery was not logged:\n%s", h.log.String())
	}

	// A person's secret cannot become a delivery target, when set or
	// updated.
	h.mustStatus(h.do("PUT", "/api/v1/secrets/team/db-password", `{"value":"a-person-stored-this"}`), http.StatusCreated)
	wantError(t, h.do("POST", "/api/v1/keys", `{"name":"thief","rotation":{"every":"7d","deliver_to":"secret:team/db-password"}}`),
		http.StatusBadRequest, "bad_request", "created by a person")
	h.mustStatus(h.do("POST", "/api/v1/keys", `{"name":"plain"}`), http.StatusCreated)
	wantError(t, h.do("PATCH", "/api/v1/keys/plain", `{"rotation":{"every":"7d","deliver_to":"secret:team/db-password"}}`),
		http.StatusBadRequest, "bad_request", "created by a person")
	var val adminapi.SecretValue
	decode(t, h.do("GET", "/api/v1/secrets/team/db-password:value", ""), &val)
	if val.Value != "a-person-stored-this" {
		t.Fatal("the person's secret changed")
	}

	// A key's rotation delivers into its own secret again and again; a
	// second key cannot point at it.
	h.mustStatus(h.do("POST", "/api/v1/keys", `{"name":"bot","rotation":{"every":"7d","grace":"1h","deliver_to":"secret:agents/bot"}}`), http.StatusCreated)
	for range 2 {
		h.now = h.now.Add(8 * 24 * time.Hour)
		h.api.RunRotations(ctx)
	}
	if m, err := h.st.GetSecretMeta(ctx, "agents/bot"); err != nil || m.Versions != 2 || m.Owner != "rotation:bot" {
		t.Fatalf("two rotations of bot delivered %+v, %v; want 2 versions owned by bot's rotation", m, err)
	}
	wantError(t, h.do("POST", "/api/v1/keys", `{"name":"other","rotation":{"every":"7d","deliver_to":"secret:agents/bot"}}`),
		http.StatusBadRequest, "bad_request", "bot's rotation")
}
