package admin_test

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/admin"
	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/store"
)

// switchSink is an audit destination that can be taken down, as a full disk.
type switchSink struct {
	down   atomic.Bool
	mu     sync.Mutex
	events []audit.Event
}

func (s *switchSink) Write(_ context.Context, b []audit.Event) error {
	if s.down.Load() {
		return errors.New("disk full")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, b...)
	return nil
}

// has reports whether an event of type typ on resource was stored.
func (s *switchSink) has(typ, resource string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range s.events {
		if ev.Type == typ && ev.Resource == resource {
			return true
		}
	}
	return false
}

func (s *switchSink) Close() error { return nil }

func newTrail(t *testing.T, sinks ...audit.Sink) *audit.Writer {
	w, err := audit.NewWriter(audit.NewChain(audit.Event{}), sinks, audit.WriterOptions{FlushInterval: time.Millisecond, Deadline: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = w.Close(ctx)
	})
	return w
}

func waitUntil(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal(what)
		}
	}
}

// TestAuditFailClosedRefusesAdminChanges: with audit.fail_closed, while no
// audit sink can record, every admin request that changes something is
// refused with 503 and a JSON error, and changes nothing; reads go on.
// Once the sink recovers, changes are accepted again; without fail_closed
// they never stop.
func TestAuditFailClosedRefusesAdminChanges(t *testing.T) {
	sink := &switchSink{}
	w := newTrail(t, sink)
	h := newHarness(t, func(o *admin.Options) { o.Audit, o.AuditFailClosed = w, true })
	h.mustStatus(h.do("POST", "/api/v1/keys", `{"name":"before"}`), http.StatusCreated)
	waitUntil(t, func() bool { return sink.has("admin.action", "POST /api/v1/keys") }, "the key creation never reached the trail")

	sink.down.Store(true)
	h.mustStatus(h.do("POST", "/api/v1/audit/ref", `{"value":"x"}`), http.StatusOK) // recorded, but not stored
	waitUntil(t, func() bool { return !w.Healthy() }, "the trail never noticed its sink was down")
	for _, req := range []struct{ method, path, body string }{
		{"POST", "/api/v1/keys", `{"name":"during"}`},
		{"POST", "/api/v1/keys/before/revoke", ""},
		{"PATCH", "/api/v1/keys/before", `{"name":"renamed"}`},
		{"POST", "/api/v1/groups", `{"name":"team"}`},
		{"DELETE", "/api/v1/providers/openai", ""},
		{"PUT", "/api/v1/secrets/app/x", `{"value":"v"}`},
	} {
		resp := h.do(req.method, req.path, req.body)
		wantError(t, resp, http.StatusServiceUnavailable, "audit_unavailable", "audit", "nothing was changed")
		if resp.Header().Get("Retry-After") == "" {
			t.Errorf("%s %s: no Retry-After", req.method, req.path)
		}
	}
	h.mustStatus(h.do("GET", "/api/v1/keys", ""), http.StatusOK)
	if st := h.listStatus(); len(st) != 1 || st["before"] != "active" {
		t.Fatalf("refused changes changed keys: %v", st)
	}
	if _, err := h.st.GetGroup(context.Background(), "team"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused group create landed: %v", err)
	}

	sink.down.Store(false)
	waitUntil(t, w.Healthy, "the trail never recovered")
	h.mustStatus(h.do("POST", "/api/v1/keys", `{"name":"after"}`), http.StatusCreated)

	// Without fail_closed, a down trail does not stop changes.
	open := &switchSink{}
	ow := newTrail(t, open)
	oh := newHarness(t, func(o *admin.Options) { o.Audit = ow })
	open.down.Store(true)
	oh.mustStatus(oh.do("POST", "/api/v1/audit/ref", `{"value":"x"}`), http.StatusOK)
	waitUntil(t, func() bool { return !ow.Healthy() }, "the trail never noticed its sink was down")
	oh.mustStatus(oh.do("POST", "/api/v1/keys", `{"name":"during"}`), http.StatusCreated)
}

