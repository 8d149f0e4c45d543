package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ExportSnapshot reads every table a backup carries in one read-only
// transaction, so the snapshot is consistent even while keygate keeps
// serving and writing.
func (s *Store) ExportSnapshot(ctx context.Context) (Snapshot, error) {
	if s.inTx {
		return Snapshot{}, errors.New("store: ExportSnapshot must be called outside a transaction")
	}
	// SQLite in WAL mode fixes a read transaction's snapshot at its first
	// read; PostgreSQL needs REPEATABLE READ for one snapshot across queries.
	opts := &sql.TxOptions{ReadOnly: true}
	if s.dialect == Postgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := s.readDB.BeginTx(ctx, opts)
	if err != nil {
		return Snapshot{}, fmt.Errorf("store: begin backup read: %w", err)
	}
	defer tx.Rollback()
	ro := &Store{dialect: s.dialect, q: s.q, t: s.t, p: s.p, r: tx, w: tx, inTx: true}

	var snap Snapshot
	if snap.Providers, err = ro.ListProviders(ctx); err != nil {
		return Snapshot{}, err
	}
	rows, err := tx.QueryContext(ctx, s.q.listAllSecretVersions)
	if err != nil {
		return Snapshot{}, fmt.Errorf("store: read secret versions: %w", err)
	}
	if snap.SecretVersions, err = collect(rows, scanSecret, "read secret versions"); err != nil {
		return Snapshot{}, err
	}
	if snap.Secrets, err = ro.ListSecretMeta(ctx, true); err != nil {
		return Snapshot{}, err
	}
	if snap.Keys, err = ro.ListKeys(ctx); err != nil {
		return Snapshot{}, err
	}
	if snap.AdminTokens, err = ro.ListAdminTokens(ctx); err != nil {
		return Snapshot{}, err
	}
	if snap.KEKRecords, err = ro.ListKEKRecords(ctx); err != nil {
		return Snapshot{}, err
	}
	if snap.KEKRotations, err = ro.ListKEKRotations(ctx); err != nil {
		return Snapshot{}, err
	}
	if snap.Groups, err = ro.ListGroups(ctx); err != nil {
		return Snapshot{}, err
	}
	if snap.Users, err = ro.ListUsers(ctx); err != nil {
		return Snapshot{}, err
	}
	if snap.Teams, err = ro.ListTeams(ctx); err != nil {
		return Snapshot{}, err
	}
	rows, err = tx.QueryContext(ctx, s.p.listAllMembers)
	if err != nil {
		return Snapshot{}, fmt.Errorf("store: read team members: %w", err)
	}
	if snap.TeamMembers, err = collect(rows, scanMember, "read team members"); err != nil {
		return Snapshot{}, err
	}
	return snap, nil
}

// ErrNotEmpty is returned by ImportSnapshot when the database already holds
// providers, keys or user secrets.
var ErrNotEmpty = errors.New("the database already holds providers, keys or secrets")

// ImportSnapshot loads a snapshot into a database that holds no providers,
// API keys or user secrets, in one transaction: either all of it lands or
// nothing changes. keygate's own records in the target (the key pepper and
// the admin credential a first start creates, recorded KEKs) are replaced
// by the snapshot's, so the backed-up keys and admin tokens keep working.
func (s *Store) ImportSnapshot(ctx context.Context, snap Snapshot) error {
	return s.InTx(ctx, func(tx *Store) error {
		for _, q := range []struct{ sql, what string }{
			{tx.q.countProviders, "providers"}, {tx.q.countKeys, "API keys"}, {tx.q.countSecretMeta, "secrets"}, {tx.q.countGroups, "groups"},
			{`SELECT COUNT(*) FROM users`, "users"},
		} {
			var n int
			if err := tx.r.QueryRowContext(ctx, q.sql).Scan(&n); err != nil {
				return fmt.Errorf("store: count %s: %w", q.what, err)
			}
			if n > 0 {
				return fmt.Errorf("store: restore: the database holds %d %s; restore into a new, empty keygate database: %w", n, q.what, ErrNotEmpty)
			}
		}
		for _, q := range []string{tx.q.clearVersions, tx.q.clearAdminTokens, tx.q.clearKEKs, tx.q.clearRotations} {
			if _, err := tx.w.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("store: restore: clear the new database's own records: %w", err)
			}
		}
		for _, v := range snap.SecretVersions {
			if err := tx.PutSecretVersion(ctx, v); err != nil {
				return fmt.Errorf("store: restore: %w", err)
			}
		}
		for _, p := range snap.Providers {
			if err := tx.CreateProvider(ctx, p); err != nil {
				return fmt.Errorf("store: restore: %w", err)
			}
		}
		for _, m := range snap.Secrets {
			if err := tx.CreateSecretMeta(ctx, m); err != nil {
				return fmt.Errorf("store: restore: %w", err)
			}
		}
		for _, g := range snap.Groups {
			if err := tx.CreateGroup(ctx, g); err != nil {
				return fmt.Errorf("store: restore: %w", err)
			}
		}
		for _, u := range snap.Users {
			if err := tx.CreateUser(ctx, u); err != nil {
				return fmt.Errorf("store: restore: %w", err)
			}
		}
		for _, t := range snap.Teams {
			// The team's group was restored with the other groups.
			if _, err := tx.w.ExecContext(ctx, tx.p.createTeam, t.Name, t.Group, limitsArg(t.Policy), tx.timeArg(t.CreatedAt)); err != nil {
				return fmt.Errorf("store: restore: team %q: %w", t.Name, mapErr(err))
			}
		}
		for _, m := range snap.TeamMembers {
			if _, err := tx.w.ExecContext(ctx, tx.p.putMember, m.Team, m.UserID, m.Role, tx.timeArg(m.AddedAt)); err != nil {
				return fmt.Errorf("store: restore: member %q of team %q: %w", m.UserID, m.Team, mapErr(err))
			}
		}
		for _, k := range snap.Keys {
			if err := tx.CreateKey(ctx, k); err != nil {
				return fmt.Errorf("store: restore: %w", err)
			}
		}
		for _, a := range snap.AdminTokens {
			if err := tx.CreateAdminToken(ctx, a); err != nil {
				return fmt.Errorf("store: restore: %w", err)
			}
		}
		for _, r := range snap.KEKRecords {
			if err := tx.PutKEKRecord(ctx, r); err != nil {
				return fmt.Errorf("store: restore: %w", err)
			}
		}
		for _, r := range snap.KEKRotations {
			if err := tx.CreateKEKRotation(ctx, r); err != nil {
				return fmt.Errorf("store: restore: %w", err)
			}
		}
		return nil
	})
}
