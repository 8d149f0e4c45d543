// Package store persists keygate's providers, encrypted vault records, API
// keys and admin tokens in SQLite or PostgreSQL.
//
// The package never imports a database driver itself: the program that uses
// it (cmd/keygate) registers the drivers with blank imports of
// modernc.org/sqlite and github.com/jackc/pgx/v5/stdlib.
//
// Conventions shared by every method:
//   - Times are stored in UTC truncated to microseconds and read back in UTC,
//     so a value written and read again is time.Equal to the truncated input.
//     Nil *time.Time fields are stored as NULL.
//   - String lists are stored as JSON text. Nil and empty lists are stored
//     alike and always read back as nil.
//   - Errors wrap ErrNotFound and ErrConflict so callers can test them with
//     errors.Is.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Dialect identifies which SQL database a Store is backed by.
type Dialect int

const (
	// SQLite is a local database file, the default for single-node installs.
	SQLite Dialect = iota + 1
	// Postgres is a PostgreSQL server, for installs that run several keygate
	// processes against one database.
	Postgres
)

// String returns the dialect's name as it appears in logs: "sqlite" or "postgres".
func (d Dialect) String() string {
	switch d {
	case SQLite:
		return "sqlite"
	case Postgres:
		return "postgres"
	}
	return fmt.Sprintf("Dialect(%d)", int(d))
}

// querier is what every data method runs against: *sql.DB outside a
// transaction and *sql.Tx inside one.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Store is keygate's database. It is safe for concurrent use. Open one per
// process with Open and close it with Close on shutdown.
type Store struct {
	dialect Dialect
	q       *queries
	t       *tokenQueries
	p       *peopleQueries

	// r serves reads and w serves writes. On SQLite they are separate pools
	// (many readers, one writer); on PostgreSQL both are the same pool. Inside
	// a transaction both are the *sql.Tx.
	r, w querier

	writeDB *sql.DB // nil on a transaction-bound Store
	readDB  *sql.DB // nil on a transaction-bound Store; == writeDB on PostgreSQL
	inTx    bool
}

// Dialect reports which database the Store is backed by.
func (s *Store) Dialect() Dialect { return s.dialect }

// Close releases the Store's database connections. It must not be called on
// the Store passed to an InTx function.
func (s *Store) Close() error {
	if s.inTx {
		return errors.New("store: Close called on a transaction's Store; close the Store returned by Open instead")
	}
	err := s.writeDB.Close()
	if s.readDB != s.writeDB {
		err = errors.Join(err, s.readDB.Close())
	}
	if err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// Ping checks that the database is reachable, for readiness probes.
func (s *Store) Ping(ctx context.Context) error {
	if s.inTx {
		return nil
	}
	if err := s.writeDB.PingContext(ctx); err != nil {
		return fmt.Errorf("store: ping %s database: %w", s.dialect, err)
	}
	if s.readDB != s.writeDB {
		if err := s.readDB.PingContext(ctx); err != nil {
			return fmt.Errorf("store: ping %s database: %w", s.dialect, err)
		}
	}
	return nil
}

// InTx runs fn in one database transaction. fn receives a Store bound to that
// transaction and must use it, not s, for every read and write that belongs to
// the transaction: on SQLite writes are serialized, so writing through s from
// inside fn waits for the transaction to end and blocks until ctx is done.
// The transaction commits if fn returns nil and rolls back if fn returns an
// error or panics (the panic continues after the rollback). Calling InTx on
// a transaction-bound Store runs fn in the same transaction.
func (s *Store) InTx(ctx context.Context, fn func(tx *Store) error) (err error) {
	if s.inTx {
		return fn(s)
	}
	tx, err := s.writeDB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin transaction: %w", err)
	}
	committed := false
	defer func() {
		if committed {
			return
		}
		// Runs on an error return and while a panic from fn unwinds; the
		// panic then continues with its original stack.
		rbErr := tx.Rollback()
		if rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
			err = errors.Join(err, fmt.Errorf("store: roll back transaction: %w", rbErr))
		}
	}()
	bound := &Store{dialect: s.dialect, q: s.q, t: s.t, p: s.p, r: tx, w: tx, inTx: true}
	if err := fn(bound); err != nil {
		return err
	}
	committed = true
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit transaction: %w", mapErr(err))
	}
	return nil
}

// mapErr turns driver errors that callers act on into the package's
// sentinel errors, keeping the driver's message for the log.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return ErrNotFound
	case isUniqueViolation(err):
		return fmt.Errorf("%w (%v)", ErrConflict, err)
	}
	return err
}

// isUniqueViolation reports whether err is a unique or primary key violation
// from either driver. The drivers' error types are matched by their methods
// so that this package does not import the drivers.
func isUniqueViolation(err error) bool {
	var pg interface{ SQLState() string }
	if errors.As(err, &pg) {
		return pg.SQLState() == "23505" // unique_violation
	}
	var lite interface{ Code() int }
	if errors.As(err, &lite) {
		switch lite.Code() {
		case 2067, 1555: // SQLITE_CONSTRAINT_UNIQUE, SQLITE_CONSTRAINT_PRIMARYKEY
			return true
		}
	}
	return false
}

// rowsAffectedOrNotFound returns ErrNotFound when res changed no rows.
func rowsAffectedOrNotFound(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// rebind rewrites the ? placeholders of query into $1, $2, ... for PostgreSQL.
// Question marks inside single-quoted literals are left alone.
func rebind(d Dialect, query string) string {
	if d != Postgres {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n, inQuote := 0, false
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'':
			inQuote = !inQuote
		case c == '?' && !inQuote:
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// timeArg converts t to the column representation of the dialect: INTEGER
// microseconds on SQLite, TIMESTAMPTZ on PostgreSQL. Both are UTC and
// truncated to microseconds.
func (s *Store) timeArg(t time.Time) any {
	t = t.UTC().Truncate(time.Microsecond)
	if s.dialect == SQLite {
		return t.UnixMicro()
	}
	return t
}

// nullTimeArg is timeArg for optional times: nil is stored as NULL.
func (s *Store) nullTimeArg(t *time.Time) any {
	if t == nil {
		return nil
	}
	return s.timeArg(*t)
}

// bytesArg stores nil byte slices as empty values, since the columns are NOT NULL.
func bytesArg(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
