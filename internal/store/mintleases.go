package store

import (
	"context"
	"fmt"
	"time"
)

// ClaimMint takes the lease on the minted provider's work until `until`
// and reports whether this caller won: of nodes racing, one rotates or
// deletes its keys. The lease is free when the previous holder released it
// or its lease ran out (a node that died mid-work). With dueOnly the
// claim also needs the provider's scheduled check to be due at now; a
// provider not seen before is due at once.
func (s *Store) ClaimMint(ctx context.Context, provider string, now, until time.Time, dueOnly bool) (bool, error) {
	q := `INSERT INTO mint_leases (provider, next_check_at, lease_until) VALUES (?, ?, ?)
		ON CONFLICT (provider) DO UPDATE SET lease_until = excluded.lease_until
		WHERE mint_leases.lease_until <= ?`
	args := []any{provider, s.timeArg(now), s.timeArg(until), s.timeArg(now)}
	if dueOnly {
		q += ` AND mint_leases.next_check_at <= ?`
		args = append(args, s.timeArg(now))
	}
	res, err := s.w.ExecContext(ctx, rebind(s.dialect, q), args...)
	if err != nil {
		return false, fmt.Errorf("store: claim the minted keys of provider %q: %w", provider, mapErr(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: claim the minted keys of provider %q: %w", provider, mapErr(err))
	}
	return n == 1, nil
}

// ReleaseMint gives up the lease taken with ClaimMint (held until `until`)
// and sets when the provider's scheduled work is next due. A lease that
// ran out and was taken by another node is left to that node.
func (s *Store) ReleaseMint(ctx context.Context, provider string, until, nextCheck time.Time) error {
	_, err := s.w.ExecContext(ctx, rebind(s.dialect, `UPDATE mint_leases SET lease_until = ?, next_check_at = ?
		WHERE provider = ? AND lease_until = ?`), s.timeArg(time.Unix(0, 0)), s.timeArg(nextCheck), provider, s.timeArg(until))
	if err != nil {
		return fmt.Errorf("store: release the minted keys of provider %q: %w", provider, mapErr(err))
	}
	return nil
}

// ForgetMint drops what the store keeps of a provider's minted-key work,
// once its keys are no longer minted. A provider never claimed is no error.
func (s *Store) ForgetMint(ctx context.Context, provider string) error {
	if _, err := s.w.ExecContext(ctx, rebind(s.dialect, `DELETE FROM mint_leases WHERE provider = ?`), provider); err != nil {
		return fmt.Errorf("store: forget the minted keys of provider %q: %w", provider, mapErr(err))
	}
	return nil
}
