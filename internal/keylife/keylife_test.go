package keylife_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/keylife"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/store/storetest"
)

// t0 is the service's clock in these tests.
var t0 = time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC)

// rig is a Service over a real store, with what it told this node's cache
// and the audit trail.
type rig struct {
	st     *store.Store
	hasher *apikey.Hasher
	svc    *keylife.Service

	mu     sync.Mutex
	forgot []string
	events []audit.Event
}

func newRig(t *testing.T, url string) *rig {
	t.Helper()
	h, err := apikey.NewHasher([]byte(rand.Text() + rand.Text()))
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{st: storetest.Open(t, url), hasher: h}
	r.svc = keylife.New(keylife.Options{Store: r.st, Hasher: h, Now: func() time.Time { return t0 },
		Forget: func(id string) { r.mu.Lock(); r.forgot = append(r.forgot, id); r.mu.Unlock() },
		Audit:  func(ev audit.Event) error { r.mu.Lock(); r.events = append(r.events, ev); r.mu.Unlock(); return nil },
	})
	return r
}

// key stores a live key named name, shaped by mod, and returns it.
func (r *rig) key(t *testing.T, name string, mod func(*store.Key)) store.Key {
	t.Helper()
	raw, err := apikey.Generate("live")
	if err != nil {
		t.Fatal(err)
	}
	p, err := apikey.Parse(raw.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	h := r.hasher.Hash(raw.Reveal())
	k := store.Key{ID: "key_" + name, Name: name, Env: "live", Prefix: p.Prefix, Hash: h[:], CreatedAt: t0.Add(-time.Hour)}
	if mod != nil {
		mod(&k)
	}
	if err := r.st.CreateKey(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	got, err := r.st.GetKey(context.Background(), k.ID)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// lastSeq is the revocation log's newest sequence number.
func (r *rig) lastSeq(t *testing.T) int64 {
	t.Helper()
	revs, err := r.st.RevocationsSince(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(revs) == 0 {
		return 0
	}
	return revs[len(revs)-1].Seq
}

// told returns the subjects of the key revocations after seq.
func (r *rig) told(t *testing.T, seq int64) []string {
	t.Helper()
	revs, err := r.st.RevocationsSince(context.Background(), seq)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, rv := range revs {
		if rv.Kind == "key" {
			out = append(out, rv.Subject)
		}
	}
	return out
}

// reset forgets what the service told so far.
func (r *rig) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.forgot, r.events = nil, nil
}

// Actors as each caller makes them.
var (
	person     = keylife.Actor{ID: "usr_alice", Client: "192.0.2.1", Fields: map[string]string{"actor_name": "alice", "actor_kind": "user", "request_id": "req_1"}}
	adminToken = keylife.Actor{ID: "adm_ops", Client: "192.0.2.2", Fields: map[string]string{"actor_name": "ops", "actor_kind": "token", "credential": "kg_admin_ab12"}}
	detector   = keylife.AlertActor("impossible-travel", "key used from two continents within a minute", "alr_1")
	reporter   = keylife.LeakReporter("github")
)

func ptr(t time.Time) *time.Time { return &t }

// TestLifecycle: each action, by each kind of actor, changes the store,
// drops the key from this node's cache, tells the other nodes through the
// revocation log and records one audit event naming the actor, in that
// order; an action the key already satisfies changes and tells nothing;
// one its state refuses, or on an unknown key, fails saying what to do,
// and changes nothing.
func TestLifecycle(t *testing.T) {
	for _, db := range []struct {
		name string
		url  func(*testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return storetest.SQLiteURL(t) }},
		{"postgres", func(t *testing.T) string { return storetest.PostgresURL(t) }},
	} {
		t.Run(db.name, func(t *testing.T) { testLifecycle(t, db.url(t)) })
	}
}

func testLifecycle(t *testing.T, url string) {
	r := newRig(t, url)
	ctx := context.Background()
	suspend := func(id string, by keylife.Actor) (keylife.Change, error) { return r.svc.Suspend(ctx, id, by) }
	resume := func(id string, by keylife.Actor) (keylife.Change, error) { return r.svc.Resume(ctx, id, by) }
	revoke := func(id string, by keylife.Actor) (keylife.Change, error) { return r.svc.Revoke(ctx, id, by) }
	stepUp := func(id string, by keylife.Actor) (keylife.Change, error) {
		return r.svc.RequireStepUp(ctx, id, t0.Add(24*time.Hour), by)
	}
	rotate := func(id string, by keylife.Actor) (keylife.Change, error) {
		rot, err := r.svc.Rotate(ctx, id, 2*time.Hour, by)
		return keylife.Change{Key: rot.Previous, Changed: err == nil}, err
	}
	suspended := func(k *store.Key) { k.SuspendedAt = ptr(t0.Add(-30 * time.Minute)) }
	revoked := func(k *store.Key) { k.RevokedAt = ptr(t0.Add(-30 * time.Minute)) }
	stepped := func(k *store.Key) { k.StepUpUntil = ptr(t0.Add(time.Hour)) }

	for _, c := range []struct {
		name   string
		key    func(*store.Key) // the key's state before; nil: an active key
		act    func(id string, by keylife.Actor) (keylife.Change, error)
		by     keylife.Actor
		noKey  bool   // act on a key that does not exist
		event  string // the audit event recorded; "" for an action that changes nothing
		errIs  error  // the error the action fails with, if any
		errSay string // what the error tells the caller to do
		// after checks the key as stored after the action.
		after func(t *testing.T, before, after store.Key)
	}{
		{name: "suspend by a person", act: suspend, by: person, event: keylife.EventSuspended,
			after: func(t *testing.T, _, k store.Key) {
				if k.SuspendedAt == nil || !k.SuspendedAt.Equal(t0) {
					t.Fatalf("suspended_at %v, want %v", k.SuspendedAt, t0)
				}
			}},
		{name: "suspend by a detector rule", act: suspend, by: detector, event: keylife.EventSuspended,
			after: func(t *testing.T, _, k store.Key) {
				if k.SuspendedAt == nil {
					t.Fatal("not suspended")
				}
			}},
		{name: "suspend by a leak reporter", act: suspend, by: reporter, event: keylife.EventSuspended,
			after: func(t *testing.T, _, k store.Key) {
				if k.SuspendedAt == nil {
					t.Fatal("not suspended")
				}
			}},
		{name: "suspend a suspended key keeps its suspension time", key: suspended, act: suspend, by: detector,
			after: func(t *testing.T, before, k store.Key) {
				if !k.SuspendedAt.Equal(*before.SuspendedAt) {
					t.Fatalf("suspended_at moved from %v to %v", before.SuspendedAt, k.SuspendedAt)
				}
			}},
		{name: "suspend a revoked key leaves it revoked", key: revoked, act: suspend, by: detector,
			after: func(t *testing.T, _, k store.Key) {
				if k.SuspendedAt != nil || k.RevokedAt == nil {
					t.Fatalf("revoked key after suspend: suspended_at %v revoked_at %v", k.SuspendedAt, k.RevokedAt)
				}
			}},
		{name: "resume lifts the suspension and a step-up", key: func(k *store.Key) { suspended(k); stepped(k) }, act: resume, by: adminToken, event: keylife.EventResumed,
			after: func(t *testing.T, _, k store.Key) {
				if k.SuspendedAt != nil || k.StepUpUntil != nil {
					t.Fatalf("after resume: suspended_at %v step_up_until %v", k.SuspendedAt, k.StepUpUntil)
				}
			}},
		{name: "resume an active key", act: resume, by: person,
			after: func(t *testing.T, _, k store.Key) {
				if k.SuspendedAt != nil {
					t.Fatalf("suspended_at %v", k.SuspendedAt)
				}
			}},
		{name: "resume a revoked key", key: func(k *store.Key) { revoked(k); suspended(k) }, act: resume, by: person,
			errIs: keylife.ErrRevoked, errSay: "create a new key",
			after: func(t *testing.T, before, k store.Key) {
				if k.SuspendedAt == nil || !k.RevokedAt.Equal(*before.RevokedAt) {
					t.Fatalf("a refused resume changed the key: suspended_at %v revoked_at %v", k.SuspendedAt, k.RevokedAt)
				}
			}},
		{name: "revoke by an admin token", act: revoke, by: adminToken, event: keylife.EventRevoked,
			after: func(t *testing.T, _, k store.Key) {
				if k.RevokedAt == nil || !k.RevokedAt.Equal(t0) {
					t.Fatalf("revoked_at %v, want %v", k.RevokedAt, t0)
				}
			}},
		{name: "revoke by a leak reporter", act: revoke, by: reporter, event: keylife.EventRevoked,
			after: func(t *testing.T, _, k store.Key) {
				if k.RevokedAt == nil {
					t.Fatal("not revoked")
				}
			}},
		{name: "revoke by its holder", act: revoke, by: keylife.Holder(), event: keylife.EventRevoked,
			after: func(t *testing.T, _, k store.Key) {
				if k.RevokedAt == nil {
					t.Fatal("not revoked")
				}
			}},
		{name: "revoke a revoked key keeps the first time", key: revoked, act: revoke, by: person,
			after: func(t *testing.T, before, k store.Key) {
				if !k.RevokedAt.Equal(*before.RevokedAt) {
					t.Fatalf("revoked_at moved from %v to %v", before.RevokedAt, k.RevokedAt)
				}
			}},
		{name: "require a second factor by a detector rule", act: stepUp, by: detector, event: keylife.EventStepUp,
			after: func(t *testing.T, _, k store.Key) {
				if k.StepUpUntil == nil || !k.StepUpUntil.Equal(t0.Add(24*time.Hour)) {
					t.Fatalf("step_up_until %v", k.StepUpUntil)
				}
			}},
		{name: "require a second factor of a revoked key", key: revoked, act: stepUp, by: person,
			after: func(t *testing.T, _, k store.Key) {
				if k.StepUpUntil != nil {
					t.Fatalf("step_up_until %v on a revoked key", k.StepUpUntil)
				}
			}},
		{name: "rotate on schedule", key: func(k *store.Key) {
			k.RotateEvery, k.RotateGrace, k.DeliverTo, k.NextRotationAt = 30*24*time.Hour, time.Hour, "secret:app/key", ptr(t0)
		}, act: rotate, by: keylife.Schedule(), event: keylife.EventRotated,
			after: func(t *testing.T, _, k store.Key) {
				if k.ExpiresAt == nil || !k.ExpiresAt.Equal(t0.Add(2*time.Hour)) || k.RotateEvery != 0 {
					t.Fatalf("the rotated key: expires_at %v rotate_every %v", k.ExpiresAt, k.RotateEvery)
				}
			}},
		{name: "rotate by a person", act: rotate, by: person, event: keylife.EventRotated,
			after: func(t *testing.T, _, k store.Key) {
				if k.ExpiresAt == nil || !k.ExpiresAt.Equal(t0.Add(2*time.Hour)) {
					t.Fatalf("the rotated key expires at %v", k.ExpiresAt)
				}
			}},
		{name: "rotate a revoked key", key: revoked, act: rotate, by: person, errIs: keylife.ErrRevoked, errSay: "create a new key"},
		{name: "rotate an expired key", key: func(k *store.Key) { k.ExpiresAt = ptr(t0.Add(-time.Minute)) }, act: rotate, by: person,
			errIs: keylife.ErrExpired, errSay: "create a new key"},
		{name: "suspend an unknown key", noKey: true, act: suspend, by: person, errIs: store.ErrNotFound, errSay: "keygate key list"},
		{name: "resume an unknown key", noKey: true, act: resume, by: person, errIs: store.ErrNotFound, errSay: "keygate key list"},
		{name: "revoke an unknown key", noKey: true, act: revoke, by: reporter, errIs: store.ErrNotFound, errSay: "keygate key list"},
		{name: "step up an unknown key", noKey: true, act: stepUp, by: detector, errIs: store.ErrNotFound, errSay: "keygate key list"},
		{name: "rotate an unknown key", noKey: true, act: rotate, by: person, errIs: store.ErrNotFound, errSay: "keygate key list"},
	} {
		t.Run(c.name, func(t *testing.T) {
			name := strings.NewReplacer(" ", "-", "'", "").Replace(c.name)
			var before store.Key
			id := "key_" + name
			if !c.noKey {
				before = r.key(t, name, c.key)
			}
			keysBefore, _ := r.st.ListKeys(ctx)
			seq := r.lastSeq(t)
			r.reset()

			got, err := c.act(id, c.by)

			// The answer.
			switch {
			case c.errIs != nil:
				if !errors.Is(err, c.errIs) || !strings.Contains(err.Error(), c.errSay) {
					t.Fatalf("error %v, want one matching %v that says %q", err, c.errIs, c.errSay)
				}
			case err != nil:
				t.Fatalf("unexpected error: %v", err)
			case got.Changed != (c.event != ""):
				t.Fatalf("Changed %v, want %v", got.Changed, c.event != "")
			case got.Key.ID != id:
				t.Fatalf("the change returned key %q, want %q", got.Key.ID, id)
			}
			// The store.
			keysAfter, _ := r.st.ListKeys(ctx)
			if !c.noKey {
				after, err := r.st.GetKey(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if c.after != nil {
					c.after(t, before, after)
				}
				// (fmt prints the times the key's pointers hold.)
				if got.Changed && fmt.Sprint(got.Key) != fmt.Sprint(after) {
					t.Fatalf("the change returned %+v, the store holds %+v", got.Key, after)
				}
			}
			var successor string
			if c.event == keylife.EventRotated {
				i := slices.IndexFunc(keysAfter, func(k store.Key) bool { return k.RotatedFrom == id })
				if i < 0 || len(keysAfter) != len(keysBefore)+1 {
					t.Fatalf("no successor stored: %d keys before, %d after", len(keysBefore), len(keysAfter))
				}
				successor = keysAfter[i].ID
			} else if len(keysAfter) != len(keysBefore) {
				t.Fatalf("%d keys before, %d after", len(keysBefore), len(keysAfter))
			}
			// This node's cache and the other nodes.
			r.mu.Lock()
			forgot, events := slices.Clone(r.forgot), slices.Clone(r.events)
			r.mu.Unlock()
			told := r.told(t, seq)
			if c.event == "" {
				if len(forgot) != 0 || len(told) != 0 || len(events) != 0 {
					t.Fatalf("an action that changed nothing told the cache %v, the other nodes %v, the trail %+v", forgot, told, events)
				}
				return
			}
			wantTold := []string{id}
			if successor != "" {
				wantTold = append(wantTold, successor) // read ahead by every node
			}
			if !slices.Equal(forgot, []string{id}) || !slices.Equal(told, wantTold) {
				t.Fatalf("this node's cache was told %v (want [%s]), the other nodes %v (want %v)", forgot, id, told, wantTold)
			}
			// The audit trail: one event naming the key and the actor.
			if len(events) != 1 {
				t.Fatalf("%d audit events, want 1: %+v", len(events), events)
			}
			ev := events[0]
			if ev.Type != c.event || ev.KeyID != id || ev.Actor != c.by.ID || ev.Client != c.by.Client || !slices.Equal(ev.Reasons, c.by.Reasons) {
				t.Fatalf("audit event %+v, want %s of %s by %q", ev, c.event, id, c.by.ID)
			}
			for k, v := range c.by.Fields {
				if ev.Fields[k] != v {
					t.Fatalf("audit event field %s = %q, want %q (the actor's)", k, ev.Fields[k], v)
				}
			}
			if successor != "" && ev.Fields["successor"] != successor {
				t.Fatalf("the rotation's event names successor %q, want %q", ev.Fields["successor"], successor)
			}
		})
	}
}

// TestRotateNeedsAHasher: a service built without a hasher says so
// instead of rotating.
func TestRotateNeedsAHasher(t *testing.T) {
	r := newRig(t, storetest.SQLiteURL(t))
	k := r.key(t, "bot", nil)
	svc := keylife.New(keylife.Options{Store: r.st})
	if _, err := svc.Rotate(context.Background(), k.ID, time.Hour, keylife.Schedule()); err == nil || !strings.Contains(err.Error(), "hasher") {
		t.Fatalf("rotate without a hasher: %v", err)
	}
}
