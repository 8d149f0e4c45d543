// Package keylife changes the state of keygate keys: suspend, resume,
// revoke, require a second factor, rotate. Each change does every side
// effect in one place and in one order: the store first, then this node's
// key cache, then the revocation log every other node follows, then the
// audit trail naming who asked (a person, an admin credential, a detector
// rule, a leak reporter, keygate itself). The admin API, alert actions,
// leak reports and a holder's own revocation all call it.
package keylife

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/keygate/keygate/internal/apikey"
	"github.com/keygate/keygate/internal/audit"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
)

// Store is the persistence a Service needs; *store.Store has it.
type Store interface {
	GetKey(ctx context.Context, id string) (store.Key, error)
	CreateKey(ctx context.Context, k store.Key) error
	RevokeKey(ctx context.Context, id string, at time.Time) (store.Key, error)
	SetKeySuspended(ctx context.Context, id string, at *time.Time) (store.Key, error)
	SetKeyStepUp(ctx context.Context, id string, until *time.Time) (store.Key, error)
	ShortenKeyExpiry(ctx context.Context, id string, at time.Time) (store.Key, error)
	SetKeyRotation(ctx context.Context, id string, every, grace time.Duration, deliverTo string, next *time.Time) (store.Key, error)
	AddRevocation(ctx context.Context, r store.Revocation) (int64, error)
}

// Hasher computes the stored HMAC of a key; *apikey.Hasher is one.
type Hasher interface {
	Hash(raw string) [32]byte
}

// Audit event types a Service records.
const (
	EventSuspended = "key.suspended"
	EventResumed   = "key.resumed"
	EventRevoked   = "key.revoked"
	EventStepUp    = "key.step_up_required"
	EventRotated   = "key.rotated"
)

// announceFor is how long a key's row stays in the revocation log: every
// node reads it long before, and a node down longer reads every key anew.
const announceFor = 24 * time.Hour

// ErrRevoked and ErrExpired say why a change was refused; the *Error that
// wraps them says what to do instead.
var (
	ErrRevoked = errors.New("the key is revoked")
	ErrExpired = errors.New("the key has expired")
)

// Error is a change refused because of the key's state. Msg is safe to
// show the caller and says what to do instead; errors.Is matches Err.
type Error struct {
	KeyID string
	Msg   string
	Err   error
}

func (e *Error) Error() string { return "keylife: " + e.Msg }

// Unwrap returns ErrRevoked or ErrExpired.
func (e *Error) Unwrap() error { return e.Err }

// Actor is who asked for a change, as the audit trail names it.
type Actor struct {
	// ID is the event's actor: a principal id, "alert", a leak reporter
	// ("github", "user alice"), "keygate" for its own schedule.
	ID string
	// Client is the address the request came from, when one did.
	Client string
	// Reasons say why (an alert's rule and summary); Fields say more about
	// the actor (its name and kind, the request id, the alert id).
	Reasons []string
	Fields  map[string]string
}

// AlertActor is a detector rule acting on an alert it raised.
func AlertActor(rule, summary, alertID string) Actor {
	return Actor{ID: "alert", Reasons: []string{rule + ": " + summary}, Fields: map[string]string{"alert_id": alertID, "rule": rule}}
}

// LeakReporter is whoever reported a key leaked: a scanning partner such
// as "github", or a person ("user alice").
func LeakReporter(reporter string) Actor {
	return Actor{ID: reporter, Fields: map[string]string{"via": "leak_report"}}
}

// Holder is a key's own holder, who revoked it with the key itself
// (POST /oauth/revoke).
func Holder() Actor { return Actor{ID: "holder", Fields: map[string]string{"via": "oauth_revoke"}} }

// Schedule is keygate acting on a key's own policy (automatic rotation).
func Schedule() Actor { return Actor{ID: "keygate"} }

// Change is what a lifecycle call did.
type Change struct {
	// Key is the key as stored after the call.
	Key store.Key
	// Changed is false when the key already was as asked (revoking a
	// revoked key, suspending a suspended one): then nothing was written,
	// no node told and nothing recorded.
	Changed bool
}

