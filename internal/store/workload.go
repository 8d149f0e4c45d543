package store

import (
	"context"
	"fmt"
	"time"
)

// ClaimWorkloadToken records that the workload identity token id (a hash
// of its issuer and jti) was exchanged, to be remembered until expires, and
// reports whether it was new: false means it was exchanged before, on this
// node or another, and has not expired. One statement decides, so nodes
// racing on one token cannot both win. Tokens past their expiry are
// forgotten as it goes.
func (s *Store) ClaimWorkloadToken(ctx context.Context, id string, expires, now time.Time) (bool, error) {
	if _, err := s.w.ExecContext(ctx, rebind(s.dialect, `DELETE FROM workload_tokens WHERE expires_at < ?`), s.timeArg(now)); err != nil {
		return false, fmt.Errorf("store: forget expired workload tokens: %w", mapErr(err))
	}
	res, err := s.w.ExecContext(ctx, rebind(s.dialect, `INSERT INTO workload_tokens (id, expires_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING`),
		id, s.timeArg(expires))
	if err != nil {
		return false, fmt.Errorf("store: record a workload token: %w", mapErr(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: record a workload token: %w", mapErr(err))
	}
	return n == 1, nil
}
