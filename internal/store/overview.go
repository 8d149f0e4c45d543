package store

import (
	"context"
	"fmt"
	"strings"
	"time"
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
//
// It reads the rollups AddUsage keeps (migration 0025) wherever they give
// the same sums: every key's usage by day or model from usage_day_model,
// and by key from usage_key_month from the first of a month, else from
// usage_key_week for the weeks from the first Monday on or after since,
// plus usage_daily for the days before that Monday.
func (s *Store) UsageBy(ctx context.Context, by, since string, keyIDs []string) ([]UsageTotal, error) {
	col := map[string]string{"day": "day", "key": "key_id", "model": "model"}[by]
	if col == "" {
		return nil, fmt.Errorf("store: usage by %q: sum by day, key or model", by)
	}
	if keyIDs != nil && len(keyIDs) == 0 {
		return nil, nil
	}
	var inKeys string
	if keyIDs != nil {
		inKeys = ` AND key_id IN (` + strings.TrimSuffix(strings.Repeat("?,", len(keyIDs)), ",") + `)`
	}
	withKeys := func(args ...any) []any {
		for _, id := range keyIDs {
			args = append(args, id)
		}
		return args
	}
	var q string
	var args []any
	switch {
	case by == "key" && firstOfMonth(since):
		// From the first of a month: that month and those after.
		q = `SELECT key_id, SUM(requests), SUM(denials), SUM(micro_usd) FROM usage_key_month WHERE month >= ?` + inKeys + `
			GROUP BY key_id ORDER BY key_id`
		args = withKeys(since)
	case by == "key":
		// The weeks from the first Monday on or after since, and the
		// days before it.
		week, err := weekOf(since)
		if err != nil {
			return nil, fmt.Errorf("store: sum usage by key: since: %w", err)
		}
		monday := since
		if week != since {
			w, _ := time.Parse(time.DateOnly, week)
			monday = w.AddDate(0, 0, 7).Format(time.DateOnly)
		}
		// keyIDs are named once, outside the union, so a principal may see
		// as many keys as before (each is a statement parameter); both
		// databases push the condition into the union's arms.
		q = `SELECT key_id, SUM(requests), SUM(denials), SUM(micro_usd) FROM (
			SELECT key_id, requests, denials, micro_usd FROM usage_key_week WHERE week >= ?
			UNION ALL
			SELECT key_id, requests, denials, micro_usd FROM usage_daily WHERE day >= ? AND day < ?
		) u WHERE 1 = 1` + inKeys + ` GROUP BY key_id ORDER BY key_id`
		args = withKeys(monday, since, monday)
	case keyIDs == nil:
		q = `SELECT ` + col + `, SUM(requests), SUM(denials), SUM(micro_usd) FROM usage_day_model WHERE day >= ? GROUP BY ` + col + ` ORDER BY ` + col
		args = []any{since}
	default:
		q = `SELECT ` + col + `, SUM(requests), SUM(denials), SUM(micro_usd) FROM usage_daily WHERE day >= ?` + inKeys + ` GROUP BY ` + col + ` ORDER BY ` + col
		args = withKeys(since)
	}
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

// firstOfMonth reports whether day (YYYY-MM-DD) is the first of a month.
func firstOfMonth(day string) bool {
	d, err := time.Parse(time.DateOnly, day)
	return err == nil && d.Day() == 1
}

// KeySummaries returns every key in ListKeys' order with only what the
// console's overview reads of it: id, name, team, owner, limits, and the
// times that say whether it is unused (created, expires, revoked, last
// used). Reading ten columns rather than thirty is most of the overview's
// time with ten thousand keys.
func (s *Store) KeySummaries(ctx context.Context) ([]Key, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, name, team, owner_user, limits, created_at, expires_at, revoked_at, last_used_at
		FROM api_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("store: list keys: %w", err)
	}
	return collect(rows, func(r rowScanner) (Key, error) {
		var k Key
		err := r.Scan(&k.ID, &k.Name, nullStringCol{&k.Team}, nullStringCol{&k.Owner}, limitsCol{&k.Limits},
			timeCol{&k.CreatedAt}, nullTimeCol{&k.ExpiresAt}, nullTimeCol{&k.RevokedAt}, nullTimeCol{&k.LastUsedAt})
		return k, err
	}, "list keys")
}