// Rotation is what Rotate did.
type Rotation struct {
	// Previous is the rotated key as stored: it works until the grace ends.
	Previous store.Key
	// Key is its successor, and Secret the successor's only copy in clear.
	Key    store.Key
	Secret secret.String
}

// Options configures a Service. Store is required; the rest may be left
// out (Forget and Audit do nothing, Log discards, Now is time.Now).
type Options struct {
	Store Store
	// Hasher computes a successor's stored HMAC; Rotate needs it.
	Hasher Hasher
	// Forget makes this node's key cache drop a key, so its next request
	// reads the key anew.
	Forget func(keyID string)
	// Audit records an event on the audit trail.
	Audit func(audit.Event) error
	Log   *slog.Logger
	Now   func() time.Time
}

// Service changes keys' states with every side effect. It is safe for
// concurrent use.
type Service struct{ o Options }

// New returns a Service.
func New(o Options) *Service {
	if o.Forget == nil {
		o.Forget = func(string) {}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Service{o: o}
}

// get reads a key, saying what to do when there is none.
func (s *Service) get(ctx context.Context, id string) (store.Key, error) {
	k, err := s.o.Store.GetKey(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return k, fmt.Errorf("keylife: no key with id %q; list the keys with keygate key list: %w", id, err)
	}
	if err != nil {
		return k, fmt.Errorf("keylife: read key %q: %w", id, err)
	}
	return k, nil
}

// Suspend stops a key until it is resumed. A key already suspended keeps
// its suspension time, and a revoked key stays as it is: neither changes.
func (s *Service) Suspend(ctx context.Context, id string, by Actor) (Change, error) {
	k, err := s.get(ctx, id)
	if err != nil || k.RevokedAt != nil || k.SuspendedAt != nil {
		return Change{Key: k}, err
	}
	now := s.o.Now().UTC()
	if k, err = s.o.Store.SetKeySuspended(ctx, id, &now); err != nil {
		return Change{Key: k}, fmt.Errorf("keylife: suspend key %q: %w", id, err)
	}
	s.announce(ctx, k, EventSuspended, "deny", by, nil)
	return Change{Key: k, Changed: true}, nil
}

// Resume lets a suspended key work again, and lifts a second-factor
// requirement an alert set on it. A revoked key cannot be resumed.
func (s *Service) Resume(ctx context.Context, id string, by Actor) (Change, error) {
	k, err := s.get(ctx, id)
	if err != nil {
		return Change{Key: k}, err
	}
	if k.RevokedAt != nil {
		return Change{Key: k}, &Error{KeyID: id, Err: ErrRevoked,
			Msg: fmt.Sprintf("key %q is revoked, which is final, so it cannot be resumed; create a new key instead (keygate key create)", k.Name)}
	}
	if k.SuspendedAt == nil && k.StepUpUntil == nil {
		return Change{Key: k}, nil
	}
	if k.SuspendedAt != nil {
		if k, err = s.o.Store.SetKeySuspended(ctx, id, nil); err != nil {
			return Change{Key: k}, fmt.Errorf("keylife: resume key %q: %w", id, err)
		}
	}
	if k.StepUpUntil != nil {
		if k, err = s.o.Store.SetKeyStepUp(ctx, id, nil); err != nil {
			return Change{Key: k}, fmt.Errorf("keylife: lift the second-factor requirement of key %q: %w", id, err)
		}
	}
	s.announce(ctx, k, EventResumed, "allow", by, nil)
	return Change{Key: k, Changed: true}, nil
}

// Revoke ends a key for good. Revoking a revoked key changes nothing: the
// first revocation time stands.
func (s *Service) Revoke(ctx context.Context, id string, by Actor) (Change, error) {
	k, err := s.get(ctx, id)
	if err != nil || k.RevokedAt != nil {
		return Change{Key: k}, err
	}
	if k, err = s.o.Store.RevokeKey(ctx, id, s.o.Now().UTC()); err != nil {
		return Change{Key: k}, fmt.Errorf("keylife: revoke key %q: %w", id, err)
	}
	s.announce(ctx, k, EventRevoked, "deny", by, nil)
	return Change{Key: k, Changed: true}, nil
}

// RequireStepUp makes every request of a key need a token minted with a
// second factor until until. A revoked key stays as it is.
func (s *Service) RequireStepUp(ctx context.Context, id string, until time.Time, by Actor) (Change, error) {
	k, err := s.get(ctx, id)
	if err != nil || k.RevokedAt != nil {
		return Change{Key: k}, err
	}
	until = until.UTC()
	if k, err = s.o.Store.SetKeyStepUp(ctx, id, &until); err != nil {
		return Change{Key: k}, fmt.Errorf("keylife: require a second factor of key %q: %w", id, err)
	}
	s.announce(ctx, k, EventStepUp, "deny", by, map[string]string{"until": until.Format(time.RFC3339)})
	return Change{Key: k, Changed: true}, nil
}

// Rotate issues a successor to a key, with the same scopes, limits, group
// and rotation policy and a name suffixed with the time, and lets the old
// key work only until grace from now (never past its own expiry); the old
// key stops rotating. A revoked or expired key is refused: make a new key
// instead. Two rotations of one key within the same second conflict
// (store.ErrConflict).
func (s *Service) Rotate(ctx context.Context, id string, grace time.Duration, by Actor) (Rotation, error) {
	if s.o.Hasher == nil {
		return Rotation{}, errors.New("keylife: this service was built without a hasher, so it cannot rotate keys")
	}
	old, err := s.get(ctx, id)
	if err != nil {
		return Rotation{Previous: old}, err
	}
	now := s.o.Now().UTC()
	switch {
	case old.RevokedAt != nil:
		return Rotation{Previous: old}, &Error{KeyID: id, Err: ErrRevoked,
			Msg: fmt.Sprintf("key %q is revoked or expired; create a new key instead", old.Name)}
	case old.ExpiresAt != nil && !now.Before(*old.ExpiresAt):
		return Rotation{Previous: old}, &Error{KeyID: id, Err: ErrExpired,
			Msg: fmt.Sprintf("key %q is revoked or expired; create a new key instead", old.Name)}
	}
	raw, err := apikey.Generate(old.Env)
	if err != nil {
		return Rotation{Previous: old}, fmt.Errorf("keylife: generate a successor to key %q: %w", id, err)
	}
	p, err := apikey.Parse(raw.Reveal())
	if err != nil {
		return Rotation{Previous: old}, fmt.Errorf("keylife: generate a successor to key %q: %w", id, err)
	}
	h := s.o.Hasher.Hash(raw.Reveal())
	next := old
	next.ID, next.Hash, next.Prefix, next.CreatedAt = newKeyID(), h[:], p.Prefix, now
	next.LastUsedAt, next.RevokedAt, next.SuspendedAt, next.RotatedFrom = nil, nil, nil, old.ID
	next.Name = successorName(old.Name, now)
	if old.ExpiresAt != nil {
		// The successor lives as long as its predecessor was meant to.
		exp := now.Add(old.ExpiresAt.Sub(old.CreatedAt))
		next.ExpiresAt = &exp
	}
	if next.RotateEvery > 0 {
		due := now.Add(next.RotateEvery)
		next.NextRotationAt = &due
	}
	if err := s.o.Store.CreateKey(ctx, next); err != nil {
		return Rotation{Previous: old}, fmt.Errorf("keylife: store the successor to key %q: %w", id, err)
	}
	if old.RotateEvery > 0 {
		if _, err := s.o.Store.SetKeyRotation(ctx, old.ID, 0, 0, "", nil); err != nil {
			return Rotation{Previous: old}, fmt.Errorf("keylife: stop the rotation policy of key %q: %w", id, err)
		}
	}
	if old, err = s.o.Store.ShortenKeyExpiry(ctx, old.ID, now.Add(grace)); err != nil {
		return Rotation{Previous: old}, fmt.Errorf("keylife: end the grace of key %q: %w", id, err)
	}
	f := map[string]string{"successor": next.ID}
	if old.ExpiresAt != nil {
		f["old_expires_at"] = old.ExpiresAt.UTC().Format(time.RFC3339)
	}
	s.announce(ctx, old, EventRotated, "allow", by, f)
	s.Created(ctx, next.ID)
	return Rotation{Previous: old, Key: next, Secret: raw}, nil
}

// Created tells every node of a new key through the revocation log, which
// every node follows, so each reads the key into its cache now rather
// than at its first request there: a database outage that starts a
// moment later does not find the key unknown to the nodes that have not
// served it yet. The creation's audit event is the admin API's.
func (s *Service) Created(ctx context.Context, id string) {
	now := s.o.Now().UTC()
	if _, err := s.o.Store.AddRevocation(ctx, store.Revocation{Kind: "key", Subject: id, At: now, Until: now.Add(announceFor)}); err != nil {
		s.o.Log.Warn("key created; other nodes could not be told to read it ahead, so they read it at its first request", "key_id", id, "err", err)
	}
}

// Changed makes a change to a key's settings (limits, scopes, group,
// rotation policy), already stored by the caller, take effect at once:
// this node's cache drops the key and the revocation log tells every
// other node to. The change's audit event is the admin API's.
func (s *Service) Changed(ctx context.Context, id string) {
	s.o.Forget(id)
	s.tell(ctx, id, "updated")
}

// announce does a stored change's side effects, in order: this node's
// cache, every other node, the audit trail, the log.
func (s *Service) announce(ctx context.Context, k store.Key, typ, decision string, by Actor, fields map[string]string) {
	what := strings.TrimPrefix(typ, "key.")
	s.o.Forget(k.ID)
	s.tell(ctx, k.ID, what)
	if s.o.Audit != nil {
		f := make(map[string]string, len(by.Fields)+len(fields))
		for n, v := range by.Fields {
			f[n] = v
		}
		for n, v := range fields {
			f[n] = v
		}
		ev := audit.Event{Type: typ, Actor: by.ID, KeyID: k.ID, Client: by.Client, Resource: k.Name, Decision: decision, Reasons: by.Reasons, Fields: f}
		if err := s.o.Audit(ev); err != nil {
			s.o.Log.Error("a key was "+what+" but the audit trail could not record it", "key_id", k.ID, "actor", by.ID, "err", err)
		}
	}
	args := []any{"key_id", k.ID, "name", k.Name, "actor", by.ID}
	for n, v := range fields {
		args = append(args, n, v)
	}
	s.o.Log.Info("key "+what, args...)
}

// tell adds the key to the revocation log. A failure is logged, not
// returned: the change is stored, and the other nodes apply it when their
// cached copy of the key ends (key_cache_ttl).
func (s *Service) tell(ctx context.Context, id, what string) {
	now := s.o.Now().UTC()
	if _, err := s.o.Store.AddRevocation(ctx, store.Revocation{Kind: "key", Subject: id, At: now, Until: now.Add(announceFor)}); err != nil {
		s.o.Log.Error("key "+what+" but other nodes could not be told at once; they apply it within key_cache_ttl", "key_id", id, "err", err)
	}
}

// successorName names a rotated key: its base name and the rotation time,
// within the 64 characters a key name may have.
func successorName(name string, now time.Time) string {
	base, _, _ := strings.Cut(name, ".rot-")
	suffix := ".rot-" + now.Format("20060102T150405")
	if len(base)+len(suffix) > 64 {
		base = base[:64-len(suffix)]
	}
	return base + suffix
}

// newKeyID returns a fresh key id, as the admin API makes them.
func newKeyID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "key_" + hex.EncodeToString(b[:])
}
