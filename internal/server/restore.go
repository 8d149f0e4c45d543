package server

import (
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/keygate/keygate/internal/config"
	"github.com/keygate/keygate/internal/store"
	"github.com/keygate/keygate/internal/vault"
)

// RestoreSummary says what a restore brought back.
type RestoreSummary struct {
	KEKID          string
	Providers      int
	Keys           int
	Secrets        int
	SecretVersions int
	AdminTokens    int
}

// Restore loads an encrypted backup (from `keygate vault backup`) into the
// database cfg names, which must hold no providers, keys or secrets yet: a
// new machine, or one where keygate only started once. keygate must not be
// running against that database. The configured key-encryption key must be
// the one the backup was made under (for a file KEK, copy the master key
// file; a passphrase KEK is re-derived from the parameters the backup
// carries). Every record is opened before anything is written: a backup
// this keygate could not use is refused and changes nothing.
func Restore(ctx context.Context, cfg config.Config, backup io.Reader, opts ...Option) (RestoreSummary, error) {
	o := applyOptions(opts)
	st, err := store.Open(ctx, cfg.DatabaseURL())
	if err != nil {
		return RestoreSummary{}, fmt.Errorf("database: %w", err)
	}
	defer st.Close()
	var closers []func() error
	defer func() {
		for _, c := range closers {
			if c != nil {
				_ = c()
			}
		}
	}()
	var reg *backupRegistry
	kekOpts := func(prompt bool) vault.KEKOptions {
		ko := vault.KEKOptions{DataDir: cfg.DataDir, Getenv: o.getenv, Registry: reg}
		if prompt {
			ko.Prompt = o.prompt
		}
		return ko
	}
	open := func(ctx context.Context, url string, prompt bool) (vault.KEK, error) {
		opened, err := vault.OpenKEK(ctx, url, kekOpts(prompt))
		if err != nil {
			return nil, err
		}
		closers = append(closers, opened.Close)
		return opened.KEK, nil
	}
	var cur vault.KEK
	snap, hdr, err := vault.ReadBackup(ctx, backup, func(ctx context.Context, hdr vault.BackupHeader) (vault.KEK, error) {
		reg = &backupRegistry{records: slices.Clone(hdr.KEKRecords)}
		k, err := open(ctx, cfg.KEKURL(), true)
		if err != nil {
			return nil, fmt.Errorf("key-encryption key: %w", err)
		}
		cur = k
		return k, nil
	})
	if err != nil {
		return RestoreSummary{}, err
	}
	var previous []vault.KEK
	for _, u := range cfg.KEKPrevious {
		k, err := open(ctx, u, false)
		if err != nil {
			return RestoreSummary{}, fmt.Errorf("kek_previous: %w", err)
		}
		previous = append(previous, k)
	}
	err = vault.VerifySnapshot(ctx, snap, cur, vault.WithPrevious(previous...),
		vault.WithKEKOpener(func(ctx context.Context, url string) (vault.KEK, error) { return open(ctx, url, false) }))
	if err != nil {
		return RestoreSummary{}, err
	}
	if err := st.ImportSnapshot(ctx, snap); err != nil {
		return RestoreSummary{}, err
	}
	return RestoreSummary{
		KEKID: hdr.KEKID, Providers: len(snap.Providers), Keys: len(snap.Keys), Secrets: len(snap.Secrets),
		SecretVersions: len(snap.SecretVersions), AdminTokens: len(snap.AdminTokens),
	}, nil
}

// backupRegistry serves a backup's KEK records (a passphrase KEK's salt and
// cost) while its KEK is opened; the records reach the database with the
// rest of the backup.
type backupRegistry struct{ records []store.KEKRecord }

func (r *backupRegistry) ListKEKRecords(context.Context) ([]store.KEKRecord, error) {
	return r.records, nil
}

func (r *backupRegistry) PutKEKRecord(_ context.Context, rec store.KEKRecord) error {
	return fmt.Errorf("restore does not create key-encryption keys; configure the KEK the backup was made under (%s): %w", rec.ID, store.ErrConflict)
}
