package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Kinds of routing entry.
const (
	RoutingDeployment = "deployment" // a model at one or more registered providers
	RoutingAlias      = "alias"      // a model name clients call, served by deployments
	RoutingService    = "service"    // a passthrough service behind /proxy/{name}/
)

// RoutingEntry is one deployment, alias or passthrough service managed
// through the admin API. Spec is its definition as JSON, in the shape the
// configuration file gives it (internal/routing reads it); it names vault
// secrets but never holds one.
type RoutingEntry struct {
	Kind      string // RoutingDeployment, RoutingAlias or RoutingService
	Name      string
	Spec      []byte
	CreatedAt time.Time // UTC
	UpdatedAt time.Time // UTC
	UpdatedBy string    // who made the last change: a user id or a credential id
}

// Ways a RoutingChange changes an entry.
const (
	RoutingCreate = "create" // the entry must not exist yet
	RoutingUpdate = "update" // the entry must exist; Spec, UpdatedAt and UpdatedBy are replaced
	RoutingDelete = "delete" // the entry must exist
)

// RoutingChange is one change ApplyRoutingChanges makes.
type RoutingChange struct {
	Op    string // RoutingCreate, RoutingUpdate or RoutingDelete
	Entry RoutingEntry
}

// ErrStale is returned when a change was planned against a state that
// another change has since replaced: read again, plan again, retry.
var ErrStale = errors.New("changed since it was read")

// RoutingGeneration returns the routing generation: a number that every
// change to the routing entries increases. It is one row, cheap to read
// several times a second.
func (s *Store) RoutingGeneration(ctx context.Context) (int64, error) {
	var g int64
	if err := s.r.QueryRowContext(ctx, `SELECT generation FROM routing_generation WHERE id = 1`).Scan(&g); err != nil {
		return 0, fmt.Errorf("store: read the routing generation: %w", mapErr(err))
	}
	return g, nil
}

// ListRoutingEntries returns every routing entry, ordered by kind and
// name, and the generation they are at, read together.
func (s *Store) ListRoutingEntries(ctx context.Context) ([]RoutingEntry, int64, error) {
	var (
		out []RoutingEntry
		gen int64
	)
	err := s.readTx(ctx, func(q querier) error {
		if err := q.QueryRowContext(ctx, `SELECT generation FROM routing_generation WHERE id = 1`).Scan(&gen); err != nil {
			return err
		}
		rows, err := q.QueryContext(ctx, `SELECT kind, name, spec, created_at, updated_at, updated_by FROM routing_entries ORDER BY kind, name`)
		if err != nil {
			return err
		}
		out, err = collect(rows, scanRoutingEntry, "list routing entries")
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("store: list routing entries: %w", mapErr(err))
	}
	return out, gen, nil
}

// GetRoutingEntry returns one routing entry, or ErrNotFound.
func (s *Store) GetRoutingEntry(ctx context.Context, kind, name string) (RoutingEntry, error) {
	e, err := scanRoutingEntry(s.r.QueryRowContext(ctx, rebind(s.dialect,
		`SELECT kind, name, spec, created_at, updated_at, updated_by FROM routing_entries WHERE kind = ? AND name = ?`), kind, name))
	if err != nil {
		return RoutingEntry{}, fmt.Errorf("store: get %s %q: %w", kind, name, mapErr(err))
	}
	return e, nil
}

// ApplyRoutingChanges makes changes in one transaction, all or none, and
// returns the new routing generation. base is the generation the changes
// were planned against: when another change has landed since, nothing is
// changed and the error wraps ErrStale. A create of an entry that exists
// wraps ErrConflict; an update or delete of one that does not, ErrNotFound.
// An empty list changes nothing and returns the generation (ErrStale
// when it is not base).
func (s *Store) ApplyRoutingChanges(ctx context.Context, base int64, changes []RoutingChange) (int64, error) {
	if len(changes) == 0 {
		gen, err := s.RoutingGeneration(ctx)
		if err == nil && gen != base {
			err = fmt.Errorf("store: apply routing changes: routing entries: %w (planned against generation %d, now %d)", ErrStale, base, gen)
		}
		return gen, err
	}
	err := s.InTx(ctx, func(tx *Store) error {
		// Taking the row first serializes writers on PostgreSQL (a row
		// lock) as SQLite's single writer does.
		res, err := tx.w.ExecContext(ctx, rebind(s.dialect, `UPDATE routing_generation SET generation = generation + 1 WHERE id = 1 AND generation = ?`), base)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("routing entries: %w (planned against generation %d)", ErrStale, base)
		}
		for _, c := range changes {
			if err := tx.applyRoutingChange(ctx, c); err != nil {
				return fmt.Errorf("%s %s %q: %w", c.Op, c.Entry.Kind, c.Entry.Name, err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: apply routing changes: %w", mapErr(err))
	}
	return base + 1, nil
}

func (s *Store) applyRoutingChange(ctx context.Context, c RoutingChange) error {
	e := c.Entry
	if e.Kind != RoutingDeployment && e.Kind != RoutingAlias && e.Kind != RoutingService {
		return fmt.Errorf("unknown kind of routing entry %q", e.Kind)
	}
	var (
		res sql.Result
		err error
	)
	switch c.Op {
	case RoutingCreate:
		res, err = s.w.ExecContext(ctx, rebind(s.dialect,
			`INSERT INTO routing_entries (kind, name, spec, created_at, updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?)`),
			e.Kind, e.Name, string(e.Spec), s.timeArg(e.CreatedAt), s.timeArg(e.UpdatedAt), e.UpdatedBy)
	case RoutingUpdate:
		res, err = s.w.ExecContext(ctx, rebind(s.dialect,
			`UPDATE routing_entries SET spec = ?, updated_at = ?, updated_by = ? WHERE kind = ? AND name = ?`),
			string(e.Spec), s.timeArg(e.UpdatedAt), e.UpdatedBy, e.Kind, e.Name)
	case RoutingDelete:
		res, err = s.w.ExecContext(ctx, rebind(s.dialect, `DELETE FROM routing_entries WHERE kind = ? AND name = ?`), e.Kind, e.Name)
	default:
		return fmt.Errorf("unknown routing change %q", c.Op)
	}
	if err == nil {
		err = rowsAffectedOrNotFound(res)
	}
	return mapErr(err)
}

// readTx runs fn against one consistent snapshot of the database: a
// read-only transaction outside a transaction, the transaction inside one.
func (s *Store) readTx(ctx context.Context, fn func(q querier) error) error {
	if s.inTx {
		return fn(s.r)
	}
	opts := &sql.TxOptions{ReadOnly: true}
	if s.dialect == Postgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := s.readDB.BeginTx(ctx, opts)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return fn(tx)
}

func scanRoutingEntry(row rowScanner) (RoutingEntry, error) {
	var (
		e    RoutingEntry
		spec string
	)
	err := row.Scan(&e.Kind, &e.Name, &spec, timeCol{&e.CreatedAt}, timeCol{&e.UpdatedAt}, &e.UpdatedBy)
	e.Spec = []byte(spec)
	return e, err
}
