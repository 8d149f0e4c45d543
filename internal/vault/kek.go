package vault

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
)

// KEK is a key-encryption key: it wraps and unwraps the per-version data keys
// that seal vault records. The master key file (LocalKEK) is one
// implementation; a cloud KMS is another. Implementations must be safe for
// concurrent use.
type KEK interface {
	// ID names the key without revealing it. It is stored with every record
	// so keygate can tell which KEK a record needs.
	ID() string
	// Wrap encrypts a data key.
	Wrap(ctx context.Context, dek []byte) ([]byte, error)
	// Unwrap decrypts a data key produced by Wrap. It fails, never returning
	// garbage, when the input was modified or wrapped by a different key.
	Unwrap(ctx context.Context, wrapped []byte) ([]byte, error)
}

// MasterKeySize is the length in bytes of a LocalKEK master key (AES-256).
const MasterKeySize = 32

const (
	keyFileHeader = "keygate-master-key-v1:"
	kekIDLabel    = "keygate kek id"
	wrapAD        = "keygate dek wrap v1"
	maxKeyFile    = 4096
)

// LocalKEK is a KEK held in memory, loaded from keygate's master key file.
// It wraps data keys with AES-256-GCM under a random 96-bit nonce.
type LocalKEK struct {
	gcm *gcmWrapper
}

// NewLocalKEK returns a LocalKEK for a 32-byte master key. The key bytes are
// not retained; the caller may clear its copy afterwards.
func NewLocalKEK(key []byte) (*LocalKEK, error) {
	if len(key) != MasterKeySize {
		return nil, fmt.Errorf("vault: a master key must be %d bytes, got %d", MasterKeySize, len(key))
	}
	gcm, err := newGCMWrapper(key, "local:", kekIDLabel, "master key")
	if err != nil {
		return nil, err
	}
	return &LocalKEK{gcm: gcm}, nil
}

// ID returns "local:" followed by 16 hex characters derived from the master
// key by HMAC-SHA256. The same key always has the same ID; the ID reveals
// nothing about the key.
func (k *LocalKEK) ID() string { return k.gcm.id }

// Wrap encrypts a data key: the output is nonce || ciphertext || tag. It
// refuses once this process has wrapped 2^32 data keys under the master key.
func (k *LocalKEK) Wrap(_ context.Context, dek []byte) ([]byte, error) {
	return k.gcm.wrap(dek)
}

// Unwrap decrypts a data key produced by Wrap under the same master key. The
// error wraps ErrTampered when the input is truncated, modified, or was
// wrapped by another master key.
func (k *LocalKEK) Unwrap(_ context.Context, wrapped []byte) ([]byte, error) {
	return k.gcm.unwrap(wrapped)
}

// maxGCMWraps is how many data keys one AES-GCM wrapping key may wrap with
// random 96-bit nonces: NIST SP 800-38D section 8.3 caps random-nonce
// invocations of one key at 2^32.
const maxGCMWraps = 1 << 32

// gcmWrapper is the AES-256-GCM data key wrapping shared by every KEK whose
// key keygate holds in memory (the master key file, a passphrase).
type gcmWrapper struct {
	id       string
	keyName  string // what the key is, for error messages: "master key", "passphrase"
	aead     cipher.AEAD
	wraps    atomic.Uint64
	maxWraps uint64
}

// newGCMWrapper returns a wrapper for a 32-byte key whose ID is idPrefix
// followed by 16 hex characters of HMAC-SHA256(key, idLabel). The key bytes
// are not retained.
func newGCMWrapper(key []byte, idPrefix, idLabel, keyName string) (*gcmWrapper, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("vault: %s: %w", keyName, err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("vault: %s: %w", keyName, err)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(idLabel))
	sum := m.Sum(nil)
	return &gcmWrapper{
		id:       idPrefix + hex.EncodeToString(sum[:8]),
		keyName:  keyName,
		aead:     aead,
		maxWraps: maxGCMWraps,
	}, nil
}

func (w *gcmWrapper) wrap(dek []byte) ([]byte, error) {
	if n := w.wraps.Add(1); n > w.maxWraps {
		return nil, fmt.Errorf("vault: KEK %s has wrapped %d data keys in this process, the most one AES-GCM key may safely wrap (NIST SP 800-38D); keygate refuses to wrap more under it: rotate to a new KEK with `keygate vault rotate-kek`", w.id, w.maxWraps)
	}
	return w.aead.Seal(nil, nil, dek, []byte(wrapAD)), nil
}

func (w *gcmWrapper) unwrap(wrapped []byte) ([]byte, error) {
	if len(wrapped) < w.aead.Overhead() {
		return nil, fmt.Errorf("vault: KEK %s: wrapped data key is truncated (%d bytes): %w", w.id, len(wrapped), ErrTampered)
	}
	dek, err := w.aead.Open(nil, nil, wrapped, []byte(wrapAD))
	if err != nil {
		return nil, fmt.Errorf("vault: KEK %s: wrapped data key failed authentication (modified, or wrapped by another %s): %w", w.id, w.keyName, ErrTampered)
	}
	return dek, nil
}

