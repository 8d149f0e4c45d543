// Package kektest is the conformance suite for vault.KEK: every kind of
// key-encryption key keygate can run with (master key file, passphrase, KMS)
// passes the same tests, so the vault can rely on one contract.
package kektest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/keygate/keygate/internal/vault"
)

// dekSize is the size of the data keys the vault wraps.
const dekSize = 32

// Run tests a KEK implementation. open returns the KEK under test; reopen
// returns the same key opened again (a new instance, as after a restart);
// other returns a KEK with a different, independent key of the same kind.
// Each is called with the test that uses the KEK, so cleanups may be
// registered on it.
func Run(t *testing.T, open, reopen, other func(t *testing.T) vault.KEK) {
	t.Helper()
	kek := open(t)

	t.Run("RoundTrip", func(t *testing.T) {
		ctx := context.Background()
		for range 4 {
			dek := randomDEK(t)
			w := wrap(t, kek, dek)
			if bytes.Contains(w, dek) {
				t.Fatal("the wrapped data key contains the data key in the clear")
			}
			got, err := kek.Unwrap(ctx, w)
			if err != nil {
				t.Fatalf("Unwrap of a fresh wrap: %v", err)
			}
			if !bytes.Equal(got, dek) {
				t.Fatal("Unwrap returned different bytes from those wrapped")
			}
		}
	})

	t.Run("WrapIsRandomized", func(t *testing.T) {
		dek := randomDEK(t)
		a, b := wrap(t, kek, dek), wrap(t, kek, dek)
		if bytes.Equal(a, b) {
			t.Fatal("two wraps of the same data key are identical; each wrap needs a fresh random nonce")
		}
	})

	t.Run("ID", func(t *testing.T) {
		id := kek.ID()
		if id == "" {
			t.Fatal("ID is empty")
		}
		if again := kek.ID(); again != id {
			t.Fatalf("ID changed between calls: %q then %q", id, again)
		}
		if r := reopen(t).ID(); r != id {
			t.Fatalf("the reopened KEK has ID %q, want %q", r, id)
		}
		if o := other(t).ID(); o == id {
			t.Fatalf("a KEK with a different key has the same ID %q", id)
		}
		dek := randomDEK(t)
		w := wrap(t, kek, dek)
		got := unwrap(t, kek, w)
		for _, b := range [][]byte{dek, w, got} {
			for _, enc := range []string{string(b), hex.EncodeToString(b), base64.StdEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b)} {
				if strings.Contains(id, enc) || strings.Contains(id, enc[:16]) {
					t.Fatalf("ID %q contains key material", id)
				}
			}
		}
	})

	t.Run("ReopenedUnwraps", func(t *testing.T) {
		ctx := context.Background()
		r := reopen(t)
		dek := randomDEK(t)
		got, err := r.Unwrap(ctx, wrap(t, kek, dek))
		if err != nil || !bytes.Equal(got, dek) {
			t.Fatalf("the reopened KEK does not unwrap what the first wrapped: equal=%v err=%v", bytes.Equal(got, dek), err)
		}
		got, err = kek.Unwrap(ctx, wrap(t, r, dek))
		if err != nil || !bytes.Equal(got, dek) {
			t.Fatalf("the first KEK does not unwrap what the reopened one wrapped: equal=%v err=%v", bytes.Equal(got, dek), err)
		}
	})

	t.Run("BitFlipsFail", func(t *testing.T) {
		dek := randomDEK(t)
		w := wrap(t, kek, dek)
		for _, i := range []int{0, 1, len(w) / 2, len(w) - 2, len(w) - 1} {
			for _, bit := range []byte{0x01, 0x80} {
				c := bytes.Clone(w)
				c[i] ^= bit
				mustFail(t, kek, c, dek, "wrapped data key with a bit flipped at byte %d of %d", i, len(w))
			}
		}
	})

	t.Run("TruncatedFails", func(t *testing.T) {
		dek := randomDEK(t)
		w := wrap(t, kek, dek)
		for _, n := range []int{0, 1, len(w) / 2, len(w) - 1} {
			mustFail(t, kek, bytes.Clone(w[:n]), dek, "wrapped data key truncated to %d of %d bytes", n, len(w))
		}
		mustFail(t, kek, nil, dek, "nil wrapped data key")
		mustFail(t, kek, append(bytes.Clone(w), 0), dek, "wrapped data key with a byte appended")
	})

	t.Run("GarbageFails", func(t *testing.T) {
		dek := randomDEK(t)
		for _, n := range []int{16, 28, 60, 61, 256} {
			g := make([]byte, n)
			if _, err := rand.Read(g); err != nil {
				t.Fatal(err)
			}
			mustFail(t, kek, g, dek, "%d random bytes", n)
		}
		mustFail(t, kek, make([]byte, 60), dek, "60 zero bytes")
	})

	t.Run("OtherKeyFails", func(t *testing.T) {
		o := other(t)
		dek := randomDEK(t)
		mustFail(t, o, wrap(t, kek, dek), dek, "a data key wrapped by another KEK")
		mustFail(t, kek, wrap(t, o, dek), dek, "a data key wrapped by another KEK")
	})

	t.Run("InputsNotRetained", func(t *testing.T) {
		ctx := context.Background()
		dek := randomDEK(t)
		want := bytes.Clone(dek)
		w := wrap(t, kek, dek)
		clear(dek) // the vault clears data keys after wrapping them
		wantWrapped := bytes.Clone(w)
		got := unwrap(t, kek, w)
		if !bytes.Equal(got, want) {
			t.Fatal("changing the data key after Wrap changed what Unwrap returns")
		}
		if !bytes.Equal(w, wantWrapped) {
			t.Fatal("Unwrap modified its input")
		}
		clear(got)
		again, err := kek.Unwrap(ctx, w)
		if err != nil || !bytes.Equal(again, want) {
			t.Fatalf("clearing an unwrapped data key broke the next Unwrap: err=%v", err)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		ctx := context.Background()
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 16 {
					dek := make([]byte, dekSize)
					if _, err := rand.Read(dek); err != nil {
						t.Error(err)
						return
					}
					w, err := kek.Wrap(ctx, dek)
					if err != nil {
						t.Errorf("goroutine %d: Wrap %d: %v", g, i, err)
						return
					}
					got, err := kek.Unwrap(ctx, w)
					if err != nil || !bytes.Equal(got, dek) {
						t.Errorf("goroutine %d: Unwrap %d: equal=%v err=%v", g, i, bytes.Equal(got, dek), err)
						return
					}
				}
			})
		}
		wg.Wait()
	})

	t.Run("CancelledContext", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		dek := randomDEK(t)
		good := wrap(t, kek, dek)
		// A KEK may refuse to work under a cancelled context or ignore it; it
		// must not panic, and what it returns must still be right.
		w, err := kek.Wrap(ctx, dek)
		if err == nil {
			got, err := kek.Unwrap(context.Background(), w)
			if err != nil || !bytes.Equal(got, dek) {
				t.Fatalf("a wrap made under a cancelled context does not unwrap: err=%v", err)
			}
		}
		got, err := kek.Unwrap(ctx, good)
		if err == nil && !bytes.Equal(got, dek) {
			t.Fatal("Unwrap under a cancelled context returned different bytes")
		}
		if _, err := kek.Unwrap(ctx, good[:len(good)-1]); err == nil {
			t.Fatal("Unwrap under a cancelled context accepted a truncated wrapped key")
		}
	})
}

