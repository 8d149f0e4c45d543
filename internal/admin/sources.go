package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/keygate/keygate/internal/adminapi"
	"github.com/keygate/keygate/internal/sources"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/web"
)

// SourceRefStore keeps references: vault records whose value keygate
// follows in a cloud secret manager or Vault.
type SourceRefStore interface {
	PutSourceRef(ctx context.Context, r store.SourceRef) error
	GetSourceRef(ctx context.Context, recordID string) (store.SourceRef, error)
	ListSourceRefs(ctx context.Context) ([]store.SourceRef, error)
	DeleteSourceRef(ctx context.Context, recordID string) error
}

// SourceOptions lets the admin API create references and read them on
// demand. Without Refs and Refresh, a request naming a reference is
// answered 501.
type SourceOptions struct {
	Refs SourceRefStore
	// Refresh reads the source of a vault record now and seals what it
	// read; its error names the source and the cause, never a value.
	Refresh func(ctx context.Context, recordID string) error
	// DefaultRefresh and DefaultGrace apply when a request gives none
	// (5m and 1h when zero).
	DefaultRefresh, DefaultGrace time.Duration
}

// errSourceUnreadable wraps a failed first read of a new reference.
type errSourceUnreadable struct{ err error }

func (e errSourceUnreadable) Error() string { return e.err.Error() }

// newSourceRef checks a reference and its schedule from a request.
// target is "provider:NAME" or "secret:NAME".
func (a *API) newSourceRef(recordID, target, ref, refresh, grace string) (store.SourceRef, error) {
	if a.opts.Sources.Refs == nil || a.opts.Sources.Refresh == nil {
		return store.SourceRef{}, errors.New("this keygate was built without references to sources")
	}
	parsed, err := sources.ParseRef(ref)
	if err != nil {
		return store.SourceRef{}, err
	}
	every, g := a.opts.Sources.DefaultRefresh, a.opts.Sources.DefaultGrace
	if every <= 0 {
		every = sources.DefaultRefresh
	}
	if g <= 0 {
		g = sources.DefaultGrace
	}
	if refresh != "" {
		if every, err = adminapi.ParseDuration(refresh); err != nil {
			return store.SourceRef{}, fmt.Errorf("ref_refresh: %w", err)
		}
		if every < sources.MinRefresh {
			return store.SourceRef{}, fmt.Errorf("ref_refresh %s is too often: read a source at most every %s, to keep within its API quotas", every, sources.MinRefresh)
		}
	}
	if grace != "" {
		if g, err = adminapi.ParseDuration(grace); err != nil {
			return store.SourceRef{}, fmt.Errorf("ref_grace: %w", err)
		}
	}
	now := a.opts.Now().UTC()
	return store.SourceRef{RecordID: recordID, Target: target, Ref: parsed.String(), RefreshEvery: every, Grace: g,
		NextRefreshAt: now.Add(every), CreatedAt: now}, nil
}

// followSource records ref and reads its source at once, so the value is
// served from the first request. When the read fails, the reference is
// removed again and an errSourceUnreadable returned.
func (a *API) followSource(ctx context.Context, ref store.SourceRef) error {
	if err := a.opts.Sources.Refs.PutSourceRef(ctx, ref); err != nil {
		return err
	}
	if err := a.opts.Sources.Refresh(ctx, ref.RecordID); err != nil {
		if derr := a.opts.Sources.Refs.DeleteSourceRef(ctx, ref.RecordID); derr != nil && !errors.Is(derr, store.ErrNotFound) {
			a.opts.Log.Error("a reference whose source could not be read was not removed", "target", ref.Target, "err", derr)
		}
		return errSourceUnreadable{err}
	}
	return nil
}

// writeSourceError answers a failed followSource.
func (a *API) writeSourceError(w http.ResponseWriter, what string, err error) {
	var su errSourceUnreadable
	if errors.As(err, &su) {
		writeError(w, http.StatusBadGateway, "source_unreadable",
			fmt.Sprintf("keygate could not read the %s from its source, so nothing was stored: %v; check that keygate's own identity may read it", what, su.err))
		return
	}
	a.internal(w, "record the reference", err)
}

