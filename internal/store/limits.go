package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// limitsArg stores nil or empty limits as "{}".
func limitsArg(b []byte) string {
	if len(b) == 0 {
		return "{}"
	}
	return string(b)
}

// limitsCol scans a limits column; "{}" reads back as nil.
type limitsCol struct{ b *[]byte }

// Scan implements sql.Scanner.
func (c limitsCol) Scan(src any) error {
	var v []byte
	switch x := src.(type) {
	case nil:
	case string:
		v = []byte(x)
	case []byte:
		v = append([]byte(nil), x...)
	default:
		return fmt.Errorf("cannot read %T as limits", src)
	}
	if string(v) == "{}" || len(v) == 0 {
		v = nil
	}
	*c.b = v
	return nil
}

// nullString stores "" as NULL.
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// nullStringCol scans an optional text column; NULL reads as "".
type nullStringCol struct{ s *string }

// Scan implements sql.Scanner.
func (c nullStringCol) Scan(src any) error {
	switch x := src.(type) {
	case nil:
		*c.s = ""
	case string:
		*c.s = x
	case []byte:
		*c.s = string(x)
	default:
		return fmt.Errorf("cannot read %T as text", src)
	}
	return nil
}

// UpdateKeyLimits replaces a key's limits (JSON; nil limits nothing) and
// returns the key as stored, or ErrNotFound.
func (s *Store) UpdateKeyLimits(ctx context.Context, id string, limits []byte) (Key, error) {
	k, err := scanKey(s.w.QueryRowContext(ctx, s.q.updateKeyLimits, limitsArg(limits), id))
	if err != nil {
		return Key{}, fmt.Errorf("store: update limits of key %q: %w", id, mapErr(err))
	}
	return k, nil
}

// ErrNoSuchGroup is returned when a key is put in a group that does not exist.
var ErrNoSuchGroup = errors.New("no such group")

// SetKeyGroup puts a key in a group ("" for none) and returns it as stored.
// It returns ErrNotFound for an unknown key and ErrNoSuchGroup for an
// unknown group.
func (s *Store) SetKeyGroup(ctx context.Context, id, group string) (Key, error) {
	g := nullString(group)
	k, err := scanKey(s.w.QueryRowContext(ctx, s.q.updateKeyGroup, g, id, g, g))
	if err == nil {
		return k, nil
	}
	err = mapErr(err)
	if errors.Is(err, ErrNotFound) && group != "" {
		if _, kerr := s.GetKey(ctx, id); kerr == nil {
			err = ErrNoSuchGroup
		}
	}
	return Key{}, fmt.Errorf("store: put key %q in group %q: %w", id, group, err)
}

// CreateGroup stores a new group, or returns ErrConflict.
func (s *Store) CreateGroup(ctx context.Context, g Group) error {
	_, err := s.w.ExecContext(ctx, s.q.createGroup, g.Name, limitsArg(g.Limits), s.timeArg(g.CreatedAt))
	if err != nil {
		return fmt.Errorf("store: create group %q: %w", g.Name, mapErr(err))
	}
	return nil
}

// GetGroup returns a group with its key count, or ErrNotFound.
func (s *Store) GetGroup(ctx context.Context, name string) (Group, error) {
	g, err := scanGroup(s.r.QueryRowContext(ctx, s.q.getGroup, name))
	if err != nil {
		return Group{}, fmt.Errorf("store: get group %q: %w", name, mapErr(err))
	}
	return g, nil
}

// ListGroups returns every group ordered by name.
func (s *Store) ListGroups(ctx context.Context) ([]Group, error) {
	rows, err := s.r.QueryContext(ctx, s.q.listGroups)
	if err != nil {
		return nil, fmt.Errorf("store: list groups: %w", err)
	}
	return collect(rows, scanGroup, "list groups")
}

