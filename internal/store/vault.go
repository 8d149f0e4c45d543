package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// collect reads every row with scan and closes rows.
func collect[T any](rows *sql.Rows, scan func(rowScanner) (T, error), what string) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("store: %s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	return out, nil
}

// ListSecretVersions returns every stored version of a vault record, oldest
// first; an unknown record has none.
func (s *Store) ListSecretVersions(ctx context.Context, id string) ([]SecretVersion, error) {
	rows, err := s.r.QueryContext(ctx, s.q.listSecretVersions, id)
	if err != nil {
		return nil, fmt.Errorf("store: list versions of secret %q: %w", id, err)
	}
	return collect(rows, scanSecret, "list versions of secret "+id)
}

// ListSecretVersionsLike returns every stored version of the records whose
// id matches the SQL LIKE pattern, ordered by id and version.
func (s *Store) ListSecretVersionsLike(ctx context.Context, pattern string) ([]SecretVersion, error) {
	rows, err := s.r.QueryContext(ctx, s.q.listSecretVersionsLike, pattern)
	if err != nil {
		return nil, fmt.Errorf("store: list versions of secrets like %q: %w", pattern, err)
	}
	return collect(rows, scanSecret, "list versions of secrets like "+pattern)
}

// DeleteSecretVersion deletes one version, but only while it is still
// wrapped exactly as the caller read it (same KEK and wrapped data key). It
// reports whether it deleted it; false means it was gone or had changed.
func (s *Store) DeleteSecretVersion(ctx context.Context, sv SecretVersion) (bool, error) {
	res, err := s.w.ExecContext(ctx, s.q.deleteSecretVersion, sv.ID, sv.Version, sv.KEKID, bytesArg(sv.WrappedDEK))
	if err != nil {
		return false, fmt.Errorf("store: delete secret %q version %d: %w", sv.ID, sv.Version, mapErr(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: delete secret %q version %d: %w", sv.ID, sv.Version, err)
	}
	return n == 1, nil
}

// ScheduleDestroy sets destroy_at to at on every version of record id below
// version that has none yet, and returns how many it set. Versions already
// scheduled keep their earlier time.
func (s *Store) ScheduleDestroy(ctx context.Context, id string, below int, at time.Time) (int, error) {
	res, err := s.w.ExecContext(ctx, s.q.scheduleDestroy, s.timeArg(at), id, below)
	if err != nil {
		return 0, fmt.Errorf("store: schedule destruction of secret %q versions below %d: %w", id, below, mapErr(err))
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// DestroyDueVersions deletes every version whose destroy_at is at or before
// now, except the newest version of each record, and returns how many it
// deleted. Deleting the row destroys the wrapped data key, so the value is
// gone even from old database pages' point of view once they are reused.
func (s *Store) DestroyDueVersions(ctx context.Context, now time.Time) (int, error) {
	res, err := s.w.ExecContext(ctx, s.q.destroyDue, s.timeArg(now))
	if err != nil {
		return 0, fmt.Errorf("store: destroy superseded secret versions: %w", mapErr(err))
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// RewrapCandidates returns, in (id, version) order after the given position,
// up to limit versions whose data key is not wrapped by kekID, skipping
// records whose id matches the SQL LIKE pattern exclude. Start a pass with
// afterID "" and afterVersion 0, then continue from the last row returned,
// so a version that cannot be rewrapped does not stop the others.
func (s *Store) RewrapCandidates(ctx context.Context, kekID, exclude, afterID string, afterVersion, limit int) ([]SecretVersion, error) {
	rows, err := s.r.QueryContext(ctx, s.q.rewrapCandidates, kekID, exclude, afterID, afterID, afterVersion, limit)
	if err != nil {
		return nil, fmt.Errorf("store: find data keys to rewrap: %w", err)
	}
	return collect(rows, scanSecret, "find data keys to rewrap")
}

// CountNotWrappedBy returns how many versions, other than those whose id
// matches the LIKE pattern exclude, are not wrapped by kekID.
func (s *Store) CountNotWrappedBy(ctx context.Context, kekID, exclude string) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, s.q.countNotUnder, kekID, exclude).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count data keys to rewrap: %w", err)
	}
	return n, nil
}

// Rewrap replaces the wrapped data key of one version, but only while that
// version is still wrapped by old exactly as the caller read it. It reports
// whether it replaced it; false means another writer got there first.
func (s *Store) Rewrap(ctx context.Context, old SecretVersion, kekID string, wrapped []byte) (bool, error) {
	res, err := s.w.ExecContext(ctx, s.q.rewrap, kekID, bytesArg(wrapped), old.ID, old.Version, old.KEKID, bytesArg(old.WrappedDEK))
	if err != nil {
		return false, fmt.Errorf("store: rewrap secret %q version %d: %w", old.ID, old.Version, mapErr(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: rewrap secret %q version %d: %w", old.ID, old.Version, err)
	}
	return n == 1, nil
}

// CountByKEK returns how many versions each KEK wraps, by ciphertext format.
func (s *Store) CountByKEK(ctx context.Context) ([]KEKCount, error) {
	rows, err := s.r.QueryContext(ctx, s.q.countByKEK)
	if err != nil {
		return nil, fmt.Errorf("store: count versions by KEK: %w", err)
	}
	return collect(rows, func(r rowScanner) (KEKCount, error) {
		var c KEKCount
		err := r.Scan(&c.KEKID, &c.Format, &c.Versions)
		return c, err
	}, "count versions by KEK")
}

// CreateSecretMeta stores a new user secret's metadata. It returns
// ErrConflict when the name or record id is taken.
func (s *Store) CreateSecretMeta(ctx context.Context, m SecretMeta) error {
	_, err := s.w.ExecContext(ctx, s.q.createSecretMeta, m.Name, m.RecordID,
		s.timeArg(m.CreatedAt), s.timeArg(m.UpdatedAt), s.nullTimeArg(m.DeletedAt), s.nullTimeArg(m.PurgeAt), m.Owner)
	if err != nil {
		return fmt.Errorf("store: create secret %q: %w", m.Name, mapErr(err))
	}
	return nil
}

// GetSecretMeta returns a user secret's metadata, soft-deleted or not, or ErrNotFound.
func (s *Store) GetSecretMeta(ctx context.Context, name string) (SecretMeta, error) {
	m, err := scanSecretMeta(s.r.QueryRowContext(ctx, s.q.getSecretMeta, name))
	if err != nil {
		return SecretMeta{}, fmt.Errorf("store: get secret %q: %w", name, mapErr(err))
	}
	return m, nil
}

// ListSecretMeta returns user secrets ordered by name; soft-deleted ones only
// when includeDeleted is true.
func (s *Store) ListSecretMeta(ctx context.Context, includeDeleted bool) ([]SecretMeta, error) {
	q := s.q.listSecretMeta
	if includeDeleted {
		q = s.q.listAllSecretMeta
	}
	rows, err := s.r.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("store: list secrets: %w", err)
	}
	return collect(rows, scanSecretMeta, "list secrets")
}

// TouchSecretMeta sets a user secret's updated_at, or returns ErrNotFound.
func (s *Store) TouchSecretMeta(ctx context.Context, name string, at time.Time) error {
	res, err := s.w.ExecContext(ctx, s.q.touchSecretMeta, s.timeArg(at), name)
	if err == nil {
		err = rowsAffectedOrNotFound(res)
	}
	if err != nil {
		return fmt.Errorf("store: update secret %q: %w", name, mapErr(err))
	}
	return nil
}

// SoftDeleteSecret marks a live user secret deleted at at, to be purged at
// purgeAt. It returns ErrNotFound when no live secret has that name.
func (s *Store) SoftDeleteSecret(ctx context.Context, name string, at, purgeAt time.Time) error {
	res, err := s.w.ExecContext(ctx, s.q.softDeleteSecret, s.timeArg(at), s.timeArg(purgeAt), name)
	if err == nil {
		err = rowsAffectedOrNotFound(res)
	}
	if err != nil {
		return fmt.Errorf("store: delete secret %q: %w", name, mapErr(err))
	}
	return nil
}

// RestoreSecretMeta undoes a soft delete. It returns ErrNotFound when no
// soft-deleted secret has that name.
func (s *Store) RestoreSecretMeta(ctx context.Context, name string, at time.Time) error {
	res, err := s.w.ExecContext(ctx, s.q.restoreSecret, s.timeArg(at), name)
	if err == nil {
		err = rowsAffectedOrNotFound(res)
	}
	if err != nil {
		return fmt.Errorf("store: restore secret %q: %w", name, mapErr(err))
	}
	return nil
}

// PurgeSecret destroys a user secret: its metadata and every version, in
// one transaction. It returns ErrNotFound for an unknown name.
func (s *Store) PurgeSecret(ctx context.Context, name string) error {
	return s.InTx(ctx, func(tx *Store) error {
		m, err := tx.GetSecretMeta(ctx, name)
		if err != nil {
			return err
		}
		if _, err := tx.w.ExecContext(ctx, tx.q.deleteSecret, m.RecordID); err != nil {
			return fmt.Errorf("store: purge secret %q: %w", name, mapErr(err))
		}
		if _, err := tx.w.ExecContext(ctx, tx.q.deleteSecretMeta, name); err != nil {
			return fmt.Errorf("store: purge secret %q: %w", name, mapErr(err))
		}
		return nil
	})
}

// SecretsDueForPurge returns the names of soft-deleted secrets whose purge
// time is at or before now.
func (s *Store) SecretsDueForPurge(ctx context.Context, now time.Time) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, s.q.dueForPurge, s.timeArg(now))
	if err != nil {
		return nil, fmt.Errorf("store: find secrets due for purge: %w", err)
	}
	return collect(rows, func(r rowScanner) (string, error) {
		var n string
		err := r.Scan(&n)
		return n, err
	}, "find secrets due for purge")
}

func scanSecretMeta(row rowScanner) (SecretMeta, error) {
	var m SecretMeta
	err := row.Scan(&m.Name, &m.RecordID, timeCol{&m.CreatedAt}, timeCol{&m.UpdatedAt},
		nullTimeCol{&m.DeletedAt}, nullTimeCol{&m.PurgeAt}, &m.Owner, &m.CurrentVersion, &m.Versions)
	return m, err
}

// ListKEKRecords returns every recorded key-encryption key, oldest first.
func (s *Store) ListKEKRecords(ctx context.Context) ([]KEKRecord, error) {
	rows, err := s.r.QueryContext(ctx, s.q.listKEKs)
	if err != nil {
		return nil, fmt.Errorf("store: list KEK records: %w", err)
	}
	return collect(rows, scanKEK, "list KEK records")
}

// PutKEKRecord records a key-encryption key. It returns ErrConflict when
// one with the same id is recorded.
func (s *Store) PutKEKRecord(ctx context.Context, r KEKRecord) error {
	params := string(r.Params)
	if params == "" {
		params = "{}"
	}
	_, err := s.w.ExecContext(ctx, s.q.putKEK, r.ID, r.Kind, params, s.timeArg(r.CreatedAt))
	if err != nil {
		return fmt.Errorf("store: record KEK %q: %w", r.ID, mapErr(err))
	}
	return nil
}

func scanKEK(row rowScanner) (KEKRecord, error) {
	var r KEKRecord
	var params string
	err := row.Scan(&r.ID, &r.Kind, &params, timeCol{&r.CreatedAt})
	r.Params = []byte(params)
	return r, err
}

// CreateKEKRotation records a new rotation.
func (s *Store) CreateKEKRotation(ctx context.Context, r KEKRotation) error {
	_, err := s.w.ExecContext(ctx, s.q.createRotation, r.ID, r.FromKEK, r.ToKEK, r.BatchSize,
		r.BatchInterval.Microseconds(), r.Rewrapped, r.LastError,
		s.timeArg(r.StartedAt), s.timeArg(r.HeartbeatAt), s.nullTimeArg(r.FinishedAt))
	if err != nil {
		return fmt.Errorf("store: record KEK rotation: %w", mapErr(err))
	}
	return nil
}

// LatestKEKRotation returns the most recently started rotation, or ErrNotFound.
func (s *Store) LatestKEKRotation(ctx context.Context) (KEKRotation, error) {
	r, err := scanRotation(s.r.QueryRowContext(ctx, s.q.latestRotation))
	if err != nil {
		return KEKRotation{}, fmt.Errorf("store: latest KEK rotation: %w", mapErr(err))
	}
	return r, nil
}

// ListKEKRotations returns every rotation, oldest first.
func (s *Store) ListKEKRotations(ctx context.Context) ([]KEKRotation, error) {
	rows, err := s.r.QueryContext(ctx, s.q.listRotations)
	if err != nil {
		return nil, fmt.Errorf("store: list KEK rotations: %w", err)
	}
	return collect(rows, scanRotation, "list KEK rotations")
}

// KEKRotationProgress adds rewrapped to a rotation's count, sets its last
// error (empty when healthy) and its heartbeat.
func (s *Store) KEKRotationProgress(ctx context.Context, id string, rewrapped int, lastErr string, at time.Time) error {
	res, err := s.w.ExecContext(ctx, s.q.rotationProgress, rewrapped, lastErr, s.timeArg(at), id)
	if err == nil {
		err = rowsAffectedOrNotFound(res)
	}
	if err != nil {
		return fmt.Errorf("store: record progress of KEK rotation %q: %w", id, mapErr(err))
	}
	return nil
}

// FinishKEKRotation marks a rotation finished. Finishing a finished rotation
// keeps its first finish time.
func (s *Store) FinishKEKRotation(ctx context.Context, id string, at time.Time) error {
	if _, err := s.w.ExecContext(ctx, s.q.finishRotation, s.timeArg(at), s.timeArg(at), id); err != nil {
		return fmt.Errorf("store: finish KEK rotation %q: %w", id, mapErr(err))
	}
	return nil
}

func scanRotation(row rowScanner) (KEKRotation, error) {
	var r KEKRotation
	var interval int64
	err := row.Scan(&r.ID, &r.FromKEK, &r.ToKEK, &r.BatchSize, &interval, &r.Rewrapped, &r.LastError,
		timeCol{&r.StartedAt}, timeCol{&r.HeartbeatAt}, nullTimeCol{&r.FinishedAt})
	r.BatchInterval = time.Duration(interval) * time.Microsecond
	return r, err
}
