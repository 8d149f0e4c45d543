package admin_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/admin"
	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/egress"
)

// keyEvents returns the stored events about key id, of the key.* types the
// lifecycle records, in order.
func (s *switchSink) keyEvents(id string) []audit.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []audit.Event
	for _, ev := range s.events {
		if ev.KeyID == id && ev.Type != "admin.action" {
			out = append(out, ev)
		}
	}
	return out
}

// TestKeyLifecycleOnTheTrail: suspending, resuming, requiring a second
// factor, rotating and revoking through the admin API each put an event
// about the key on the audit trail, naming who did it (before, only the
// request was recorded, under its path, and a key's own events did not
// show who stopped it). Resuming a revoked key is refused as a conflict
// that says what to do, and changes nothing.
func TestKeyLifecycleOnTheTrail(t *testing.T) {
	sink := &switchSink{}
	w := newTrail(t, sink)
	h := newHarness(t, func(o *admin.Options) { o.Audit = w })
	k := h.createKey(`{"name":"worker"}`).Key

	h.mustStatus(h.do("POST", "/api/v1/keys/worker/suspend", ""), http.StatusOK)
	h.mustStatus(h.do("POST", "/api/v1/keys/worker/step-up", `{"for":"1h"}`), http.StatusOK)
	h.mustStatus(h.do("POST", "/api/v1/keys/worker/resume", ""), http.StatusOK)
	var rot adminapi.RotatedKey
	decode(t, h.do("POST", "/api/v1/keys/worker/rotate", `{"grace":"1h"}`), &rot)
	h.mustStatus(h.do("POST", "/api/v1/keys/worker/revoke", ""), http.StatusOK)

	want := []string{"key.suspended", "key.step_up_required", "key.resumed", "key.rotated", "key.revoked"}
	var evs []audit.Event
	waitUntil(t, func() bool { evs = sink.keyEvents(k.ID); return len(evs) >= len(want) }, "the key's changes never reached the trail")
	var types []string
	for _, ev := range evs {
		types = append(types, ev.Type)
		if ev.Actor == "" || ev.Fields["actor_name"] != "bootstrap" || ev.Fields["request_id"] == "" || ev.Resource != "worker" {
			t.Errorf("%s does not name who did it: actor %q fields %v resource %q", ev.Type, ev.Actor, ev.Fields, ev.Resource)
		}
	}
	if !slices.Equal(types, want) {
		t.Fatalf("the key's events: %v, want %v", types, want)
	}
	if evs[3].Fields["successor"] != rot.Key.ID {
		t.Fatalf("the rotation's event names successor %q, want %q", evs[3].Fields["successor"], rot.Key.ID)
	}

	// A revoked key is not resumed, and the answer says what to do.
	h.createKey(`{"name":"gone"}`)
	h.mustStatus(h.do("POST", "/api/v1/keys/gone/suspend", ""), http.StatusOK)
	h.mustStatus(h.do("POST", "/api/v1/keys/gone/revoke", ""), http.StatusOK)
	before := len(h.revocations())
	wantError(t, h.do("POST", "/api/v1/keys/gone/resume", ""), http.StatusConflict, "conflict", "revoked", "create a new key")
	if got := h.showKey("gone"); got.Status != "revoked" || got.SuspendedAt == nil {
		t.Fatalf("a refused resume changed the key: %+v", got)
	}
	if len(h.revocations()) != before {
		t.Fatal("a refused resume told the key cache")
	}
	time.Sleep(20 * time.Millisecond) // the trail flushes every millisecond
	for _, ev := range sink.keyEvents(h.showKey("gone").ID) {
		if ev.Type == "key.resumed" {
			t.Fatal("a refused resume is on the trail as a resumption")
		}
	}
}

// TestScheduledRotationOnTheTrailWhenDeliveryFails: a scheduled rotation
// is on the audit trail as keygate's, naming the successor and where it
// goes, even when the successor could not be delivered (before, only a
// delivered rotation was recorded, though the old key's life was cut
// short either way).
func TestScheduledRotationOnTheTrailWhenDeliveryFails(t *testing.T) {
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	t.Cleanup(hook.Close)
	sink := &switchSink{}
	w := newTrail(t, sink)
	h := newHarness(t, func(o *admin.Options) {
		o.Audit = w
		o.Egress = egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	})
	k := h.createKey(`{"name":"hooked","rotation":{"every":"7d","grace":"1h","deliver_to":"webhook:` + hook.URL + `"}}`).Key
	h.now = h.now.Add(8 * 24 * time.Hour)
	h.api.RunRotations(context.Background())
	if !strings.Contains(h.log.String(), "could not be delivered") {
		t.Fatalf("the failed delivery was not logged:\n%s", h.log.String())
	}
	var evs []audit.Event
	waitUntil(t, func() bool { evs = sink.keyEvents(k.ID); return len(evs) > 0 }, "the rotation never reached the trail")
	ev := evs[0]
	if ev.Type != "key.rotated" || ev.Actor != "keygate" || ev.Fields["successor"] == "" || ev.Fields["deliver_to"] != "webhook:"+hook.URL {
		t.Fatalf("the rotation's event: %+v", ev)
	}
}