// UpdateGroupLimits replaces a group's limits, or returns ErrNotFound.
func (s *Store) UpdateGroupLimits(ctx context.Context, name string, limits []byte) error {
	res, err := s.w.ExecContext(ctx, s.q.updateGroup, limitsArg(limits), name)
	if err == nil {
		err = rowsAffectedOrNotFound(res)
	}
	if err != nil {
		return fmt.Errorf("store: update group %q: %w", name, mapErr(err))
	}
	return nil
}

// ErrGroupInUse is returned when a group that still has keys is deleted.
var ErrGroupInUse = errors.New("the group still has keys")

// DeleteGroup removes a group without keys. It returns ErrNotFound for an
// unknown group and ErrGroupInUse while keys are in it.
func (s *Store) DeleteGroup(ctx context.Context, name string) error {
	res, err := s.w.ExecContext(ctx, s.q.deleteGroup, name)
	if err == nil {
		err = rowsAffectedOrNotFound(res)
	}
	if errors.Is(err, ErrNotFound) {
		if _, gerr := s.GetGroup(ctx, name); gerr == nil {
			err = ErrGroupInUse
		}
	}
	if err != nil {
		return fmt.Errorf("store: delete group %q: %w", name, mapErr(err))
	}
	return nil
}

func scanGroup(row rowScanner) (Group, error) {
	var g Group
	err := row.Scan(&g.Name, limitsCol{&g.Limits}, timeCol{&g.CreatedAt}, &g.Keys)
	return g, err
}

// AddUsage adds every row to the stored totals in one transaction, and to
// the rollups the console's overview reads (usage_day_model,
// usage_key_week and usage_key_month; see UsageBy). A row whose day is not
// a date (YYYY-MM-DD) is refused, and nothing is written.
func (s *Store) AddUsage(ctx context.Context, rows []UsageRow) error {
	if len(rows) == 0 {
		return nil
	}
	// Every node writes its rows in one order, so two nodes adding to the
	// same keys' rows at once wait for each other instead of deadlocking
	// (PostgreSQL would abort one, holding that node's usage back until a
	// later flush, and losing it if the node is killed meanwhile).
	rows = slices.Clone(rows)
	slices.SortFunc(rows, func(a, b UsageRow) int {
		return cmp.Or(cmp.Compare(a.KeyID, b.KeyID), cmp.Compare(a.Day, b.Day), cmp.Compare(a.Model, b.Model))
	})
	dayModel, keyWeek, keyMonth, err := rollUp(rows)
	if err != nil {
		return err
	}
	return s.InTx(ctx, func(tx *Store) error {
		for _, r := range rows {
			if _, err := tx.w.ExecContext(ctx, tx.q.addUsage, r.KeyID, r.Day, r.Model,
				r.Requests, r.InputTokens, r.OutputTokens, r.MicroUSD, r.Denials); err != nil {
				return fmt.Errorf("store: record usage: %w", mapErr(err))
			}
		}
		for _, r := range []struct {
			table, a, b string
			rows        []rollupRow
		}{{"usage_day_model", "day", "model", dayModel}, {"usage_key_week", "week", "key_id", keyWeek}, {"usage_key_month", "month", "key_id", keyMonth}} {
			if err := tx.addRollup(ctx, r.table, r.a, r.b, r.rows); err != nil {
				return err
			}
		}
		return nil
	})
}

// rollupChunk is how many rollup rows one statement adds: few statements
// for a large flush, each well within the databases' parameter limits.
const rollupChunk = 200

// addRollup adds rows to a usage rollup keyed by columns a and b (from
// AddUsage's own table, never from input), a chunk a statement. rollUp
// sums the rows by key first, as one statement may name a key only once.
func (s *Store) addRollup(ctx context.Context, table, a, b string, rows []rollupRow) error {
	for len(rows) > 0 {
		n := min(len(rows), rollupChunk)
		var q strings.Builder
		q.WriteString("INSERT INTO " + table + " (" + a + ", " + b + ", requests, denials, micro_usd) VALUES ")
		args := make([]any, 0, 5*n)
		for i, t := range rows[:n] {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString("(?, ?, ?, ?, ?)")
			args = append(args, t.a, t.b, t.Requests, t.Denials, t.MicroUSD)
		}
		q.WriteString(" ON CONFLICT (" + a + ", " + b + ") DO UPDATE SET requests = " + table + ".requests + excluded.requests, denials = " +
			table + ".denials + excluded.denials, micro_usd = " + table + ".micro_usd + excluded.micro_usd")
		if _, err := s.w.ExecContext(ctx, rebind(s.dialect, q.String()), args...); err != nil {
			return fmt.Errorf("store: record usage in %s: %w", table, mapErr(err))
		}
		rows = rows[n:]
	}
	return nil
}

