// Package gatewaystore keeps what the gateway keeps, in keygate's store:
// the revocation log every node follows, and what the risk rules learned of
// each key. It adapts internal/store to the interfaces internal/gateway
// declares, so the data plane never imports the store or its row types.
package gatewaystore

import (
	"context"
	"errors"
	"time"

	"github.com/keygate/keygate/internal/gateway"
	"github.com/keygate/keygate/internal/keylife"
	"github.com/keygate/keygate/internal/store"
)

// Store is the store's part this package adapts.
type Store interface {
	AddRevocation(ctx context.Context, r store.Revocation) (int64, error)
	LoadKeyHistory(ctx context.Context, keyID string) ([]byte, error)
	SaveKeyHistories(ctx context.Context, hs []store.KeyHistory) error
}

// KeyRevoker revokes a key with every side effect of a revocation (this
// node's cache, the other nodes, the audit trail); *keylife.Service is one.
type KeyRevoker interface {
	Revoke(ctx context.Context, id string, by keylife.Actor) (keylife.Change, error)
}

// Adapter serves the gateway's revocation log and risk histories from a
// Store, and revokes keys through a KeyRevoker.
type Adapter struct {
	st   Store
	keys KeyRevoker
}

// New adapts st. Its RevokeKey refuses until WithKeys gives it a KeyRevoker.
func New(st Store) Adapter { return Adapter{st: st} }

// WithKeys returns the adapter revoking keys through keys.
func (a Adapter) WithKeys(keys KeyRevoker) Adapter {
	a.keys = keys
	return a
}

// Announce adds r to the revocation log.
func (a Adapter) Announce(ctx context.Context, r gateway.Revocation) error {
	_, err := a.st.AddRevocation(ctx, store.Revocation{Kind: r.Kind, Subject: r.Subject, At: r.At.UTC(), Until: r.Until.UTC()})
	return err
}

// RevokeKey revokes a key at its holder's request (POST /oauth/revoke),
// with every side effect of a revocation. The revocation is stamped by the
// KeyRevoker's clock; at is the gateway's, which keygate sets the same.
func (a Adapter) RevokeKey(ctx context.Context, id string, at time.Time) error {
	if a.keys == nil {
		return errors.New("gatewaystore: this adapter was made without a key service (WithKeys), so it cannot revoke keys")
	}
	_, err := a.keys.Revoke(ctx, id, keylife.Holder())
	return err
}

// LoadKeyHistory returns what the risk rules learned of a key, or nil for
// nothing yet.
func (a Adapter) LoadKeyHistory(ctx context.Context, keyID string) ([]byte, error) {
	b, err := a.st.LoadKeyHistory(ctx, keyID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return b, err
}

// SaveKeyHistories stores what the risk rules learned of many keys.
func (a Adapter) SaveKeyHistories(ctx context.Context, hs []gateway.KeyHistory) error {
	out := make([]store.KeyHistory, len(hs))
	for i, h := range hs {
		out[i] = store.KeyHistory{KeyID: h.KeyID, Data: h.Data, At: h.At}
	}
	return a.st.SaveKeyHistories(ctx, out)
}

// Revocation converts a stored revocation for the gateway.
func Revocation(r store.Revocation) gateway.Revocation {
	return gateway.Revocation{Kind: r.Kind, Subject: r.Subject, At: r.At, Until: r.Until}
}
