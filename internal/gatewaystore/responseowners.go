package gatewaystore

import (
	"context"
	"errors"
	"time"

	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/store"
)

// ResponseOwnerStore is the store's part ResponseOwners uses.
type ResponseOwnerStore interface {
	PutResponseOwner(ctx context.Context, o store.ResponseOwner) error
	GetResponseOwner(ctx context.Context, id string) (store.ResponseOwner, error)
	DeleteResponseOwner(ctx context.Context, id string) error
}

// ResponseOwners keeps the gateway's record of who created each response
// in the shared database (gateway.ResponseOwners), so every node serves a
// response to the key that created it through any other.
type ResponseOwners struct {
	st  ResponseOwnerStore
	now func() time.Time
}

// NewResponseOwners records owners in st, stamped with now.
func NewResponseOwners(st ResponseOwnerStore, now func() time.Time) ResponseOwners {
	return ResponseOwners{st: st, now: now}
}

// Put implements gateway.ResponseOwners.
func (r ResponseOwners) Put(ctx context.Context, id string, o gateway.ResponseOwner) error {
	return r.st.PutResponseOwner(ctx, store.ResponseOwner{ID: id, KeyID: o.KeyID, Provider: o.Provider, Model: o.Model, Created: r.now()})
}

// Get implements gateway.ResponseOwners.
func (r ResponseOwners) Get(ctx context.Context, id string) (gateway.ResponseOwner, bool, error) {
	o, err := r.st.GetResponseOwner(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return gateway.ResponseOwner{}, false, nil
	case err != nil:
		return gateway.ResponseOwner{}, false, err
	}
	return gateway.ResponseOwner{KeyID: o.KeyID, Provider: o.Provider, Model: o.Model}, true, nil
}

// Delete implements gateway.ResponseOwners.
func (r ResponseOwners) Delete(ctx context.Context, id string) error {
	return r.st.DeleteResponseOwner(ctx, id)
}