// mustFail checks that Unwrap refuses input: an error wrapping
// vault.ErrTampered, no data, and no key material in the error text.
func mustFail(t *testing.T, kek vault.KEK, input, dek []byte, format string, args ...any) {
	t.Helper()
	got, err := kek.Unwrap(context.Background(), input)
	if err == nil {
		t.Fatalf("Unwrap accepted "+format, args...)
	}
	if got != nil {
		t.Fatalf("Unwrap returned data with its error for "+format, args...)
	}
	if !errors.Is(err, vault.ErrTampered) {
		t.Fatalf("Unwrap of "+format+": error does not wrap vault.ErrTampered: %v", append(args, err)...)
	}
	msg := err.Error()
	for _, b := range [][]byte{dek, input} {
		if len(b) >= 8 && (strings.Contains(msg, hex.EncodeToString(b[:8])) || strings.Contains(msg, base64.StdEncoding.EncodeToString(b[:6]))) {
			t.Fatalf("Unwrap error for "+format+" quotes key material: %v", append(args, err)...)
		}
	}
}

func randomDEK(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, dekSize)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func wrap(t *testing.T, kek vault.KEK, dek []byte) []byte {
	t.Helper()
	w, err := kek.Wrap(context.Background(), dek)
	if err != nil {
		t.Fatalf("Wrap: %v", err)
	}
	if len(w) == 0 {
		t.Fatal("Wrap returned nothing")
	}
	return w
}

func unwrap(t *testing.T, kek vault.KEK, w []byte) []byte {
	t.Helper()
	got, err := kek.Unwrap(context.Background(), w)
	if err != nil {
		t.Fatalf("Unwrap: %v", err)
	}
	return got
}
