package store

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	_ "modernc.org/sqlite"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		url     string
		dialect Dialect
		target  string
	}{
		{"sqlite:///var/lib/keygate/keygate.db", SQLite, "/var/lib/keygate/keygate.db"},
		{"sqlite://data/keygate.db", SQLite, "data/keygate.db"},
		{"sqlite:data/keygate.db", SQLite, "data/keygate.db"},
		{"/var/lib/keygate/keygate.db", SQLite, "/var/lib/keygate/keygate.db"},
		{"keygate.db", SQLite, "keygate.db"},
		{"postgres://kg@db:5432/keygate?sslmode=require", Postgres, "postgres://kg@db:5432/keygate?sslmode=require"},
		{"postgresql://kg@db/keygate", Postgres, "postgresql://kg@db/keygate"},
	}
	for _, tc := range tests {
		d, target, err := parseURL(tc.url)
		if err != nil || d != tc.dialect || target != tc.target {
			t.Errorf("parseURL(%q) = %v, %q, %v; want %v, %q", tc.url, d, target, err, tc.dialect, tc.target)
		}
	}
	for _, bad := range []string{"", "sqlite://", "sqlite:///x.db?_pragma=foo", ":memory:", "file:x.db", "mysql://root:hunter2@db/keygate"} {
		_, _, err := parseURL(bad)
		if err == nil {
			t.Errorf("parseURL(%q) succeeded, want an error", bad)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("parseURL error repeats the password: %v", err)
		}
	}
}

func TestSQLiteFileAndSettings(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "keygate")
	path := filepath.Join(dir, "keygate.db")
	s, err := Open(t.Context(), "sqlite://"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s has mode %v, want %v", p, got, want)
		}
	}

	pragma := func(db querier, name string) string {
		t.Helper()
		var v string
		if err := db.QueryRowContext(t.Context(), "PRAGMA "+name).Scan(&v); err != nil {
			t.Fatalf("PRAGMA %s: %v", name, err)
		}
		return v
	}
	for _, pool := range []struct {
		name string
		db   querier
	}{{"writer", s.writeDB}, {"reader", s.readDB}} {
		if got := pragma(pool.db, "journal_mode"); got != "wal" {
			t.Errorf("%s journal_mode = %s, want wal", pool.name, got)
		}
		if got := pragma(pool.db, "busy_timeout"); got != "5000" {
			t.Errorf("%s busy_timeout = %s, want 5000", pool.name, got)
		}
		if got := pragma(pool.db, "foreign_keys"); got != "1" {
			t.Errorf("%s foreign_keys = %s, want 1", pool.name, got)
		}
	}
	if _, err := s.readDB.ExecContext(t.Context(), "DELETE FROM api_keys"); err == nil {
		t.Error("the read pool accepted a write; writes must go through the single writer")
	}
}

func TestRelativeSQLitePath(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, url := range []string{"sqlite://data/a.db", "data/b.db"} {
		s, err := Open(t.Context(), url)
		if err != nil {
			t.Fatalf("Open(%q): %v", url, err)
		}
		s.Close()
	}
	for _, name := range []string{"a.db", "b.db"} {
		if _, err := os.Stat(filepath.Join(dir, "data", name)); err != nil {
			t.Errorf("relative SQLite path not created under the working directory: %v", err)
		}
	}
}

func TestNewerSchemaIsRefused(t *testing.T) {
	url := "sqlite://" + filepath.Join(t.TempDir(), "keygate.db")
	s, err := Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.writeDB.ExecContext(t.Context(),
		`INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, '0999_future.sql', 0)`)
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), url)
	if err == nil || !strings.Contains(err.Error(), "upgrade keygate") {
		t.Fatalf("Open of a database from a newer keygate = %v, want an error asking to upgrade", err)
	}
}

func TestLoadMigrations(t *testing.T) {
	good := fstest.MapFS{
		"m/0002_more.sql": {Data: []byte("B")},
		"m/0001_init.sql": {Data: []byte("A")},
		"m/README":        {Data: []byte("ignored")},
	}
	ms, err := loadMigrations(good, "m")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].version != 1 || ms[0].sql != "A" || ms[1].version != 2 {
		t.Errorf("loadMigrations = %+v, want 0001 then 0002", ms)
	}
	for name, fsys := range map[string]fstest.MapFS{
		"gap":        {"m/0001_a.sql": {}, "m/0003_c.sql": {}},
		"repeat":     {"m/0001_a.sql": {}, "m/0001_b.sql": {}},
		"unnumbered": {"m/init.sql": {}},
	} {
		if _, err := loadMigrations(fsys, "m"); err == nil {
			t.Errorf("loadMigrations accepted a %s", name)
		}
	}

	// Both dialects must move through the same schema versions.
	lite, err := loadMigrations(migrationFiles, "migrations/sqlite")
	if err != nil {
		t.Fatal(err)
	}
	pg, err := loadMigrations(migrationFiles, "migrations/postgres")
	if err != nil {
		t.Fatal(err)
	}
	if len(lite) != len(pg) {
		t.Fatalf("%d SQLite migrations but %d PostgreSQL migrations", len(lite), len(pg))
	}
	for i := range lite {
		if lite[i].name != pg[i].name {
			t.Errorf("migration %d is %s for SQLite but %s for PostgreSQL", i+1, lite[i].name, pg[i].name)
		}
	}
}

func TestRebind(t *testing.T) {
	in := `UPDATE t SET a = ?, b = '?' WHERE c = ? AND d = ?`
	if got, want := rebind(Postgres, in), `UPDATE t SET a = $1, b = '?' WHERE c = $2 AND d = $3`; got != want {
		t.Errorf("rebind(Postgres) = %s, want %s", got, want)
	}
	if got := rebind(SQLite, in); got != in {
		t.Errorf("rebind(SQLite) changed the query: %s", got)
	}
}
