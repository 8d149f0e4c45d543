package vault

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func TestNewLocalKEK(t *testing.T) {
	key := randomBytes(t, MasterKeySize)
	a, err := NewLocalKEK(key)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewLocalKEK(bytes.Clone(key))
	if a.ID() != b.ID() {
		t.Fatal("the same key gave two KEK ids")
	}
	if !strings.HasPrefix(a.ID(), "local:") || len(a.ID()) != len("local:")+16 {
		t.Fatalf("KEK id %q is not local:<16 hex>", a.ID())
	}
	c := testKEK(t)
	if c.ID() == a.ID() {
		t.Fatal("two random keys share a KEK id")
	}
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := NewLocalKEK(make([]byte, n)); err == nil {
			t.Fatalf("accepted a %d-byte master key", n)
		}
	}
}

func TestLocalKEKWrap(t *testing.T) {
	ctx := context.Background()
	k := testKEK(t)
	dek := randomBytes(t, 32)
	w, err := k.Wrap(ctx, dek)
	if err != nil {
		t.Fatal(err)
	}
	if len(w) != 12+32+16 {
		t.Fatalf("wrapped DEK is %d bytes, want nonce||ct||tag = 60", len(w))
	}
	got, err := k.Unwrap(ctx, w)
	if err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("Unwrap: equal=%v err=%v", bytes.Equal(got, dek), err)
	}
	if _, err := testKEK(t).Unwrap(ctx, w); !errors.Is(err, ErrTampered) {
		t.Fatalf("Unwrap under another key: err = %v, want ErrTampered", err)
	}
	for i := range w {
		if _, err := k.Unwrap(ctx, flip(w, i)); !errors.Is(err, ErrTampered) {
			t.Fatalf("Unwrap with byte %d flipped: err = %v", i, err)
		}
	}
}

func TestKeyFileCreateAndReload(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "nested", "dir", "master.key")
	k1, created, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !created {
		t.Fatal("created = false for a new file")
	}
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("key file mode %04o, want 0600", fi.Mode().Perm())
		}
		di, _ := os.Stat(filepath.Dir(path))
		if di.Mode().Perm() != 0o700 {
			t.Fatalf("key directory mode %04o, want 0700", di.Mode().Perm())
		}
	}
	content, _ := os.ReadFile(path)
	if !bytes.HasPrefix(content, []byte("keygate-master-key-v1:")) {
		t.Fatal("key file does not start with its format line")
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".keygate-master-key-*"))
	if len(leftovers) != 0 {
		t.Fatalf("temporary files left behind: %v", leftovers)
	}

	sv, err := SealVersion(ctx, k1, "provider/a", 1, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	k2, created, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if created {
		t.Fatal("created = true when reloading")
	}
	if k2.ID() != k1.ID() {
		t.Fatalf("reloaded KEK id %s, want %s", k2.ID(), k1.ID())
	}
	pt, err := OpenVersion(ctx, k2, sv)
	if err != nil || string(pt) != "hello" {
		t.Fatalf("reloaded key does not open an old record: %v", err)
	}
}

func writeKeyFile(t *testing.T, content []byte, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(path, content, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // umask-independent
		t.Fatal(err)
	}
	return path
}

func TestKeyFileRefusesLoosePermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("file modes do not apply on Windows")
	}
	path := filepath.Join(t.TempDir(), "master.key")
	if _, _, err := LoadOrCreateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o602} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, _, err := LoadOrCreateKeyFile(path)
		if err == nil {
			t.Fatalf("mode %04o accepted", mode)
		}
		if !strings.Contains(err.Error(), "chmod 600 "+path) {
			t.Fatalf("mode %04o: error does not say how to fix it: %v", mode, err)
		}
	}
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateKeyFile(path); err != nil {
		t.Fatalf("read-only owner file refused: %v", err)
	}
}

func TestKeyFileRefusesBadContent(t *testing.T) {
	good := filepath.Join(t.TempDir(), "good.key")
	if _, _, err := LoadOrCreateKeyFile(good); err != nil {
		t.Fatal(err)
	}
	valid, _ := os.ReadFile(good)
	header := "keygate-master-key-v1:"
	body := strings.TrimSpace(string(valid))[len(header):]
	for _, tc := range []struct {
		name    string
		content string
	}{
		{"empty", ""},
		{"no header", body + "\n"},
		{"other header", "keygate-master-key-v2:" + body + "\n"},
		{"bad base64", header + "!!" + body[2:] + "\n"},
		{"short key", header + body[:20] + "\n"},
		{"long key", header + body[:len(body)-1] + body + "\n"},
		{"flipped character", header + string(body[0]^1) + body[1:] + "\n"},
		{"trailing garbage", header + body + "\nextra\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeKeyFile(t, []byte(tc.content), 0o600)
			k, created, err := LoadOrCreateKeyFile(path)
			if tc.name == "flipped character" {
				// Still a well-formed key, just a different one: it loads,
				// and its id differs, which the vault reports as ErrWrongKEK.
				if err == nil {
					orig, _, _ := LoadOrCreateKeyFile(good)
					if k.ID() == orig.ID() {
						t.Fatal("a different key has the same id")
					}
					return
				}
			}
			if err == nil {
				t.Fatal("bad key file accepted")
			}
			if created {
				t.Fatal("created = true for an existing file")
			}
			if len(body) > 8 && strings.Contains(err.Error(), body[:8]) {
				t.Fatalf("error quotes the key file: %v", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error does not name the file: %v", err)
			}
			after, _ := os.ReadFile(path)
			if string(after) != tc.content {
				t.Fatal("a bad key file was overwritten")
			}
		})
	}
}

func TestKeyFileConcurrentCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	const n = 16
	ids := make([]string, n)
	created := make([]bool, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			k, c, err := LoadOrCreateKeyFile(path)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i], created[i] = k.ID(), c
		})
	}
	close(start)
	wg.Wait()
	creators := 0
	for i := range n {
		if ids[i] != ids[0] {
			t.Fatalf("caller %d loaded KEK %s, caller 0 loaded %s", i, ids[i], ids[0])
		}
		if created[i] {
			creators++
		}
	}
	if creators != 1 {
		t.Fatalf("%d callers report creating the key, want exactly 1", creators)
	}
}

func TestKeyFileRefusesDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateKeyFile(dir); err == nil {
		t.Fatal("a directory was accepted as a key file")
	}
	if _, _, err := LoadOrCreateKeyFile(""); err == nil {
		t.Fatal("an empty path was accepted")
	}
}
