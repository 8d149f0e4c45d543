package sources

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
)

// Defaults for a reference's schedule.
const (
	DefaultRefresh = 5 * time.Minute
	DefaultGrace   = time.Hour
	// MinRefresh bounds how often a source is read, to keep within its API quotas.
	MinRefresh = 10 * time.Second
)

// RefStore keeps references and their read state; keygate's database
// store implements it.
type RefStore interface {
	GetSourceRef(ctx context.Context, recordID string) (store.SourceRef, error)
	ListSourceRefs(ctx context.Context) ([]store.SourceRef, error)
	DueSourceRefs(ctx context.Context, now time.Time) ([]store.SourceRef, error)
	ClaimSourceRef(ctx context.Context, recordID string, due, next time.Time) (bool, error)
	SourceReadOK(ctx context.Context, recordID, sourceVersion string, recordVersion int, at time.Time) error
	SourceReadFailed(ctx context.Context, recordID, reason string, at time.Time) error
	ScheduleDestroy(ctx context.Context, id string, below int, at time.Time) (int, error)
}

// Vault seals values into records; *vault.Vault implements it.
type Vault interface {
	Put(ctx context.Context, id string, plaintext secret.String) (int, error)
	Get(ctx context.Context, id string) (secret.String, int, error)
}

// Reader reads a reference's current value; *Sources implements it.
type Reader interface {
	Read(ctx context.Context, ref Ref) (Value, error)
}

// Alert is raised when a reference's source cannot be read, when its
// grace runs out, and when it can be read again. It carries no value.
type Alert struct {
	Kind       string // AlertUnreadable, AlertGraceExpired or AlertRecovered
	Target     string // "provider:NAME" or "secret:NAME"
	Ref        string
	Reason     string    // the source's error, without any value
	Since      time.Time // first failure
	GraceUntil time.Time // after this the cached value is no longer served
}

// Alert kinds.
const (
	AlertUnreadable   = "source_unreadable"
	AlertGraceExpired = "source_grace_expired"
	AlertRecovered    = "source_recovered"
)

// Refresher follows references: it reads each source when due (one node
// per due read, claimed in the shared database), seals a changed value as a
// new version of its vault record, and records when the source was last
// verified, so every node serves the new value at its next provider
// refresh, and none serves a value whose source has been unreadable past
// its grace (see Guard).
type Refresher struct {
	Store  RefStore
	Vault  Vault
	Reader Reader
	// Alert is called for each Alert; nil drops them. It must not block.
	Alert func(Alert)
	// Changed is called after a refresh stored a new value, so this node
	// reloads its provider table at once (the others on their schedule).
	Changed func(ctx context.Context)
	// Overlap is how long a replaced value stays in the vault before it is
	// destroyed (default 24h), for requests still holding it.
	Overlap time.Duration
	Log     *slog.Logger
	Now     func() time.Time
}

