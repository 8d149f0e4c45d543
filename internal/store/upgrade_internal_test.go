package store

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// TestUpgradeToPeople: a database from before users (schema 13) with an
// admin and an operator token and a key upgrades in place: the admin token
// becomes owner, the operator token stays operator, the bootstrap token is
// known as one, none expires, and the key belongs to no team.
func TestUpgradeToPeople(t *testing.T) {
	for name, open := range map[string]func(t *testing.T) (string, *Store){
		"sqlite": func(t *testing.T) (string, *Store) {
			path := filepath.Join(t.TempDir(), "keygate.db")
			s, err := openSQLite(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			return "sqlite://" + path, s
		},
		"postgres": func(t *testing.T) (string, *Store) {
			u := freshPostgresSchema(t)
			s, err := openPostgres(t.Context(), u)
			if err != nil {
				t.Fatal(err)
			}
			return u, s
		},
	} {
		t.Run(name, func(t *testing.T) {
			url, s := open(t)
			applyMigrationsUpTo(t, s, 13)
			now := s.timeArg(time.Now())
			for _, row := range []struct{ id, name, role string }{{"adm_1", "bootstrap", "admin"}, {"adm_2", "ci", "operator"}, {"adm_3", "recovered", "admin"}} {
				if _, err := s.writeDB.ExecContext(t.Context(), rebind(s.dialect, `INSERT INTO admin_tokens (id, name, hash, role, created_at) VALUES (?, ?, ?, ?, ?)`),
					row.id, row.name, []byte(row.id), row.role, now); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.writeDB.ExecContext(t.Context(), rebind(s.dialect, `INSERT INTO api_keys (id, name, env, prefix, hash, created_at) VALUES (?, ?, ?, ?, ?, ?)`),
				"key_1", "old", "live", "kg_live_x", []byte("k"), now); err != nil {
				t.Fatal(err)
			}
			s.Close()

			up, err := Open(t.Context(), url)
			if err != nil {
				t.Fatal(err)
			}
			defer up.Close()
			want := map[string][2]string{"adm_1": {"owner", AdminTokenBootstrap}, "adm_2": {"operator", AdminTokenAdmin}, "adm_3": {"owner", AdminTokenAdmin}}
			for id, w := range want {
				tok, err := up.GetAdminToken(t.Context(), id)
				if err != nil {
					t.Fatal(err)
				}
				if tok.Role != w[0] || tok.Kind != w[1] || tok.UserID != "" || tok.ExpiresAt != nil || tok.RevokedAt != nil {
					t.Errorf("%s after the upgrade: role %q kind %q user %q expires %v; want %s %s of no user, not expiring", id, tok.Role, tok.Kind, tok.UserID, tok.ExpiresAt, w[0], w[1])
				}
			}
			k, err := up.GetKey(t.Context(), "key_1")
			if err != nil || k.Team != "" || k.Owner != "" || k.CreatedBy != "" {
				t.Errorf("key after the upgrade: %+v %v", k, err)
			}
		})
	}
}

// applyMigrationsUpTo brings a new database to schema version n, as an
// older keygate left it.
func applyMigrationsUpTo(t *testing.T, s *Store, n int) {
	t.Helper()
	dir, create := "migrations/sqlite", `CREATE TABLE schema_migrations (version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`
	if s.dialect == Postgres {
		dir, create = "migrations/postgres", `CREATE TABLE schema_migrations (version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)`
	}
	ms, err := loadMigrations(migrationFiles, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.writeDB.ExecContext(t.Context(), create); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[:n] {
		if _, err := s.writeDB.ExecContext(t.Context(), m.sql); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
		if _, err := s.writeDB.ExecContext(t.Context(), rebind(s.dialect, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
			m.version, m.name, s.timeArg(time.Now())); err != nil {
			t.Fatal(err)
		}
	}
}

// freshPostgresSchema returns the URL of a new schema in the database
// KEYGATE_TEST_POSTGRES_URL names, dropped when the test ends, or skips.
func freshPostgresSchema(t *testing.T) string {
	base := os.Getenv("KEYGATE_TEST_POSTGRES_URL")
	if base == "" {
		t.Skip("set KEYGATE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable to run the PostgreSQL tests")
	}
	var b [8]byte
	rand.Read(b[:])
	schema := "kg_up_" + hex.EncodeToString(b[:])
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.ExecContext(t.Context(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE") })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// TestUpgradeToUsageRollups: usage written before the rollups existed
// (schema 24) is rolled up by the upgrade, so UsageBy answers as before,
// and usage written after it adds to the same sums.
func TestUpgradeToUsageRollups(t *testing.T) {
	for name, open := range map[string]func(t *testing.T) (string, *Store){
		"sqlite": func(t *testing.T) (string, *Store) {
			path := filepath.Join(t.TempDir(), "keygate.db")
			s, err := openSQLite(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			return "sqlite://" + path, s
		},
		"postgres": func(t *testing.T) (string, *Store) {
			u := freshPostgresSchema(t)
			s, err := openPostgres(t.Context(), u)
			if err != nil {
				t.Fatal(err)
			}
			return u, s
		},
	} {
		t.Run(name, func(t *testing.T) {
			url, s := open(t)
			applyMigrationsUpTo(t, s, 24)
			old := []UsageRow{
				{KeyID: "key_1", Day: "2026-11-29", Model: "gpt-4o", Requests: 3, Denials: 1, MicroUSD: 300}, // a Sunday
				{KeyID: "key_1", Day: "2026-11-30", Model: "gpt-4o", Requests: 5, MicroUSD: 500},             // the Monday after
				{KeyID: "key_1", Day: "2026-12-02", Model: "o3", Requests: 7, Denials: 2, MicroUSD: 700},
				{KeyID: "key_2", Day: "2026-12-06", Model: "gpt-4o", Requests: 11, MicroUSD: 1100},
			}
			for _, r := range old {
				if _, err := s.writeDB.ExecContext(t.Context(), rebind(s.dialect, `INSERT INTO usage_daily (key_id, day, model, requests, denials, micro_usd) VALUES (?, ?, ?, ?, ?, ?)`),
					r.KeyID, r.Day, r.Model, r.Requests, r.Denials, r.MicroUSD); err != nil {
					t.Fatal(err)
				}
			}
			s.Close()

			up, err := Open(t.Context(), url)
			if err != nil {
				t.Fatal(err)
			}
			defer up.Close()
			if err := up.AddUsage(t.Context(), []UsageRow{{KeyID: "key_2", Day: "2026-12-01", Model: "o3", Requests: 13, MicroUSD: 1300}}); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				by, since string
				want      []UsageTotal
			}{
				{"key", "2026-11-29", []UsageTotal{{"key_1", 15, 3, 1500}, {"key_2", 24, 0, 2400}}},
				{"key", "2026-11-30", []UsageTotal{{"key_1", 12, 2, 1200}, {"key_2", 24, 0, 2400}}},
				{"key", "2026-12-02", []UsageTotal{{"key_1", 7, 2, 700}, {"key_2", 11, 0, 1100}}},
				{"key", "2026-12-01", []UsageTotal{{"key_1", 7, 2, 700}, {"key_2", 24, 0, 2400}}},
				{"key", "2026-11-01", []UsageTotal{{"key_1", 15, 3, 1500}, {"key_2", 24, 0, 2400}}},
				{"day", "2026-11-30", []UsageTotal{{"2026-11-30", 5, 0, 500}, {"2026-12-01", 13, 0, 1300}, {"2026-12-02", 7, 2, 700}, {"2026-12-06", 11, 0, 1100}}},
				{"model", "2026-11-29", []UsageTotal{{"gpt-4o", 19, 1, 1900}, {"o3", 20, 2, 2000}}},
			} {
				got, err := up.UsageBy(t.Context(), c.by, c.since, nil)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, c.want) {
					t.Errorf("after the upgrade, usage by %s since %s = %v, want %v", c.by, c.since, got, c.want)
				}
			}
		})
	}
}
