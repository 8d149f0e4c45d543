package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Driver names the program must register (see the package documentation).
const (
	sqliteDriver   = "sqlite"
	postgresDriver = "pgx"
)

// Connection pool sizes.
const (
	// sqliteReaders is the minimum number of read connections to a SQLite
	// database; in WAL mode readers do not block each other or the writer.
	sqliteReaders = 4
	// postgresConns caps the connections one keygate process opens to
	// PostgreSQL, leaving room for other processes under the server's
	// max_connections.
	postgresConns = 20
)

// Open connects to the database at url, creates or upgrades its schema, and
// returns a Store ready for use. Accepted forms:
//
//	sqlite:///abs/path/keygate.db   SQLite, absolute path
//	sqlite://rel/path/keygate.db    SQLite, path relative to the working directory
//	/any/path/keygate.db            SQLite, plain file path (absolute or relative)
//	postgres://user@host/db?...     PostgreSQL (also postgresql://)
//
// For SQLite, Open creates missing parent directories (mode 0700) and the
// database file (mode 0600).
func Open(ctx context.Context, url string) (*Store, error) {
	d, target, err := parseURL(url)
	if err != nil {
		return nil, err
	}
	var s *Store
	switch d {
	case SQLite:
		s, err = openSQLite(ctx, target)
	default:
		s, err = openPostgres(ctx, target)
	}
	if err != nil {
		return nil, err
	}
	// Several processes starting on one new SQLite file take turns at the
	// upgrade; one that waited past busy_timeout while another applied
	// every migration on a loaded machine asks again, for up to a minute.
	deadline := time.Now().Add(time.Minute)
	for {
		err = migrate(ctx, s)
		if err == nil || d != SQLite || !strings.Contains(err.Error(), "database is locked") || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// parseURL works out the dialect of a database URL. For SQLite the returned
// target is the file path; for PostgreSQL it is the URL unchanged.
func parseURL(url string) (Dialect, string, error) {
	if url == "" {
		return 0, "", errors.New("store: empty database URL; use sqlite:///path/to/keygate.db or postgres://user@host/db")
	}
	scheme, rest, hasScheme := strings.Cut(url, "://")
	if !hasScheme {
		if p, ok := strings.CutPrefix(url, "sqlite:"); ok {
			return sqlitePath(p)
		}
		return sqlitePath(url)
	}
	switch strings.ToLower(scheme) {
	case "sqlite", "sqlite3":
		return sqlitePath(rest)
	case "postgres", "postgresql":
		return Postgres, url, nil
	}
	return 0, "", fmt.Errorf("store: unsupported database URL scheme %q; use sqlite:// or postgres://", scheme)
}

func sqlitePath(p string) (Dialect, string, error) {
	switch {
	case p == "":
		return 0, "", errors.New("store: SQLite URL has no file path; use sqlite:///abs/path/keygate.db")
	case strings.ContainsRune(p, '?'):
		return 0, "", fmt.Errorf("store: SQLite path %q contains '?'; keygate sets the connection options itself, so remove the query", p)
	case p == ":memory:" || strings.HasPrefix(p, "file:"):
		return 0, "", fmt.Errorf("store: SQLite path %q is not supported; give a file path such as /var/lib/keygate/keygate.db", p)
	}
	return SQLite, filepath.Clean(p), nil
}

// requireDriver returns an error naming the import that registers name.
func requireDriver(name, importPath string) error {
	if slices.Contains(sql.Drivers(), name) {
		return nil
	}
	return fmt.Errorf("store: no database/sql driver %q is registered; the program must import _ %q", name, importPath)
}

// openSQLite opens two pools on the file at path: a single writer connection,
// so that writers queue in keygate instead of failing with SQLITE_BUSY, and
// several read-only connections, which WAL mode lets run alongside the writer.
// busy_timeout covers the remaining contention: other processes (such as the
// keygate CLI) writing the same file.
func openSQLite(ctx context.Context, path string) (*Store, error) {
	if err := requireDriver(sqliteDriver, "modernc.org/sqlite"); err != nil {
		return nil, err
	}
	if err := createSQLiteFile(path); err != nil {
		return nil, err
	}
	const common = "_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)"
	// journal_mode is persistent; setting it on the writer's connection
	// switches the file to WAL for every connection.
	writeDB, err := sql.Open(sqliteDriver, path+"?"+common+"&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("store: open SQLite database %s: %w", path, err)
	}
	writeDB.SetMaxOpenConns(1)
	writeDB.SetMaxIdleConns(1)
	writeDB.SetConnMaxLifetime(0)
	writeDB.SetConnMaxIdleTime(0)
	if err := writeDB.PingContext(ctx); err != nil {
		writeDB.Close()
		return nil, fmt.Errorf("store: open SQLite database %s: %w", path, err)
	}

	readDB, err := sql.Open(sqliteDriver, path+"?"+common+"&_pragma=query_only(1)")
	if err != nil {
		writeDB.Close()
		return nil, fmt.Errorf("store: open SQLite database %s: %w", path, err)
	}
	n := max(sqliteReaders, runtime.GOMAXPROCS(0))
	readDB.SetMaxOpenConns(n)
	readDB.SetMaxIdleConns(n)
	readDB.SetConnMaxIdleTime(5 * time.Minute)

	return &Store{
		dialect: SQLite,
		q:       newQueries(SQLite),
		t:       ptrTo(newTokenQueries(SQLite)),
		p:       ptrTo(newPeopleQueries(SQLite)),
		r:       readDB,
		w:       writeDB,
		writeDB: writeDB,
		readDB:  readDB,
	}, nil
}

// createSQLiteFile makes sure the parent directory exists (created 0700) and
// that the database file exists, creating it 0600 so that SQLite does not
// create it with the process umask's looser default.
func createSQLiteFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("store: create directory for SQLite database: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		return f.Close()
	case errors.Is(err, fs.ErrExist):
		return nil
	}
	return fmt.Errorf("store: create SQLite database file: %w", err)
}

// openPostgres opens a connection pool to the PostgreSQL server at url.
func openPostgres(ctx context.Context, url string) (*Store, error) {
	if err := requireDriver(postgresDriver, "github.com/jackc/pgx/v5/stdlib"); err != nil {
		return nil, err
	}
	db, err := sql.Open(postgresDriver, url)
	if err != nil {
		// The URL may hold a password, so it is not repeated here.
		return nil, fmt.Errorf("store: open PostgreSQL database: %w", err)
	}
	db.SetMaxOpenConns(postgresConns)
	db.SetMaxIdleConns(postgresConns / 2)
	db.SetConnMaxIdleTime(5 * time.Minute)
	db.SetConnMaxLifetime(time.Hour)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: connect to PostgreSQL: %w; check the database URL and that the server is running", err)
	}
	return &Store{
		dialect: Postgres,
		q:       newQueries(Postgres),
		t:       ptrTo(newTokenQueries(Postgres)),
		p:       ptrTo(newPeopleQueries(Postgres)),
		r:       db,
		w:       db,
		writeDB: db,
		readDB:  db,
	}, nil
}

func ptrTo[T any](v T) *T { return &v }
