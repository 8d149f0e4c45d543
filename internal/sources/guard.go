package sources

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keygate/keygate/internal/route"
	"github.com/keygate/keygate/internal/secret"
	"github.com/keygate/keygate/internal/store"
)

// RefReader looks up a vault record's reference.
type RefReader interface {
	GetSourceRef(ctx context.Context, recordID string) (store.SourceRef, error)
}

// Guard opens vault records for the provider table (route.Load) and the
// passthrough services, and refuses a referenced record whose value it
// cannot vouch for: one never read from its source, one whose source has
// been unreadable past its grace, or one changed by anything but a read of
// its source. Such a record opens as an error wrapping an
// *route.UnavailableError, so its provider is loaded unavailable and no
// request is sent with its key.
type Guard struct {
	Opener route.SecretOpener
	Refs   RefReader
	Now    func() time.Time
}

// Get opens record id through Opener after the checks above.
func (g Guard) Get(ctx context.Context, id string) (secret.String, int, error) {
	ref, err := g.Refs.GetSourceRef(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return g.Opener.Get(ctx, id)
	}
	if err != nil {
		return secret.String{}, 0, fmt.Errorf("sources: look up the reference of %s: %w", id, err)
	}
	now := time.Now()
	if g.Now != nil {
		now = g.Now()
	}
	if ref.VerifiedAt == nil {
		return secret.String{}, 0, &route.UnavailableError{Reason: fmt.Sprintf("its key in %s has not been read yet (%s); check keygate's access to it and run keygate source refresh", ref.Ref, orNone(ref.LastError))}
	}
	if until := ServeUntil(ref); !now.Before(until) {
		return secret.String{}, 0, &route.UnavailableError{Reason: fmt.Sprintf("its key in %s could not be read since %s and its grace ended at %s (%s)",
			ref.Ref, fmtTime(ref.FailingSince), until.UTC().Format(time.RFC3339), orNone(ref.LastError))}
	}
	v, version, err := g.Opener.Get(ctx, id)
	if err != nil {
		return secret.String{}, 0, err
	}
	// An older version is one read from the source before, seen through a
	// node's read cache for a few seconds after a rotation; a newer one
	// was written by something other than a read of the source.
	if version > ref.VerifiedVersion {
		return secret.String{}, 0, &route.UnavailableError{Reason: fmt.Sprintf("its stored key (version %d) is not the one last read from %s (version %d); keygate serves only what its source holds: run keygate source refresh", version, ref.Ref, ref.VerifiedVersion)}
	}
	return v, version, nil
}

func orNone(s string) string {
	if s == "" {
		return "no error recorded"
	}
	return s
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "its last refresh"
	}
	return t.UTC().Format(time.RFC3339)
}
