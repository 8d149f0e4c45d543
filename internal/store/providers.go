package store

import (
	"context"
	"fmt"
)

// CreateProvider stores a new provider. It returns ErrConflict when a
// provider with the same ID or name already exists.
func (s *Store) CreateProvider(ctx context.Context, p Provider) error {
	_, err := s.w.ExecContext(ctx, s.q.createProvider,
		p.ID, p.Name, p.Dialect, p.BaseURL, listArg(p.Models), p.IsDefault, p.SecretID, s.timeArg(p.CreatedAt), p.Env, p.Preset, p.APIVersion)
	if err != nil {
		return fmt.Errorf("store: create provider %q: %w", p.Name, mapErr(err))
	}
	return nil
}

// GetProvider returns the provider with the given name, or ErrNotFound.
func (s *Store) GetProvider(ctx context.Context, name string) (Provider, error) {
	p, err := scanProvider(s.r.QueryRowContext(ctx, s.q.getProvider, name))
	if err != nil {
		return Provider{}, fmt.Errorf("store: get provider %q: %w", name, mapErr(err))
	}
	return p, nil
}

// ListProviders returns every provider ordered by name.
func (s *Store) ListProviders(ctx context.Context) ([]Provider, error) {
	rows, err := s.r.QueryContext(ctx, s.q.listProviders)
	if err != nil {
		return nil, fmt.Errorf("store: list providers: %w", err)
	}
	defer rows.Close()
	var out []Provider
	for rows.Next() {
		p, err := scanProvider(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list providers: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list providers: %w", err)
	}
	return out, nil
}

// DeleteProvider removes the provider with the given name, or returns
// ErrNotFound. The provider's vault record is left for the caller to delete.
func (s *Store) DeleteProvider(ctx context.Context, name string) error {
	res, err := s.w.ExecContext(ctx, s.q.deleteProvider, name)
	if err == nil {
		err = rowsAffectedOrNotFound(res)
	}
	if err != nil {
		return fmt.Errorf("store: delete provider %q: %w", name, mapErr(err))
	}
	return nil
}

func scanProvider(row rowScanner) (Provider, error) {
	var p Provider
	err := row.Scan(&p.ID, &p.Name, &p.Dialect, &p.BaseURL, listCol{&p.Models}, &p.IsDefault, &p.SecretID, timeCol{&p.CreatedAt}, &p.Env, &p.Preset, &p.APIVersion)
	return p, err
}
