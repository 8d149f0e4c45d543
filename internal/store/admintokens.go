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
		t.ID, t.Name, bytesArg(t.Hash), roleArg(t), s.timeArg(t.CreatedAt), s.nullTimeArg(t.RevokedAt),
		nullString(t.UserID), kindArg(t.Kind), t.Prefix, s.nullTimeArg(t.ExpiresAt), s.nullTimeArg(t.LastUsedAt), t.LastUsedFrom)
	if err != nil {
		return fmt.Errorf("store: create admin token %q: %w", t.Name, mapErr(err))
	}
	return nil
}

// GetAdminTokenByHash returns the admin token whose stored HMAC is hash, or
// ErrNotFound. Revoked and expired tokens are returned too; the caller must
// check RevokedAt and ExpiresAt.
func (s *Store) GetAdminTokenByHash(ctx context.Context, hash []byte) (AdminToken, error) {
	t, err := scanAdminToken(s.r.QueryRowContext(ctx, s.q.getAdminTokenByHash, bytesArg(hash)))
	if err != nil {
		return AdminToken{}, fmt.Errorf("store: get admin token by hash: %w", mapErr(err))
	}
	return t, nil
}

// GetAdminToken returns the admin token with the given id, or ErrNotFound.
func (s *Store) GetAdminToken(ctx context.Context, id string) (AdminToken, error) {
	t, err := scanAdminToken(s.r.QueryRowContext(ctx, s.p.getAdminToken, id))
	if err != nil {
		return AdminToken{}, fmt.Errorf("store: get admin token %q: %w", id, mapErr(err))
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

// RevokeUserAdminTokens revokes every active admin token of a user or
// service account at the given time and returns how many it revoked.
func (s *Store) RevokeUserAdminTokens(ctx context.Context, userID string, at time.Time) (int, error) {
	res, err := s.w.ExecContext(ctx, s.p.revokeUserTokens, s.timeArg(at), userID)
	if err != nil {
		return 0, fmt.Errorf("store: revoke the admin tokens of user %q: %w", userID, mapErr(err))
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// TouchAdminToken records that the token was used at the given time from
// the given client address. The stored time only moves forward; it
// returns ErrNotFound for an unknown ID.
func (s *Store) TouchAdminToken(ctx context.Context, id string, at time.Time, from string) error {
	t := s.timeArg(at)
	res, err := s.w.ExecContext(ctx, s.p.touchAdminToken, t, from, id, t)
	if err == nil {
		err = rowsAffectedOrNotFound(res)
	}
	if err != nil {
		// A stale touch (an older time) changes no row; that is not an error.
		if _, gerr := s.GetAdminToken(ctx, id); gerr == nil {
			return nil
		}
		return fmt.Errorf("store: record use of admin token %q: %w", id, mapErr(err))
	}
	return nil
}

func scanAdminToken(row rowScanner) (AdminToken, error) {
	var t AdminToken
	err := row.Scan(&t.ID, &t.Name, &t.Hash, &t.Role, timeCol{&t.CreatedAt}, nullTimeCol{&t.RevokedAt},
		nullStringCol{&t.UserID}, &t.Kind, &t.Prefix, nullTimeCol{&t.ExpiresAt}, nullTimeCol{&t.LastUsedAt}, &t.LastUsedFrom)
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

// roleArg stores an empty role of a token of no user as "owner": such a
// token has always been able to do everything. A user's token keeps "",
// which caps nothing.
func roleArg(t AdminToken) string {
	if t.Role == "" && t.UserID == "" {
		return "owner"
	}
	return t.Role
}

// kindArg stores an empty kind as AdminTokenAdmin.
func kindArg(k string) string {
	if k == "" {
		return AdminTokenAdmin
	}
	return k
}
