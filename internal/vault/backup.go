package vault

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/keygate/keygate/internal/store"
)

// BackupFormat names the backup file format keygate writes.
const BackupFormat = "keygate-backup-v1"

// maxBackupSize bounds what ReadBackup reads into memory.
const maxBackupSize = 1 << 30

// BackupHeader is the clear-text first line of a backup file. It holds
// nothing secret: which KEK can open the backup, and the non-secret
// parameters needed to re-derive a passphrase KEK on another machine.
type BackupHeader struct {
	Format     string            `json:"format"`
	CreatedAt  time.Time         `json:"created_at"`
	KEKID      string            `json:"kek_id"`
	KEKRecords []store.KEKRecord `json:"kek_records"`
	WrappedDEK []byte            `json:"wrapped_dek"`
}

// WriteBackup writes snap to w as an encrypted backup: a JSON header line,
// then the snapshot as JSON sealed with AES-256-GCM under a fresh data key
// wrapped by kek, with the header as associated data, so neither part can be
// altered or swapped. Vault records inside stay sealed as stored, so the
// backup is encrypted twice over.
func WriteBackup(ctx context.Context, w io.Writer, kek KEK, snap store.Snapshot, now time.Time) error {
	payload, err := json.Marshal(snap)
	if err != nil {
		return fmt.Errorf("vault: encode backup: %w", err)
	}
	defer clear(payload)
	dek := make([]byte, dekSize)
	defer clear(dek)
	if _, err := rand.Read(dek); err != nil {
		return fmt.Errorf("vault: backup data key: %w", err)
	}
	wrapped, err := kek.Wrap(ctx, dek)
	if err != nil {
		return fmt.Errorf("vault: wrap the backup's data key with KEK %s: %w", kek.ID(), err)
	}
	// The clear header carries only what opening the backup needs: the
	// passphrase KEKs' salts. Where other KEKs live (a KMS key, a key file's
	// path) stays inside, sealed with the rest.
	var pass []store.KEKRecord
	for _, r := range snap.KEKRecords {
		if r.Kind == KEKKindPassphrase {
			pass = append(pass, r)
		}
	}
	hdr, err := json.Marshal(BackupHeader{
		Format: BackupFormat, CreatedAt: now.UTC(), KEKID: kek.ID(), KEKRecords: pass, WrappedDEK: wrapped,
	})
	if err != nil {
		return fmt.Errorf("vault: encode backup header: %w", err)
	}
	aead, err := newAEAD(dek)
	if err != nil {
		return fmt.Errorf("vault: backup: %w", err)
	}
	out := make([]byte, 0, len(hdr)+1+len(payload)+gcmOverhead)
	out = append(out, hdr...)
	out = append(out, '\n')
	out = aead.Seal(out, nil, payload, hdr)
	if _, err := w.Write(out); err != nil {
		return fmt.Errorf("vault: write backup: %w", err)
	}
	return nil
}

// ReadBackupHeader reads and checks a backup's header without decrypting
// anything, and returns the rest of the file.
func ReadBackupHeader(r io.Reader) (BackupHeader, []byte, []byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxBackupSize+1))
	if err != nil {
		return BackupHeader{}, nil, nil, fmt.Errorf("vault: read backup: %w", err)
	}
	if len(data) > maxBackupSize {
		return BackupHeader{}, nil, nil, fmt.Errorf("vault: the backup is larger than %d bytes, more than any keygate backup", maxBackupSize)
	}
	hdrBytes, body, ok := bytes.Cut(data, []byte("\n"))
	var hdr BackupHeader
	if !ok || json.Unmarshal(hdrBytes, &hdr) != nil || hdr.Format == "" {
		return BackupHeader{}, nil, nil, errors.New("vault: this is not a keygate backup file (it does not start with a keygate backup header)")
	}
	if hdr.Format != BackupFormat {
		return BackupHeader{}, nil, nil, fmt.Errorf("vault: backup format %q is not one this keygate reads (%s); restore with the keygate version that wrote it: %w", hdr.Format, BackupFormat, ErrUnknownFormat)
	}
	return hdr, hdrBytes, body, nil
}

