package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"
)

// CreateKey stores a new API key. It returns ErrConflict when a key with the
// same ID, name or hash already exists.
func (s *Store) CreateKey(ctx context.Context, k Key) error {
	_, err := s.w.ExecContext(ctx, s.q.createKey,
		k.ID, k.Name, k.Env, k.Prefix, bytesArg(k.Hash),
		listArg(k.AllowModels), listArg(k.AllowProviders), s.timeArg(k.CreatedAt),
		s.nullTimeArg(k.ExpiresAt), s.nullTimeArg(k.RevokedAt), s.nullTimeArg(k.LastUsedAt),
		limitsArg(k.Limits), nullString(k.Group),
		listArg(k.AllowPaths), listArg(k.AllowIPs), k.Hours, s.nullTimeArg(k.SuspendedAt), nullString(k.RotatedFrom),
		k.RotateEvery.Microseconds(), k.RotateGrace.Microseconds(), k.DeliverTo, s.nullTimeArg(k.NextRotationAt), k.ClientCert, s.nullTimeArg(k.StepUpUntil), listArg(k.AllowServices),
		nullString(k.Team), nullString(k.Owner), k.CreatedBy, listArg(k.AllowTools), k.LeakAction)
	if err != nil {
		return fmt.Errorf("store: create key %q: %w", k.Name, mapErr(err))
	}
	return nil
}

// GetKey returns the key with the given ID, or ErrNotFound.
func (s *Store) GetKey(ctx context.Context, id string) (Key, error) {
	k, err := scanKey(s.r.QueryRowContext(ctx, s.q.getKey, id))
	if err != nil {
		return Key{}, fmt.Errorf("store: get key %q: %w", id, mapErr(err))
	}
	return k, nil
}

// GetKeyByName returns the key with the given name, or ErrNotFound.
func (s *Store) GetKeyByName(ctx context.Context, name string) (Key, error) {
	k, err := scanKey(s.r.QueryRowContext(ctx, s.q.getKeyByName, name))
	if err != nil {
		return Key{}, fmt.Errorf("store: get key named %q: %w", name, mapErr(err))
	}
	return k, nil
}

// GetKeyByHash returns the key whose stored HMAC is hash, or ErrNotFound.
// It returns revoked and expired keys too; the caller decides whether the key
// may be used. It runs one indexed query, for the request path.
func (s *Store) GetKeyByHash(ctx context.Context, hash []byte) (Key, error) {
	k, err := scanKey(s.r.QueryRowContext(ctx, s.q.getKeyByHash, bytesArg(hash)))
	if err != nil {
		// The hash is a credential digest; it is not put in the message.
		return Key{}, fmt.Errorf("store: get key by hash: %w", mapErr(err))
	}
	return k, nil
}

// ListKeys returns every key, revoked ones included, ordered by creation
// time and then ID.
func (s *Store) ListKeys(ctx context.Context) ([]Key, error) {
	rows, err := s.r.QueryContext(ctx, s.q.listKeys)
	if err != nil {
		return nil, fmt.Errorf("store: list keys: %w", err)
	}
	defer rows.Close()
	var out []Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list keys: %w", err)
	}
	return out, nil
}

// RevokeKey marks the key revoked at the given time and returns it as stored.
// Revoking an already revoked key changes nothing and returns it with its
// original revocation time. It returns ErrNotFound for an unknown ID.
func (s *Store) RevokeKey(ctx context.Context, id string, at time.Time) (Key, error) {
	k, err := scanKey(s.w.QueryRowContext(ctx, s.q.revokeKey, s.timeArg(at), id))
	if err != nil {
		return Key{}, fmt.Errorf("store: revoke key %q: %w", id, mapErr(err))
	}
	return k, nil
}

// TouchKey records that the key was used at the given time. The stored time
// only moves forward: a touch older than the recorded one is ignored. It
// returns ErrNotFound for an unknown ID.
func (s *Store) TouchKey(ctx context.Context, id string, at time.Time) error {
	t := s.timeArg(at)
	res, err := s.w.ExecContext(ctx, s.q.touchKey, t, t, id)
	if err == nil {
		err = rowsAffectedOrNotFound(res)
	}
	if err != nil {
		return fmt.Errorf("store: record use of key %q: %w", id, mapErr(err))
	}
	return nil
}

// KeyUse is one key's latest use, for TouchKeys.
type KeyUse struct {
	ID string
	At time.Time
}

// TouchKeys records many keys' latest use in one transaction, so a busy
// gateway pays one commit per flush rather than one per key. Like TouchKey
// it never moves a time backwards; ids of deleted keys are skipped.
func (s *Store) TouchKeys(ctx context.Context, uses []KeyUse) error {
	// One order on every node: concurrent batches wait, never deadlock.
	uses = slices.Clone(uses)
	slices.SortFunc(uses, func(a, b KeyUse) int { return cmp.Compare(a.ID, b.ID) })
	return s.InTx(ctx, func(tx *Store) error {
		for _, u := range uses {
			t := tx.timeArg(u.At)
			if _, err := tx.w.ExecContext(ctx, tx.q.touchKey, t, t, u.ID); err != nil {
				return fmt.Errorf("store: record use of %d keys: %w", len(uses), mapErr(err))
			}
		}
		return nil
	})
}

func scanKey(row rowScanner) (Key, error) {
	var k Key
	err := row.Scan(&k.ID, &k.Name, &k.Env, &k.Prefix, &k.Hash,
		listCol{&k.AllowModels}, listCol{&k.AllowProviders}, timeCol{&k.CreatedAt},
		nullTimeCol{&k.ExpiresAt}, nullTimeCol{&k.RevokedAt}, nullTimeCol{&k.LastUsedAt},
		limitsCol{&k.Limits}, nullStringCol{&k.Group},
		listCol{&k.AllowPaths}, listCol{&k.AllowIPs}, &k.Hours, nullTimeCol{&k.SuspendedAt}, nullStringCol{&k.RotatedFrom},
		durationCol{&k.RotateEvery}, durationCol{&k.RotateGrace}, &k.DeliverTo, nullTimeCol{&k.NextRotationAt}, &k.ClientCert, nullTimeCol{&k.StepUpUntil}, listCol{&k.AllowServices},
		nullStringCol{&k.Team}, nullStringCol{&k.Owner}, &k.CreatedBy, listCol{&k.AllowTools}, &k.LeakAction)
	return k, err
}

// SetKeyLeakAction sets what the outbound credential check does with the
// key's requests and answers ("" follows the global policy) and returns
// the key.
func (s *Store) SetKeyLeakAction(ctx context.Context, id, action string) (Key, error) {
	k, err := scanKey(s.w.QueryRowContext(ctx, rebind(s.dialect, `UPDATE api_keys SET leak_action = ? WHERE id = ? RETURNING `+keyCols), action, id))
	if err != nil {
		return Key{}, fmt.Errorf("store: set the leak action of key %q: %w", id, mapErr(err))
	}
	return k, nil
}
