package vault

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/keygate/keygate/internal/store"
)

func testSnapshot(t testing.TB, kek KEK) store.Snapshot {
	sv, err := SealVersion(context.Background(), kek, "secret/a", 1, []byte("backup-test-value"))
	if err != nil {
		t.Fatal(err)
	}
	return store.Snapshot{
		SecretVersions: []store.SecretVersion{sv},
		Secrets:        []store.SecretMeta{{Name: "app/a", RecordID: "secret/a"}},
		KEKRecords: []store.KEKRecord{
			{ID: "passphrase:00", Kind: "passphrase", Params: []byte(`{"salt":"x"}`)},
			{ID: "kms:01", Kind: "kms", Params: []byte(`{"url":"awskms:///alias/backup-test-infra"}`)},
		},
	}
}

func writeTestBackup(t testing.TB, kek KEK, snap store.Snapshot) []byte {
	var buf bytes.Buffer
	if err := WriteBackup(context.Background(), &buf, kek, snap, time.Now()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readWith(kek KEK, data []byte) (store.Snapshot, error) {
	snap, _, err := ReadBackup(context.Background(), bytes.NewReader(data),
		func(context.Context, BackupHeader) (KEK, error) { return kek, nil })
	return snap, err
}

func TestBackupRoundTripAndTampering(t *testing.T) {
	kek := testKEK(t)
	snap := testSnapshot(t, kek)
	data := writeTestBackup(t, kek, snap)
	if bytes.Contains(data, []byte("backup-test-value")) || bytes.Contains(data, []byte("app/a")) {
		t.Fatal("the backup holds a value or a name in clear")
	}
	// The clear header names only passphrase KEKs (their salts are needed
	// to open it); where a KMS key lives stays sealed inside.
	if bytes.Contains(data, []byte("backup-test-infra")) {
		t.Fatal("the backup's clear header holds a KMS KEK's URL")
	}
	got, err := readWith(kek, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.KEKRecords) != 2 {
		t.Fatalf("the sealed snapshot lost KEK records: %+v", got.KEKRecords)
	}
	if len(got.SecretVersions) != 1 || got.Secrets[0].Name != "app/a" || !bytes.Equal(got.SecretVersions[0].Ciphertext, snap.SecretVersions[0].Ciphertext) {
		t.Fatalf("restored snapshot differs: %+v", got)
	}
	if err := VerifySnapshot(context.Background(), got, kek); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if err := VerifySnapshot(context.Background(), got, testKEK(t)); !errors.Is(err, ErrWrongKEK) {
		t.Fatalf("verify with another KEK: %v", err)
	}

	hdrEnd := bytes.IndexByte(data, '\n')
	flip := func(i int) []byte {
		d := bytes.Clone(data)
		d[i] ^= 1
		return d
	}
	for name, bad := range map[string][]byte{
		"a flipped body bit":         flip(len(data) - 1),
		"a flipped body bit (start)": flip(hdrEnd + 1),
		"a changed header":           bytes.Replace(data, []byte(`"created_at":"`), []byte(`"created_at" :"`), 1),
		"truncated":                  data[:len(data)-5],
		"header only":                data[:hdrEnd+1],
		"not a backup":               []byte("hello\nworld"),
		"empty":                      nil,
	} {
		if _, err := readWith(kek, bad); err == nil {
			t.Errorf("%s: the backup opened", name)
		}
	}
	if _, err := readWith(testKEK(t), data); !errors.Is(err, ErrWrongKEK) {
		t.Errorf("another KEK: err = %v, want ErrWrongKEK", err)
	}
	// A header swapped from another backup under the same KEK does not fit.
	other := writeTestBackup(t, kek, snap)
	swapped := append(append([]byte(nil), other[:bytes.IndexByte(other, '\n')+1]...), data[hdrEnd+1:]...)
	if _, err := readWith(kek, swapped); !errors.Is(err, ErrTampered) {
		t.Errorf("swapped header: err = %v, want ErrTampered", err)
	}
}

// FuzzReadBackup hammers the backup decrypt path: whatever the input, it
// returns an error or the exact snapshot that was written, never a panic.
func FuzzReadBackup(f *testing.F) {
	kek := testKEK(f)
	data := writeTestBackup(f, kek, testSnapshot(f, kek))
	f.Add(data)
	f.Add([]byte(`{"format":"keygate-backup-v1"}` + "\n"))
	f.Add([]byte("\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		snap, err := readWith(kek, in)
		if err == nil && !bytes.Equal(in, data) {
			// Only a byte-identical backup can authenticate.
			t.Fatalf("a modified backup opened: %d versions", len(snap.SecretVersions))
		}
	})
}