// ReadBackup decrypts a backup written by WriteBackup. kekFor opens the KEK
// the header names (the caller configures it with the header's KEK records,
// so a passphrase KEK can be re-derived). A modified, truncated or
// re-headed backup, or the wrong KEK, fails with an error; nothing is
// returned from it.
func ReadBackup(ctx context.Context, r io.Reader, kekFor func(ctx context.Context, hdr BackupHeader) (KEK, error)) (store.Snapshot, BackupHeader, error) {
	hdr, hdrBytes, body, err := ReadBackupHeader(r)
	if err != nil {
		return store.Snapshot{}, hdr, err
	}
	kek, err := kekFor(ctx, hdr)
	if err != nil {
		return store.Snapshot{}, hdr, err
	}
	if kek.ID() != hdr.KEKID {
		return store.Snapshot{}, hdr, fmt.Errorf("vault: the backup was made under KEK %s, but keygate is configured with KEK %s; restore with the key that made it: %w", hdr.KEKID, kek.ID(), ErrWrongKEK)
	}
	dek, err := kek.Unwrap(ctx, hdr.WrappedDEK)
	defer clear(dek)
	if err != nil {
		return store.Snapshot{}, hdr, fmt.Errorf("vault: the backup's data key does not unwrap with KEK %s (the backup was modified, or made under another key): %w", kek.ID(), err)
	}
	if len(dek) != dekSize || len(body) < gcmOverhead {
		return store.Snapshot{}, hdr, fmt.Errorf("vault: the backup is truncated or damaged: %w", ErrTampered)
	}
	aead, err := newAEAD(dek)
	if err != nil {
		return store.Snapshot{}, hdr, err
	}
	payload, err := aead.Open(nil, nil, body, hdrBytes)
	if err != nil {
		return store.Snapshot{}, hdr, fmt.Errorf("vault: the backup failed authentication (modified, truncated, or its header changed): %w", ErrTampered)
	}
	defer clear(payload)
	var snap store.Snapshot
	if err := json.Unmarshal(payload, &snap); err != nil {
		return store.Snapshot{}, hdr, fmt.Errorf("vault: decode backup contents: %w", err)
	}
	return snap, hdr, nil
}

// VerifySnapshot opens every vault record in snap with kek (and the KEKs
// its rotations recorded, or previous) without storing anything, so a
// restore can refuse a backup it could not use before changing the target.
func VerifySnapshot(ctx context.Context, snap store.Snapshot, kek KEK, opts ...Option) error {
	ss := newSnapshotStorage(snap)
	v := New(kek, ss, append([]Option{WithDEKCacheSize(0)}, opts...)...)
	var errs []error
	for _, sv := range snap.SecretVersions {
		pt, err := v.Open(ctx, sv)
		clear(pt)
		if err != nil {
			errs = append(errs, err)
			if len(errs) == 5 {
				break
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("vault: the backup holds records this keygate cannot open: %w", errors.Join(errs...))
	}
	return nil
}

// snapshotStorage reads vault records from a snapshot, for VerifySnapshot.
type snapshotStorage struct {
	byID map[string][]store.SecretVersion // versions in ascending order
}

func newSnapshotStorage(snap store.Snapshot) *snapshotStorage {
	s := &snapshotStorage{byID: map[string][]store.SecretVersion{}}
	for _, sv := range snap.SecretVersions { // exported in (id, version) order
		s.byID[sv.ID] = append(s.byID[sv.ID], sv)
	}
	return s
}

func (s *snapshotStorage) PutSecretVersion(context.Context, store.SecretVersion) error {
	return errors.New("vault: a backup being verified is read-only")
}

func (s *snapshotStorage) GetSecretVersion(_ context.Context, id string, version int) (store.SecretVersion, error) {
	for _, sv := range s.byID[id] {
		if sv.Version == version {
			return sv, nil
		}
	}
	return store.SecretVersion{}, store.ErrNotFound
}

func (s *snapshotStorage) LatestSecretVersion(_ context.Context, id string) (store.SecretVersion, error) {
	vs := s.byID[id]
	if len(vs) == 0 {
		return store.SecretVersion{}, store.ErrNotFound
	}
	return vs[len(vs)-1], nil
}

func (s *snapshotStorage) ListSecretVersions(_ context.Context, id string) ([]store.SecretVersion, error) {
	return s.byID[id], nil
}
