package vault

import (
	"cmp"
	"context"
	"errors"
	"slices"

	"github.com/keygate/keygate/internal/store"
)

// RotationStatus is the vault's key-encryption state.
type RotationStatus struct {
	KEKID     string             // the KEK new data keys are wrapped under
	Counts    []store.KEKCount   // stored versions by KEK and format
	KEKs      []KEKState         // every KEK the vault has known, the current one first
	Latest    *store.KEKRotation // the latest rotation, if any
	Remaining int                // versions the latest rotation has yet to rewrap
	State     string             // "running", "finished" or "paused" (no node has made progress lately)
}

// KEKState is what one KEK still opens. An old KEK with Versions 0 opens
// nothing in the vault: it can be destroyed once no keygate is configured
// with it.
type KEKState struct {
	ID      string
	Kind    string // "file", "passphrase" or "kms"
	URL     string // where it is, redacted (never key material); "" if keygate never recorded it
	Current bool   // whether new data keys are wrapped under it
	// Versions is how many stored versions it wraps, locators included:
	// everything that holding this KEK opens.
	Versions int
	// Locators is how many of Versions are locators of another KEK, kept
	// while a rotation may still need following.
	Locators int
	// StoredKeys is how many of Locators hold another KEK's key, written by
	// an older keygate; configuring that KEK deletes them.
	StoredKeys int
}

// Status reports the current KEK, what each KEK still opens, counts by KEK
// and format, and the latest rotation's progress.
func (r *Rotator) Status(ctx context.Context) (RotationStatus, error) {
	st := RotationStatus{KEKID: r.v.KEKID()}
	// The rotation is read first: when it says finished, the counts read
	// after it are the finished state, not a moment of the last batch.
	rot, err := r.st.LatestKEKRotation(ctx)
	noRotation := errors.Is(err, store.ErrNotFound)
	if err != nil && !noRotation {
		return RotationStatus{}, err
	}
	if st.Counts, err = r.st.CountByKEK(ctx); err != nil {
		return RotationStatus{}, err
	}
	rots, err := r.st.ListKEKRotations(ctx)
	if err != nil {
		return RotationStatus{}, err
	}
	if st.KEKs, err = r.kekStates(ctx, st.KEKID, st.Counts, rots); err != nil {
		return RotationStatus{}, err
	}
	if noRotation {
		return st, nil
	}
	st.Latest = &rot
	if st.Remaining, err = r.st.CountNotWrappedBy(ctx, rot.ToKEK, kekURLPattern); err != nil {
		return RotationStatus{}, err
	}
	switch {
	case rot.FinishedAt != nil:
		st.State = "finished"
	case r.now().Sub(rot.HeartbeatAt) < staleAfter(rot):
		st.State = "running"
	default:
		st.State = "paused"
	}
	return st, nil
}

// kekStates lists every KEK the vault has known (in the registry, in a
// rotation, or wrapping a stored version) with what it still opens.
func (r *Rotator) kekStates(ctx context.Context, current string, counts []store.KEKCount, rots []store.KEKRotation) ([]KEKState, error) {
	recs, err := r.st.ListKEKRecords(ctx)
	if err != nil {
		return nil, err
	}
	ls, err := r.locators(ctx)
	if err != nil {
		return nil, err
	}
	byID := map[string]*KEKState{}
	var order []string
	state := func(id string) *KEKState {
		if s, ok := byID[id]; ok {
			return s
		}
		s := &KEKState{ID: id, Kind: KEKKind(id), URL: recordedURL(recs, id), Current: id == current}
		if s.URL == "" {
			if u, ok := r.v.kekURL(id); ok {
				s.URL = RedactKEKURL(u.Reveal())
			}
		}
		byID[id] = s
		order = append(order, id)
		return s
	}
	state(current)
	for _, rot := range rots {
		state(rot.FromKEK)
		state(rot.ToKEK)
	}
	for _, rec := range recs {
		state(rec.ID)
	}
	for _, c := range counts {
		state(c.KEKID).Versions += c.Versions
	}
	for _, l := range ls {
		s := state(l.sv.KEKID)
		s.Locators++
		if l.hasKey {
			s.StoredKeys++
		}
	}
	out := make([]KEKState, 0, len(order))
	for _, id := range order {
		out = append(out, *byID[id])
	}
	// The current KEK first, then the others in the order keygate met them.
	slices.SortStableFunc(out, func(a, b KEKState) int {
		return cmp.Compare(boolRank(a.Current), boolRank(b.Current))
	})
	return out, nil
}

func boolRank(current bool) int {
	if current {
		return 0
	}
	return 1
}
