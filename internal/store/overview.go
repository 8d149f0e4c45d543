package store

import (
	"context"
	"fmt"
	"strings"
)

// UsageTotal is usage summed over a window: by day, by key or by model,
// as the query that made it says.
type UsageTotal struct {
	Group    string // the day (YYYY-MM-DD), key id or model
	Requests int64
	Denials  int64
	MicroUSD int64
}

// UsageBy sums usage from the day since (YYYY-MM-DD, inclusive) by "day",
// "key" or "model". keyIDs, when not nil, limits the sum to those keys (a
// principal who sees only some keys); an empty non-nil list sums nothing.
func (s *Store) UsageBy(ctx context.Context, by, since string, keyIDs []string) ([]UsageTotal, error) {
	col := map[string]string{"day": "day", "key": "key_id", "model": "model"}[by]
	if col == "" {
		return nil, fmt.Errorf("store: usage by %q: sum by day, key or model", by)
	}
	if keyIDs != nil && len(keyIDs) == 0 {
		return nil, nil
	}
	q := `SELECT ` + col + `, SUM(requests), SUM(denials), SUM(micro_usd) FROM usage_daily WHERE day >= ?`
	args := []any{since}
	if keyIDs != nil {
		q += ` AND key_id IN (` + strings.TrimSuffix(strings.Repeat("?,", len(keyIDs)), ",") + `)`
		for _, id := range keyIDs {
			args = append(args, id)
		}
	}
	q += ` GROUP BY ` + col + ` ORDER BY ` + col
	rows, err := s.r.QueryContext(ctx, rebind(s.dialect, q), args...)
	if err != nil {
		return nil, fmt.Errorf("store: sum usage by %s: %w", by, err)
	}
	return collect(rows, func(r rowScanner) (UsageTotal, error) {
		var u UsageTotal
		err := r.Scan(&u.Group, &u.Requests, &u.Denials, &u.MicroUSD)
		return u, err
	}, "sum usage")
}

// RecentAudit returns the newest audit events matching f (Node and
// AfterSeq are ignored), newest first, at most f.Limit (default and
// maximum 10,000).
func (s *Store) RecentAudit(ctx context.Context, f AuditFilter) ([]AuditRecord, error) {
	q := `SELECT node, seq, time, type, key_id, data FROM audit_events WHERE 1 = 1`
	var args []any
	if f.KeyID != "" {
		q += ` AND key_id = ?`
		args = append(args, f.KeyID)
	}
	if f.Type != "" {
		q += ` AND type = ?`
		args = append(args, f.Type)
	}
	if !f.Since.IsZero() {
		q += ` AND time >= ?`
		args = append(args, s.timeArg(f.Since))
	}
	if !f.Until.IsZero() {
		q += ` AND time < ?`
		args = append(args, s.timeArg(f.Until))
	}
	limit := f.Limit
	if limit <= 0 || limit > 10000 {
		limit = 10000
	}
	q += ` ORDER BY time DESC LIMIT ?`
	args = append(args, limit)
	rows, err := s.r.QueryContext(ctx, rebind(s.dialect, q), args...)
	if err != nil {
		return nil, fmt.Errorf("store: read recent audit events: %w", err)
	}
	return collect(rows, scanAudit, "read recent audit events")
}