// LoadOrCreateKeyFile loads the master key at path, creating it when it does
// not exist: the parent directory with mode 0700, the file with mode 0600
// holding 32 random bytes as one line "keygate-master-key-v1:<base64>".
// Creation is exclusive: when several processes start at once, exactly one
// key is written and all of them load it. created reports whether this call
// wrote the file; keygate's operator should back that file up, since without
// it the vault cannot be opened.
//
// Loading refuses a file that group or other users can read or write, and a
// file that is not in keygate's format.
func LoadOrCreateKeyFile(path string) (kek *LocalKEK, created bool, err error) {
	if path == "" {
		return nil, false, errors.New("vault: no master key path configured")
	}
	kek, err = loadKeyFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return kek, false, err
	}
	created, err = createKeyFile(path)
	if err != nil {
		return nil, false, err
	}
	// Load what is on disk now: this call's key, or the key of a process that
	// created the file first.
	kek, err = loadKeyFile(path)
	if err != nil {
		return nil, false, err
	}
	return kek, created, nil
}

func loadKeyFile(path string) (*LocalKEK, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("vault: open master key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("vault: master key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("vault: master key file %s is not a regular file; point keygate at the key file itself", path)
	}
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return nil, fmt.Errorf("vault: master key file %s is accessible to other users (mode %04o); restrict it with: chmod 600 %s", path, perm, path)
	}
	buf, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	defer clear(buf)
	if err != nil {
		return nil, fmt.Errorf("vault: read master key file %s: %w", path, err)
	}
	key, err := parseKeyFile(buf)
	if err != nil {
		return nil, fmt.Errorf("vault: master key file %s %s; restore the file from your backup (a new key cannot open existing secrets)", path, err)
	}
	defer clear(key)
	return NewLocalKEK(key)
}

// parseKeyFile decodes a master key file. Its errors describe the problem
// without quoting the file's content.
func parseKeyFile(buf []byte) ([]byte, error) {
	if len(buf) > maxKeyFile {
		return nil, errors.New("is too large to be a keygate master key")
	}
	body, ok := bytes.CutPrefix(bytes.TrimRight(buf, " \t\r\n"), []byte(keyFileHeader))
	if !ok {
		return nil, fmt.Errorf("is not in keygate's format (expected one line %q followed by base64)", keyFileHeader)
	}
	key := make([]byte, base64.StdEncoding.DecodedLen(len(body)))
	n, err := base64.StdEncoding.Strict().Decode(key, body)
	if err != nil || n != MasterKeySize {
		clear(key)
		if err != nil {
			return nil, errors.New("holds an invalid base64 key")
		}
		return nil, fmt.Errorf("holds a %d-byte key; keygate master keys are %d bytes", n, MasterKeySize)
	}
	return key[:n], nil
}

// createKeyFile writes a new master key at path unless a file is already
// there. The key is written to a private temporary file and then linked into
// place, so no process ever reads a partially written key.
func createKeyFile(path string) (bool, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, fmt.Errorf("vault: create directory for the master key: %w", err)
	}
	key := make([]byte, MasterKeySize)
	defer clear(key)
	if _, err := rand.Read(key); err != nil {
		return false, fmt.Errorf("vault: generate master key: %w", err)
	}
	content := make([]byte, 0, len(keyFileHeader)+base64.StdEncoding.EncodedLen(len(key))+1)
	content = append(content, keyFileHeader...)
	content = base64.StdEncoding.AppendEncode(content, key)
	content = append(content, '\n')
	defer clear(content)

	created, err := linkNewFile(dir, path, content)
	if err != nil {
		return false, err
	}
	if created {
		syncDir(dir)
	}
	return created, nil
}

func linkNewFile(dir, path string, content []byte) (bool, error) {
	tmp, err := os.CreateTemp(dir, ".keygate-master-key-*.tmp") // mode 0600, O_EXCL
	if err != nil {
		return false, fmt.Errorf("vault: create master key file in %s: %w", dir, err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	if err := writeAndSync(tmp, content); err != nil {
		return false, fmt.Errorf("vault: write master key file: %w", err)
	}
	err = os.Link(tmpName, path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrExist):
		return false, nil
	}
	// The file system does not support hard links: create the file exclusively.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("vault: create master key file: %w", err)
	}
	if err := writeAndSync(f, content); err != nil {
		os.Remove(path)
		return false, fmt.Errorf("vault: write master key file: %w", err)
	}
	return true, nil
}

func writeAndSync(f *os.File, content []byte) error {
	_, err := f.Write(content)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir makes a new directory entry durable where the platform allows it.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
