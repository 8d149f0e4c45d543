package store

import (
	"context"
	"fmt"
)

// PutSecretVersion stores one encrypted version of a vault record. It returns
// ErrConflict when that version of the record already exists, so two writers
// racing to add the same version cannot both succeed.
func (s *Store) PutSecretVersion(ctx context.Context, v SecretVersion) error {
	_, err := s.w.ExecContext(ctx, s.q.putSecret,
		v.ID, v.Version, v.Format, v.KEKID, bytesArg(v.WrappedDEK), bytesArg(v.Ciphertext), s.timeArg(v.CreatedAt), s.nullTimeArg(v.DestroyAt))
	if err != nil {
		return fmt.Errorf("store: put secret %q version %d: %w", v.ID, v.Version, mapErr(err))
	}
	return nil
}

// GetSecretVersion returns one version of a vault record, or ErrNotFound.
func (s *Store) GetSecretVersion(ctx context.Context, id string, version int) (SecretVersion, error) {
	v, err := scanSecret(s.r.QueryRowContext(ctx, s.q.getSecret, id, version))
	if err != nil {
		return SecretVersion{}, fmt.Errorf("store: get secret %q version %d: %w", id, version, mapErr(err))
	}
	return v, nil
}

// LatestSecretVersion returns the highest version of a vault record, or
// ErrNotFound when the record has no versions.
func (s *Store) LatestSecretVersion(ctx context.Context, id string) (SecretVersion, error) {
	v, err := scanSecret(s.r.QueryRowContext(ctx, s.q.latestSecret, id))
	if err != nil {
		return SecretVersion{}, fmt.Errorf("store: get latest version of secret %q: %w", id, mapErr(err))
	}
	return v, nil
}

// DeleteSecret removes every version of a vault record, or returns
// ErrNotFound when it has none.
func (s *Store) DeleteSecret(ctx context.Context, id string) error {
	res, err := s.w.ExecContext(ctx, s.q.deleteSecret, id)
	if err == nil {
		err = rowsAffectedOrNotFound(res)
	}
	if err != nil {
		return fmt.Errorf("store: delete secret %q: %w", id, mapErr(err))
	}
	return nil
}

// DeleteSecretRecords removes every version of every vault record whose
// id starts with prefix (say, all that one MCP server's users granted:
// mcp-oauth/SERVER_ID/), and returns how many versions it removed.
// prefix must not be empty.
func (s *Store) DeleteSecretRecords(ctx context.Context, prefix string) (int, error) {
	if prefix == "" {
		return 0, fmt.Errorf("store: delete secret records: the id prefix is empty, which would delete every record")
	}
	res, err := s.w.ExecContext(ctx, rebind(s.dialect, `DELETE FROM secret_versions WHERE substr(id, 1, ?) = ?`), len(prefix), prefix)
	if err != nil {
		return 0, fmt.Errorf("store: delete secret records under %q: %w", prefix, mapErr(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("store: delete secret records under %q: %w", prefix, err)
	}
	return int(n), nil
}

func scanSecret(row rowScanner) (SecretVersion, error) {
	var v SecretVersion
	err := row.Scan(&v.ID, &v.Version, &v.Format, &v.KEKID, &v.WrappedDEK, &v.Ciphertext, timeCol{&v.CreatedAt}, nullTimeCol{&v.DestroyAt})
	return v, err
}
