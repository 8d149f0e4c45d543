package vault

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keygate/keygate/internal/store"
)

// JanitorStore is what Sweep needs from keygate's database.
type JanitorStore interface {
	DestroyDueVersions(ctx context.Context, now time.Time) (int, error)
	SecretsDueForPurge(ctx context.Context, now time.Time) ([]string, error)
	GetSecretMeta(ctx context.Context, name string) (store.SecretMeta, error)
	PurgeSecret(ctx context.Context, name string) error
}

// Sweep destroys what has outlived its keeping: superseded versions past
// their destroy time (a rotated provider key after its grace) and deleted
// secrets past their recovery window. keygate runs it periodically; running
// it on several nodes at once is harmless.
func Sweep(ctx context.Context, st JanitorStore, v *Vault, now time.Time) (destroyed, purged int, err error) {
	destroyed, err = st.DestroyDueVersions(ctx, now)
	if err != nil {
		return 0, 0, err
	}
	names, err := st.SecretsDueForPurge(ctx, now)
	if err != nil {
		return destroyed, 0, err
	}
	var errs []error
	for _, name := range names {
		m, err := st.GetSecretMeta(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			continue // purged by another node
		}
		if err == nil {
			err = st.PurgeSecret(ctx, name)
		}
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			errs = append(errs, fmt.Errorf("purge a deleted secret: %w", err))
		default:
			purged++
			if v != nil {
				v.Forget(m.RecordID)
			}
		}
	}
	return destroyed, purged, errors.Join(errs...)
}
