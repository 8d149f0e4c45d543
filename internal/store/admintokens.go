package store

import (
	"context"
	"fmt"
	"time"
)

// CreateAdminToken stores a new admin API credential. It returns ErrConflict
// when a token with the same ID or hash already exists.
func (s *Store) CreateAdminToken(ctx context.Context, t AdminToken) error {
	_, err := s.w.ExecContext(ctx, s.q.createAdminToken,
		t.ID, t.Name, bytesArg(t.Hash), roleArg(t.Role), s.timeArg(t.CreatedAt), s.nullTimeArg(t.RevokedAt))
	if err != nil {
		return fmt.Errorf("store: create admin token %q: %w", t.Name, mapErr(err))
	}
	return nil
}

// GetAdminTokenByHash returns the admin token whose stored HMAC is hash, or
// ErrNotFound. Revoked tokens are returned too; the caller must check RevokedAt.
func (s *Store) GetAdminTokenByHash(ctx context.Context, hash []byte) (AdminToken, error) {
	t, err := scanAdminToken(s.r.QueryRowContext(ctx, s.q.getAdminTokenByHash, bytesArg(hash)))
	if err != nil {
		return AdminToken{}, fmt.Errorf("store: get admin token by hash: %w", mapErr(err))
	}
	return t, nil
}

// CountAdminTokens returns how many admin tokens are active (not revoked).
// keygate creates a bootstrap token when this is zero.
func (s *Store) CountAdminTokens(ctx context.Context) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, s.q.countAdminTokens).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count admin tokens: %w", err)
	}
	return n, nil
}

// RevokeAdminToken marks the admin token revoked at the given time. Revoking
// an already revoked token keeps its original revocation time. It returns
// ErrNotFound for an unknown ID.
func (s *Store) RevokeAdminToken(ctx context.Context, id string, at time.Time) error {
	res, err := s.w.ExecContext(ctx, s.q.revokeAdminToken, s.timeArg(at), id)
	if err == nil {
		err = rowsAffectedOrNotFound(res)
	}
	if err != nil {
		return fmt.Errorf("store: revoke admin token %q: %w", id, mapErr(err))
	}
	return nil
}

func scanAdminToken(row rowScanner) (AdminToken, error) {
	var t AdminToken
	err := row.Scan(&t.ID, &t.Name, &t.Hash, &t.Role, timeCol{&t.CreatedAt}, nullTimeCol{&t.RevokedAt})
	return t, err
}

// ListAdminTokens returns every admin token, revoked ones included, oldest first.
func (s *Store) ListAdminTokens(ctx context.Context) ([]AdminToken, error) {
	rows, err := s.r.QueryContext(ctx, s.q.listAdminTokens)
	if err != nil {
		return nil, fmt.Errorf("store: list admin tokens: %w", err)
	}
	return collect(rows, scanAdminToken, "list admin tokens")
}

// roleArg stores an empty role as "admin", the role every token had before
// roles existed.
func roleArg(role string) string {
	if role == "" {
		return "admin"
	}
	return role
}
