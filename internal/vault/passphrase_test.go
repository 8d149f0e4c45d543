package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/store"
)

// boundKEKs returns one KEK of each kind that keeps its key in memory.
func boundKEKs(t *testing.T) map[string]interface {
	KEK
	wrapper() *gcmWrapper
} {
	t.Helper()
	local := testKEK(t)
	pass, err := derivePassphraseKEK(randomBytes(t, 24), passphraseParams{Salt: randomBytes(t, passphraseSaltSize), Time: 1, MemoryKiB: minArgon2MemoryKiB, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]interface {
		KEK
		wrapper() *gcmWrapper
	}{"local": local, "passphrase": pass}
}

func (k *LocalKEK) wrapper() *gcmWrapper      { return k.gcm }
func (k *PassphraseKEK) wrapper() *gcmWrapper { return k.gcm }

func TestWrapBound(t *testing.T) {
	if maxGCMWraps != 1<<32 {
		t.Fatalf("the wrap bound is %d, want 2^32", uint64(maxGCMWraps))
	}
	ctx := context.Background()
	for name, k := range boundKEKs(t) {
		t.Run(name, func(t *testing.T) {
			if k.wrapper().maxWraps != maxGCMWraps {
				t.Fatalf("a new KEK allows %d wraps, want 2^32", k.wrapper().maxWraps)
			}
			k.wrapper().maxWraps = 3
			dek := randomBytes(t, dekSize)
			var last []byte
			for i := range 3 {
				w, err := k.Wrap(ctx, dek)
				if err != nil {
					t.Fatalf("wrap %d of 3: %v", i+1, err)
				}
				last = w
			}
			for range 2 {
				w, err := k.Wrap(ctx, dek)
				if err == nil || w != nil {
					t.Fatal("wrapped past the bound")
				}
				if !strings.Contains(err.Error(), "keygate vault rotate-kek") || !strings.Contains(err.Error(), k.ID()) {
					t.Fatalf("the refusal does not tell the operator to rotate: %v", err)
				}
			}
			// Existing data keys still unwrap: only new wraps are refused.
			got, err := k.Unwrap(ctx, last)
			if err != nil || !bytes.Equal(got, dek) {
				t.Fatalf("unwrap after the bound: %v", err)
			}
			// OpenKEK's probe catches a KEK at its bound.
			if err := probeKEK(ctx, k); err == nil || !strings.Contains(err.Error(), "rotate-kek") {
				t.Fatalf("probe of an exhausted KEK: %v", err)
			}
		})
	}
}

func TestPassphraseIDDiffersFromLocal(t *testing.T) {
	// The same 32 bytes used as a master key and as a derived passphrase key
	// must not share an ID (distinct labels and prefixes).
	key := randomBytes(t, MasterKeySize)
	local, err := NewLocalKEK(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := newGCMWrapper(key, passphraseIDPrefix, passphraseIDLabel, "passphrase")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimPrefix(local.ID(), "local:") == strings.TrimPrefix(gcm.id, passphraseIDPrefix) {
		t.Fatal("local and passphrase KEK IDs share their derived part")
	}
}

type listRegistry []store.KEKRecord

func (r listRegistry) ListKEKRecords(context.Context) ([]store.KEKRecord, error) { return r, nil }
func (r listRegistry) PutKEKRecord(context.Context, store.KEKRecord) error {
	return errors.New("read-only registry")
}

func TestPassphraseWeakRecordNotUsed(t *testing.T) {
	// A record whose cost is below the floor is never used, even when the
	// passphrase derives its ID: keygate reports it instead.
	pass := randomBytes(t, 24)
	weak := passphraseParams{Salt: randomBytes(t, passphraseSaltSize), Time: 1, MemoryKiB: 1024, Threads: 1}
	k, err := derivePassphraseKEK(pass, weak)
	if err != nil {
		t.Fatal(err)
	}
	params, _ := json.Marshal(weak)
	reg := listRegistry{{ID: k.ID(), Kind: KEKKindPassphrase, Params: params}}
	_, _, err = openPassphraseKEK(context.Background(), pass, passphraseSource{check: "the test passphrase"}, KEKOptions{Registry: reg})
	if err == nil || !strings.Contains(err.Error(), "invalid parameters") || !strings.Contains(err.Error(), "memory 1024 KiB") {
		t.Fatalf("a weak record: %v", err)
	}
}

func TestPassphraseFirstRecordWins(t *testing.T) {
	// Two records for the same passphrase (two keygates set up at once):
	// every opener settles on the earliest.
	pass := randomBytes(t, 24)
	var recs listRegistry
	base := time.Now().UTC()
	for i := range 2 {
		p := passphraseParams{Salt: randomBytes(t, passphraseSaltSize), Time: 1, MemoryKiB: minArgon2MemoryKiB, Threads: 1}
		k, err := derivePassphraseKEK(pass, p)
		if err != nil {
			t.Fatal(err)
		}
		params, _ := json.Marshal(p)
		recs = append(recs, store.KEKRecord{ID: k.ID(), Kind: KEKKindPassphrase, Params: params, CreatedAt: base.Add(-time.Duration(i) * time.Minute)})
	}
	k, _, err := openPassphraseKEK(context.Background(), pass, passphraseSource{}, KEKOptions{Registry: recs})
	if err != nil {
		t.Fatal(err)
	}
	if k.ID() != recs[1].ID {
		t.Fatalf("opened %s, want the earliest record %s", k.ID(), recs[1].ID)
	}
}