func (r *Refresher) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Run refreshes due references every interval until ctx ends.
func (r *Refresher) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := r.RefreshDue(ctx); err != nil && ctx.Err() == nil && r.Log != nil {
			r.Log.Warn("sources: could not refresh referenced secrets; will retry", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RefreshDue reads every due reference this node claims, and returns how
// many it read. A source that fails is recorded, not returned: one failing
// source does not hold up the others.
func (r *Refresher) RefreshDue(ctx context.Context) (int, error) {
	now := r.now()
	due, err := r.Store.DueSourceRefs(ctx, now)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, ref := range due {
		ok, err := r.Store.ClaimSourceRef(ctx, ref.RecordID, ref.NextRefreshAt, now.Add(ref.RefreshEvery))
		if err != nil {
			return n, err
		}
		if !ok {
			continue // another node took this read
		}
		n++
		if err := r.refresh(ctx, ref, now); err != nil && r.Log != nil {
			r.Log.Warn("sources: could not read a referenced secret", "target", ref.Target, "ref", ref.Ref, "err", err)
		}
	}
	return n, nil
}

// Refresh reads the source of the vault record recordID now, on demand
// (after a rotation at the source, or an alert), and returns the error of
// the read, if any, which holds no value.
func (r *Refresher) Refresh(ctx context.Context, recordID string) error {
	ref, err := r.Store.GetSourceRef(ctx, recordID)
	if err != nil {
		return err
	}
	return r.refresh(ctx, ref, r.now())
}

func (r *Refresher) refresh(ctx context.Context, ref store.SourceRef, now time.Time) error {
	parsed, err := ParseRef(ref.Ref)
	if err == nil {
		var v Value
		if v, err = r.Reader.Read(ctx, parsed); err == nil {
			return r.store(ctx, ref, v, now)
		}
	}
	reason := err.Error()
	if serr := r.Store.SourceReadFailed(ctx, ref.RecordID, reason, now); serr != nil {
		return errors.Join(err, serr)
	}
	since := now
	if ref.FailingSince != nil {
		since = *ref.FailingSince
	}
	until := ServeUntil(ref)
	switch {
	case ref.FailingSince == nil:
		r.alert(Alert{Kind: AlertUnreadable, Target: ref.Target, Ref: ref.Ref, Reason: reason, Since: since, GraceUntil: until})
	case !now.Before(until) && !ref.FailingSince.After(until):
		// Raised on every failed read past the grace: the provider is
		// refused until the source answers again.
		r.alert(Alert{Kind: AlertGraceExpired, Target: ref.Target, Ref: ref.Ref, Reason: reason, Since: since, GraceUntil: until})
	}
	return err
}

// store seals v as the record's newest version unless it already is, and
// records the read.
func (r *Refresher) store(ctx context.Context, ref store.SourceRef, v Value, now time.Time) error {
	cur, version, err := r.Vault.Get(ctx, ref.RecordID)
	switch {
	case err == nil && cur.Equal(v.Secret) && version == ref.VerifiedVersion:
		// Unchanged; only the verification time moves on.
	case err == nil || errors.Is(err, store.ErrNotFound):
		if version, err = r.Vault.Put(ctx, ref.RecordID, v.Secret); err != nil {
			return fmt.Errorf("seal the value read from %s: %w", ref.Ref, err)
		}
		overlap := r.Overlap
		if overlap <= 0 {
			overlap = 24 * time.Hour
		}
		if _, err := r.Store.ScheduleDestroy(ctx, ref.RecordID, version, now.Add(overlap)); err != nil && r.Log != nil {
			r.Log.Warn("sources: could not schedule the replaced value's destruction", "target", ref.Target, "err", err)
		}
		defer func() {
			if r.Changed != nil {
				r.Changed(ctx)
			}
		}()
	default:
		return fmt.Errorf("open the cached value of %s: %w", ref.Target, err)
	}
	if err := r.Store.SourceReadOK(ctx, ref.RecordID, v.Version, version, now); err != nil {
		return err
	}
	if ref.FailingSince != nil {
		r.alert(Alert{Kind: AlertRecovered, Target: ref.Target, Ref: ref.Ref, Since: *ref.FailingSince})
	}
	return nil
}

func (r *Refresher) alert(a Alert) {
	if r.Log != nil {
		r.Log.Warn("sources: "+a.Kind, "target", a.Target, "ref", a.Ref, "reason", a.Reason, "grace_until", a.GraceUntil)
	}
	if r.Alert != nil {
		r.Alert(a)
	}
}

// ServeUntil is when a reference's cached value stops being served unless
// its source is read again: one refresh interval plus the grace after the
// last successful read. A reference never read is not served at all.
func ServeUntil(ref store.SourceRef) time.Time {
	if ref.VerifiedAt == nil {
		return time.Time{}
	}
	return ref.VerifiedAt.Add(ref.RefreshEvery + ref.Grace)
}