// forgetSource stops following recordID's source, if it has one.
func (a *API) forgetSource(ctx context.Context, recordID string) {
	if a.opts.Sources.Refs == nil {
		return
	}
	if err := a.opts.Sources.Refs.DeleteSourceRef(ctx, recordID); err != nil && !errors.Is(err, store.ErrNotFound) {
		a.opts.Log.Error("could not stop following a source", "record", recordID, "err", err)
	}
}

// sourceOf returns recordID's reference, or nil when it has none.
func (a *API) sourceOf(ctx context.Context, recordID string) (*store.SourceRef, error) {
	if a.opts.Sources.Refs == nil {
		return nil, nil
	}
	r, err := a.opts.Sources.Refs.GetSourceRef(ctx, recordID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &r, nil
}

func (a *API) listSourceRefs(w http.ResponseWriter, r *http.Request) {
	out := adminapi.SourceRefList{Refs: []adminapi.SourceRef{}}
	if a.opts.Sources.Refs != nil {
		refs, err := a.opts.Sources.Refs.ListSourceRefs(r.Context())
		if err != nil {
			a.internal(w, "list references", err)
			return
		}
		for _, x := range refs {
			out.Refs = append(out.Refs, a.sourceView(x))
		}
	}
	web.WriteJSON(w, http.StatusOK, out)
}

// refreshProviderSource reads a provider's key from its source now.
func (a *API) refreshProviderSource(w http.ResponseWriter, r *http.Request) {
	p, err := a.opts.Store.GetProvider(r.Context(), r.PathValue("name"))
	if err != nil {
		a.lookupError(w, "provider", r.PathValue("name"), err)
		return
	}
	a.refreshSource(w, r, p.SecretID, "provider "+p.Name)
}

// refreshSecretSource reads a secret from its source now.
func (a *API) refreshSecretSource(w http.ResponseWriter, r *http.Request, name string) {
	m, ok := a.liveSecret(w, r, name)
	if !ok {
		return
	}
	a.refreshSource(w, r, m.RecordID, "secret "+name)
}

func (a *API) refreshSource(w http.ResponseWriter, r *http.Request, recordID, what string) {
	ctx := r.Context()
	ref, err := a.sourceOf(ctx, recordID)
	if err != nil {
		a.internal(w, "read the reference", err)
		return
	}
	if ref == nil {
		writeError(w, http.StatusConflict, "conflict", what+" is not kept in a source; only references (--api-key-ref, --ref) are refreshed")
		return
	}
	if err := a.opts.Sources.Refresh(ctx, recordID); err != nil {
		writeError(w, http.StatusBadGateway, "source_unreadable", fmt.Sprintf("%s: %v", what, err))
		return
	}
	a.providersChanged(r)
	if ref, err = a.sourceOf(ctx, recordID); err != nil || ref == nil {
		a.internal(w, "read the reference", err)
		return
	}
	web.WriteJSON(w, http.StatusOK, a.sourceView(*ref))
}

// sourceView shows a reference and its state at this instant.
func (a *API) sourceView(x store.SourceRef) adminapi.SourceRef {
	v := adminapi.SourceRef{Target: x.Target, Ref: x.Ref, Refresh: x.RefreshEvery.String(), Grace: x.Grace.String(),
		VerifiedAt: x.VerifiedAt, FailingSince: x.FailingSince, LastError: x.LastError, NextRefreshAt: x.NextRefreshAt}
	now := a.opts.Now()
	switch until := sources.ServeUntil(x); {
	case x.VerifiedAt == nil || !now.Before(until):
		v.State = "unavailable"
	case x.FailingSince != nil:
		v.State = "stale"
	default:
		v.State = "ok"
	}
	if x.VerifiedAt != nil {
		until := sources.ServeUntil(x).UTC()
		v.ServeUntil = &until
	}
	return v
}
