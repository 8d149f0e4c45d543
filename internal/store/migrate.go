package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"
)

// migrationFiles holds the schema migrations, one directory per dialect.
// Files are named NNNN_description.sql, numbered from 0001 without gaps.
//
//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFiles embed.FS

// migration is one numbered schema change.
type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads and orders the migrations in dir of fsys.
func loadMigrations(fsys fs.FS, dir string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("store: read migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("store: migration %s/%s is not named NNNN_description.sql", dir, name)
		}
		body, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("store: read migration %s: %w", name, err)
		}
		ms = append(ms, migration{version: v, name: name, sql: string(body)})
	}
	// fs.ReadDir sorts by file name; with fixed-width numbers that is version order.
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("store: migrations in %s must be numbered 1, 2, 3, ... without gaps or repeats; found %s at position %d", dir, m.name, i+1)
		}
	}
	return ms, nil
}

// migrate brings the schema up to date in one transaction, which also
// records each migration in schema_migrations: an upgrade applies whole or
// not at all. Concurrent keygate processes starting against one database
// take turns: on SQLite the immediate transaction holds the write lock, on
// PostgreSQL a transaction advisory lock scoped to the current schema does.
// One transaction rather than one per migration also means a waiting
// process asks for the lock once, instead of competing for it again at
// every step of another's upgrade (which starved it past busy_timeout).
func migrate(ctx context.Context, s *Store) error {
	dir, createTable, lock := "migrations/sqlite",
		`CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER NOT NULL PRIMARY KEY,
			name       TEXT    NOT NULL,
			applied_at INTEGER NOT NULL
		) STRICT`, ""
	if s.dialect == Postgres {
		dir, createTable, lock = "migrations/postgres",
			`CREATE TABLE IF NOT EXISTS schema_migrations (
				version    INTEGER     NOT NULL PRIMARY KEY,
				name       TEXT        NOT NULL,
				applied_at TIMESTAMPTZ NOT NULL
			)`,
			`SELECT pg_advisory_xact_lock(hashtext('keygate schema_migrations ' || COALESCE(current_schema(), '')))`
	}
	ms, err := loadMigrations(migrationFiles, dir)
	if err != nil {
		return err
	}

	step := func(what string, fn func(tx *sql.Tx) error) error {
		tx, err := s.writeDB.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("store: %s: begin transaction: %w", what, err)
		}
		defer tx.Rollback()
		if lock != "" {
			if _, err := tx.ExecContext(ctx, lock); err != nil {
				return fmt.Errorf("store: %s: take migration lock: %w", what, err)
			}
		}
		if err := fn(tx); err != nil {
			return fmt.Errorf("store: %s: %w", what, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("store: %s: commit: %w", what, err)
		}
		return nil
	}

	applied := rebind(s.dialect, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`)
	record := rebind(s.dialect, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`)
	return step("migrate the schema", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, createTable); err != nil {
			return err
		}
		var newest sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&newest); err != nil {
			return err
		}
		if int(newest.Int64) > len(ms) {
			return fmt.Errorf("the database schema is at version %d but this keygate build knows only up to %d; upgrade keygate", newest.Int64, len(ms))
		}
		for _, m := range ms {
			var n int
			if err := tx.QueryRowContext(ctx, applied, m.version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				continue
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("apply migration %s: %w", m.name, err)
			}
			if _, err := tx.ExecContext(ctx, record, m.version, m.name, s.timeArg(time.Now())); err != nil {
				return fmt.Errorf("record migration %s: %w", m.name, err)
			}
		}
		return nil
	})
}
