package store

import (
	"context"
	"fmt"
	"time"
)

// ResponseOwner records which key created a response through the gateway.
type ResponseOwner struct {
	ID       string // the provider's response id
	KeyID    string
	Provider string
	Model    string
	Created  time.Time
}

// PutResponseOwner records a response's owner. An id already recorded
// keeps its first owner: ids are the provider's and unique, so a second
// claim on one is never legitimate.
func (s *Store) PutResponseOwner(ctx context.Context, o ResponseOwner) error {
	_, err := s.w.ExecContext(ctx, rebind(s.dialect, `INSERT INTO response_owners (id, key_id, provider, model, created_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`), o.ID, o.KeyID, o.Provider, o.Model, s.timeArg(o.Created))
	if err != nil {
		return fmt.Errorf("store: record the owner of a response: %w", mapErr(err))
	}
	return nil
}

// GetResponseOwner returns the owner of response id, or ErrNotFound.
func (s *Store) GetResponseOwner(ctx context.Context, id string) (ResponseOwner, error) {
	o := ResponseOwner{ID: id}
	err := s.r.QueryRowContext(ctx, rebind(s.dialect, `SELECT key_id, provider, model, created_at FROM response_owners WHERE id = ?`), id).
		Scan(&o.KeyID, &o.Provider, &o.Model, timeCol{&o.Created})
	if err != nil {
		return ResponseOwner{}, fmt.Errorf("store: read the owner of a response: %w", mapErr(err))
	}
	return o, nil
}

// DeleteResponseOwner forgets response id; one never recorded is no error.
func (s *Store) DeleteResponseOwner(ctx context.Context, id string) error {
	if _, err := s.w.ExecContext(ctx, rebind(s.dialect, `DELETE FROM response_owners WHERE id = ?`), id); err != nil {
		return fmt.Errorf("store: forget the owner of a response: %w", mapErr(err))
	}
	return nil
}

// PruneResponseOwners forgets the responses created before `before` (the
// provider keeps them 30 days) and returns how many it forgot.
func (s *Store) PruneResponseOwners(ctx context.Context, before time.Time) (int, error) {
	res, err := s.w.ExecContext(ctx, rebind(s.dialect, `DELETE FROM response_owners WHERE created_at < ?`), s.timeArg(before))
	if err != nil {
		return 0, fmt.Errorf("store: prune the owners of responses: %w", mapErr(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("store: prune the owners of responses: %w", mapErr(err))
	}
	return int(n), nil
}