// TestWebhookKeyShowAndRotate: an admin reads the key webhook bodies are
// signed with (the same the server signs with) and rotates it; an operator
// can do neither; every read is on the trail.
func TestWebhookKeyShowAndRotate(t *testing.T) {
	sink := &switchSink{}
	w := newTrail(t, sink)
	h := newHarness(t, func(o *admin.Options) { o.Audit = w })
	ctx := context.Background()

	resp := h.do("GET", "/api/v1/audit/webhook-key?for=audit", "")
	h.mustStatus(resp, http.StatusOK)
	var k adminapi.WebhookKey
	decode(t, resp, &k)
	raw, err := hex.DecodeString(k.Key)
	if err != nil || len(raw) != admin.WebhookKeySize || k.Version != 1 || k.For != "audit" || k.Applies == "" {
		t.Fatalf("shown key %+v", k)
	}
	// It is the key the server signs with: the vault record the sink reads.
	stored, err := h.vault.Ensure(ctx, admin.AuditWebhookKeyRecord, admin.WebhookKeySize)
	if err != nil || stored.Reveal() != string(raw) {
		t.Fatal("the shown key is not the stored signing key")
	}
	body := []byte(`[{"seq":1}]`)
	m := hmac.New(sha256.New, raw)
	m.Write(body)
	if got := audit.SignBody([]byte(stored.Reveal()), body); got != "sha256="+hex.EncodeToString(m.Sum(nil)) {
		t.Fatalf("a receiver following the README computes another signature than %s", got)
	}
	if strings.Contains(h.log.String(), k.Key) {
		t.Fatal("the signing key reached the log")
	}

	resp = h.do("POST", "/api/v1/audit/webhook-key/rotate", `{"for":"alerts"}`)
	h.mustStatus(resp, http.StatusOK)
	var rot adminapi.WebhookKey
	decode(t, resp, &rot)
	alertKey, _, err := h.vault.Get(ctx, admin.AlertWebhookKeyRecord)
	if err != nil || hex.EncodeToString([]byte(alertKey.Reveal())) != rot.Key || rot.For != "alerts" {
		t.Fatalf("rotated alert key %+v: %v", rot, err)
	}
	resp = h.do("POST", "/api/v1/audit/webhook-key/rotate", `{"for":"audit"}`)
	h.mustStatus(resp, http.StatusOK)
	decode(t, resp, &rot)
	if rot.Key == k.Key || rot.Version != 2 {
		t.Fatalf("rotation kept the key: %+v", rot)
	}

	op := operator(t, h)
	wantError(t, h.call("GET", "/api/v1/audit/webhook-key?for=audit", "", op), http.StatusForbidden, "forbidden")
	wantError(t, h.call("POST", "/api/v1/audit/webhook-key/rotate", `{"for":"audit"}`, op), http.StatusForbidden, "forbidden")
	wantError(t, h.do("GET", "/api/v1/audit/webhook-key?for=other", ""), http.StatusBadRequest, "bad_request", "audit, alerts or approvals")

	var ref map[string]string
	decode(t, h.do("POST", "/api/v1/audit/ref", `{"value":"`+admin.AuditWebhookKeyRecord+`"}`), &ref)
	waitUntil(t, func() bool { return sink.has("secret.read", "secret "+ref["ref"]) }, "the key read never reached the trail")
	waitUntil(t, func() bool { return sink.has("admin.action", "POST /api/v1/audit/webhook-key/rotate") }, "the rotation never reached the trail")
}

// TestAuditTrailRoutes: the routes an auditor's own verification reads.
func TestAuditTrailRoutes(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	h := newHarness(t, func(o *admin.Options) { o.AuditKey = pub; o.AuditStore = o.Store.(*store.Store) })
	ctx := context.Background()
	ch := audit.NewChain(audit.Event{})
	var recs []store.AuditRecord
	var last audit.Event
	for range 3 {
		ev, _ := ch.Append(audit.Event{Time: time.Now(), Type: "x"})
		recs = append(recs, store.AuditRecord{Node: "n1", Seq: ev.Seq, Time: ev.Time, Type: ev.Type, Data: ev.AppendJSON(nil)})
		last = ev
	}
	if err := h.st.AppendAudit(ctx, recs); err != nil {
		t.Fatal(err)
	}
	cp, _ := json.Marshal(audit.SignLinked(priv, "n1", 0, last))
	if err := h.st.PutAuditCheckpoint(ctx, "n1", 3, cp); err != nil {
		t.Fatal(err)
	}
	var pk adminapi.AuditPublicKey
	decode(t, h.do("GET", "/api/v1/audit/public-key", ""), &pk)
	if pk.PublicKey != hex.EncodeToString(pub) || pk.KeyID != audit.KeyIDOf(pub) {
		t.Fatalf("public key %+v", pk)
	}
	var nodes adminapi.AuditNodes
	decode(t, h.do("GET", "/api/v1/audit/nodes", ""), &nodes)
	if len(nodes.Nodes) != 1 || nodes.Nodes[0] != "n1" {
		t.Fatalf("nodes %+v", nodes)
	}
	var rows adminapi.AuditRows
	decode(t, h.do("GET", "/api/v1/audit/trail?node=n1&after=1&limit=1", ""), &rows)
	if len(rows.Rows) != 1 || rows.Rows[0].Seq != 2 {
		t.Fatalf("trail page %+v", rows)
	}
	decode(t, h.do("GET", "/api/v1/audit/checkpoints?node=n1", ""), &rows)
	if len(rows.Rows) != 1 || rows.Rows[0].Data != string(cp) {
		t.Fatalf("checkpoints %+v", rows)
	}
	wantError(t, h.do("GET", "/api/v1/audit/trail", ""), http.StatusBadRequest, "bad_request", "node")
	wantError(t, h.do("GET", "/api/v1/audit/trail?node=n1&after=-1", ""), http.StatusBadRequest, "bad_request", "after")

	var v adminapi.AuditVerification
	decode(t, h.do("GET", "/api/v1/audit/verify", ""), &v)
	if !v.OK || len(v.Nodes) != 1 || v.Nodes[0].CheckpointSeq != 3 || v.Nodes[0].Uncovered != 0 || v.KeyID != pk.KeyID {
		t.Fatalf("verify %+v", v)
	}
	// Every event of the node deleted, its checkpoint kept: the node is
	// still verified, and fails.
	db, err := sql.Open("sqlite", h.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `DELETE FROM audit_events`); err != nil {
		t.Fatal(err)
	}
	decode(t, h.do("GET", "/api/v1/audit/verify", ""), &v)
	if v.OK || len(v.Nodes) != 1 || v.Nodes[0].Kind != audit.Truncated {
		t.Fatalf("verify of a node whose events were deleted: %+v", v)
	}
}
