package store

import (
	"context"
	"fmt"
	"time"
)

// SourceRef is a vault record whose value is kept in a cloud secret manager
// or Vault and followed by keygate (see internal/sources): the record is
// the sealed cache of the value last read from the source.
type SourceRef struct {
	RecordID     string        // the vault record holding the cached value
	Target       string        // what it serves: "provider:NAME" or "secret:NAME"
	Ref          string        // where the value lives: awssm://..., azkv://..., gcpsm://..., vault://...
	RefreshEvery time.Duration // how often the source is read (microsecond precision)
	Grace        time.Duration // how long the cache is served once the source cannot be read

	SourceVersion   string     // the source's version id of the value last read
	VerifiedVersion int        // the record version holding that value; 0 before the first read
	VerifiedAt      *time.Time // the last successful read of the source
	FailingSince    *time.Time // the first failed read since the last success; nil while healthy
	LastError       string     // why the last read failed, without any value
	NextRefreshAt   time.Time  // when a node next reads the source
	CreatedAt       time.Time
}

const sourceRefCols = `record_id, target, ref, refresh_every, grace, source_version, verified_version, verified_at, failing_since, last_error, next_refresh_at, created_at`

func scanSourceRef(r rowScanner) (SourceRef, error) {
	var x SourceRef
	err := r.Scan(&x.RecordID, &x.Target, &x.Ref, durationCol{&x.RefreshEvery}, durationCol{&x.Grace}, &x.SourceVersion, &x.VerifiedVersion,
		nullTimeCol{&x.VerifiedAt}, nullTimeCol{&x.FailingSince}, &x.LastError, timeCol{&x.NextRefreshAt}, timeCol{&x.CreatedAt})
	return x, err
}

// PutSourceRef creates a reference, or replaces the reference and its
// schedule for the same record; a replaced reference keeps nothing of the
// old one's state, so its value must be read from the new source before it
// is served. It returns ErrConflict when another record already serves the
// same target.
func (s *Store) PutSourceRef(ctx context.Context, r SourceRef) error {
	q := rebind(s.dialect, `INSERT INTO source_refs (`+sourceRefCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (record_id) DO UPDATE SET target = excluded.target, ref = excluded.ref, refresh_every = excluded.refresh_every,
		grace = excluded.grace, source_version = excluded.source_version, verified_version = excluded.verified_version,
		verified_at = excluded.verified_at, failing_since = excluded.failing_since, last_error = excluded.last_error,
		next_refresh_at = excluded.next_refresh_at`)
	_, err := s.w.ExecContext(ctx, q, r.RecordID, r.Target, r.Ref, r.RefreshEvery.Microseconds(), r.Grace.Microseconds(), r.SourceVersion, r.VerifiedVersion,
		s.nullTimeArg(r.VerifiedAt), s.nullTimeArg(r.FailingSince), r.LastError, s.timeArg(r.NextRefreshAt), s.timeArg(r.CreatedAt))
	if err != nil {
		return fmt.Errorf("store: put source reference for %s: %w", r.Target, mapErr(err))
	}
	return nil
}

// GetSourceRef returns the reference of a vault record, or ErrNotFound
// when the record is not kept in a source.
func (s *Store) GetSourceRef(ctx context.Context, recordID string) (SourceRef, error) {
	r, err := scanSourceRef(s.r.QueryRowContext(ctx, rebind(s.dialect, `SELECT `+sourceRefCols+` FROM source_refs WHERE record_id = ?`), recordID))
	if err != nil {
		return SourceRef{}, fmt.Errorf("store: get source reference of %q: %w", recordID, mapErr(err))
	}
	return r, nil
}

// ListSourceRefs returns every reference, ordered by target.
func (s *Store) ListSourceRefs(ctx context.Context) ([]SourceRef, error) {
	return s.querySourceRefs(ctx, `SELECT `+sourceRefCols+` FROM source_refs ORDER BY target`)
}

// DueSourceRefs returns the references whose next read is due at now.
func (s *Store) DueSourceRefs(ctx context.Context, now time.Time) ([]SourceRef, error) {
	return s.querySourceRefs(ctx, `SELECT `+sourceRefCols+` FROM source_refs WHERE next_refresh_at <= ? ORDER BY next_refresh_at`, s.timeArg(now))
}

func (s *Store) querySourceRefs(ctx context.Context, q string, args ...any) ([]SourceRef, error) {
	rows, err := s.r.QueryContext(ctx, rebind(s.dialect, q), args...)
	if err != nil {
		return nil, fmt.Errorf("store: list source references: %w", err)
	}
	return collect(rows, scanSourceRef, "list source references")
}

// ClaimSourceRef moves a due reference's next read from due to next, and
// reports whether this caller won: of nodes racing for one due read, one
// reads the source.
func (s *Store) ClaimSourceRef(ctx context.Context, recordID string, due, next time.Time) (bool, error) {
	res, err := s.w.ExecContext(ctx, rebind(s.dialect, `UPDATE source_refs SET next_refresh_at = ? WHERE record_id = ? AND next_refresh_at = ?`),
		s.timeArg(next), recordID, s.timeArg(due))
	if err != nil {
		return false, fmt.Errorf("store: claim source reference %q: %w", recordID, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// SourceReadOK records a successful read of a reference's source at `at`:
// the source's version id and the record version that now holds its value.
func (s *Store) SourceReadOK(ctx context.Context, recordID, sourceVersion string, recordVersion int, at time.Time) error {
	_, err := s.w.ExecContext(ctx, rebind(s.dialect, `UPDATE source_refs SET source_version = ?, verified_version = ?, verified_at = ?,
		failing_since = NULL, last_error = '' WHERE record_id = ?`), sourceVersion, recordVersion, s.timeArg(at), recordID)
	if err != nil {
		return fmt.Errorf("store: record a read of source reference %q: %w", recordID, err)
	}
	return nil
}

// SourceReadFailed records a failed read at `at` with its reason (which
// must hold no secret), keeping the time of the first failure in a row.
func (s *Store) SourceReadFailed(ctx context.Context, recordID, reason string, at time.Time) error {
	_, err := s.w.ExecContext(ctx, rebind(s.dialect, `UPDATE source_refs SET failing_since = COALESCE(failing_since, ?), last_error = ? WHERE record_id = ?`),
		s.timeArg(at), reason, recordID)
	if err != nil {
		return fmt.Errorf("store: record a failed read of source reference %q: %w", recordID, err)
	}
	return nil
}

// DeleteSourceRef stops following a record's source, or returns ErrNotFound.
func (s *Store) DeleteSourceRef(ctx context.Context, recordID string) error {
	res, err := s.w.ExecContext(ctx, rebind(s.dialect, `DELETE FROM source_refs WHERE record_id = ?`), recordID)
	if err == nil {
		err = rowsAffectedOrNotFound(res)
	}
	if err != nil {
		return fmt.Errorf("store: delete source reference %q: %w", recordID, mapErr(err))
	}
	return nil
}