// rollupRow is one row of a usage rollup: its two key columns and sums.
type rollupRow struct {
	a, b                        string
	Requests, Denials, MicroUSD int64
}

// rollUp sums rows by (day, model), (week, key) and (month, key), each
// in key order, so concurrent writers take the rollups' row locks in one
// order.
func rollUp(rows []UsageRow) (dayModel, keyWeek, keyMonth []rollupRow, err error) {
	dm, kw, km := map[[2]string]*rollupRow{}, map[[2]string]*rollupRow{}, map[[2]string]*rollupRow{}
	add := func(m map[[2]string]*rollupRow, a, b string, r UsageRow) {
		t := m[[2]string{a, b}]
		if t == nil {
			t = &rollupRow{a: a, b: b}
			m[[2]string{a, b}] = t
		}
		t.Requests += r.Requests
		t.Denials += r.Denials
		t.MicroUSD += r.MicroUSD
	}
	for _, r := range rows {
		week, err := weekOf(r.Day)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("store: record usage of key %q: %w", r.KeyID, err)
		}
		add(dm, r.Day, r.Model, r)
		add(kw, week, r.KeyID, r)
		add(km, monthOf(r.Day), r.KeyID, r)
	}
	sorted := func(m map[[2]string]*rollupRow) []rollupRow {
		out := make([]rollupRow, 0, len(m))
		for _, t := range m {
			out = append(out, *t)
		}
		slices.SortFunc(out, func(x, y rollupRow) int { return cmp.Or(cmp.Compare(x.a, y.a), cmp.Compare(x.b, y.b)) })
		return out
	}
	return sorted(dm), sorted(kw), sorted(km), nil
}

// monthOf returns the first day of day's month, as the usage_key_month
// rollup keys it; day is a date weekOf accepted.
func monthOf(day string) string { return day[:len("2006-01-")] + "01" }

// weekOf returns the Monday (YYYY-MM-DD) of the week holding day, as the
// usage_key_week rollup keys it.
func weekOf(day string) (string, error) {
	d, err := time.Parse(time.DateOnly, day)
	if err != nil {
		return "", fmt.Errorf("day %q is not a date (YYYY-MM-DD)", day)
	}
	return d.AddDate(0, 0, -(int(d.Weekday())+6)%7).Format(time.DateOnly), nil
}

// ListUsage returns a key's usage rows from day since (YYYY-MM-DD) on,
// newest day first, then by model.
func (s *Store) ListUsage(ctx context.Context, keyID, since string) ([]UsageRow, error) {
	rows, err := s.r.QueryContext(ctx, s.q.listUsage, keyID, since)
	if err != nil {
		return nil, fmt.Errorf("store: read usage of key %q: %w", keyID, err)
	}
	return collect(rows, func(r rowScanner) (UsageRow, error) {
		var u UsageRow
		err := r.Scan(&u.KeyID, &u.Day, &u.Model, &u.Requests, &u.InputTokens, &u.OutputTokens, &u.MicroUSD, &u.Denials)
		return u, err
	}, "read usage")
}

// durationCol scans microseconds into a time.Duration.
type durationCol struct{ d *time.Duration }

// Scan implements sql.Scanner.
func (c durationCol) Scan(src any) error {
	v, ok := src.(int64)
	if !ok {
		return fmt.Errorf("cannot read %T as a duration", src)
	}
	*c.d = time.Duration(v) * time.Microsecond
	return nil
}
