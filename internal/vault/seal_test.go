package vault

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/keygate/keygate/internal/store"
)

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSealOpenRoundTrip(t *testing.T) {
	ctx := context.Background()
	kek := testKEK(t)
	for _, tc := range []struct {
		name      string
		id        string
		version   int
		plaintext []byte
	}{
		{"empty", "provider/empty", 1, []byte{}},
		{"short", "provider/openai", 1, []byte(rand.Text())},
		{"binary", "system/key-pepper", 7, randomBytes(t, 32)},
		{"large", "provider/big", 1 << 20, randomBytes(t, 64<<10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sv, err := SealVersion(ctx, kek, tc.id, tc.version, tc.plaintext)
			if err != nil {
				t.Fatal(err)
			}
			if sv.ID != tc.id || sv.Version != tc.version || sv.Format != FormatV1 || sv.KEKID != kek.ID() {
				t.Fatalf("sealed header = (%q, %d, %d, %q)", sv.ID, sv.Version, sv.Format, sv.KEKID)
			}
			if want := len(tc.plaintext) + gcmOverhead; len(sv.Ciphertext) != want {
				t.Fatalf("ciphertext is %d bytes, want %d", len(sv.Ciphertext), want)
			}
			if len(tc.plaintext) >= 16 && bytes.Contains(sv.Ciphertext, tc.plaintext[:16]) {
				t.Fatal("ciphertext contains the plaintext")
			}
			got, err := OpenVersion(ctx, kek, sv)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.plaintext) {
				t.Fatal("opened plaintext differs from the sealed one")
			}
		})
	}
}

func TestSealUsesFreshKeys(t *testing.T) {
	ctx := context.Background()
	kek := testKEK(t)
	pt := []byte(rand.Text())
	a, _ := SealVersion(ctx, kek, "provider/a", 1, pt)
	b, _ := SealVersion(ctx, kek, "provider/a", 1, pt)
	if bytes.Equal(a.WrappedDEK, b.WrappedDEK) || bytes.Equal(a.Ciphertext, b.Ciphertext) {
		t.Fatal("two seals of the same plaintext share a data key or ciphertext")
	}
}

func TestSealRejectsBadInput(t *testing.T) {
	ctx := context.Background()
	kek := testKEK(t)
	if _, err := SealVersion(ctx, kek, "", 1, nil); err == nil {
		t.Fatal("sealed a record with an empty id")
	}
	if _, err := SealVersion(ctx, kek, "provider/a", 0, nil); err == nil {
		t.Fatal("sealed version 0")
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x01
	return c
}

func TestOpenVersionRejectsTampering(t *testing.T) {
	ctx := context.Background()
	kek := testKEK(t)
	plaintext := []byte(rand.Text())
	orig, err := SealVersion(ctx, kek, "provider/a", 2, plaintext)
	if err != nil {
		t.Fatal(err)
	}
	ctLen, wLen := len(orig.Ciphertext), len(orig.WrappedDEK)
	for _, tc := range []struct {
		name   string
		mutate func(*store.SecretVersion)
		kek    KEK
		want   error
	}{
		{"nonce bit", func(sv *store.SecretVersion) { sv.Ciphertext = flip(sv.Ciphertext, 3) }, nil, ErrTampered},
		{"body bit", func(sv *store.SecretVersion) { sv.Ciphertext = flip(sv.Ciphertext, 12) }, nil, ErrTampered},
		{"tag bit", func(sv *store.SecretVersion) { sv.Ciphertext = flip(sv.Ciphertext, ctLen-1) }, nil, ErrTampered},
		{"wrapped DEK nonce bit", func(sv *store.SecretVersion) { sv.WrappedDEK = flip(sv.WrappedDEK, 0) }, nil, ErrTampered},
		{"wrapped DEK body bit", func(sv *store.SecretVersion) { sv.WrappedDEK = flip(sv.WrappedDEK, 20) }, nil, ErrTampered},
		{"wrapped DEK tag bit", func(sv *store.SecretVersion) { sv.WrappedDEK = flip(sv.WrappedDEK, wLen-1) }, nil, ErrTampered},
		{"truncated by one", func(sv *store.SecretVersion) { sv.Ciphertext = sv.Ciphertext[:ctLen-1] }, nil, ErrTampered},
		{"truncated to nonce", func(sv *store.SecretVersion) { sv.Ciphertext = sv.Ciphertext[:12] }, nil, ErrTampered},
		{"empty ciphertext", func(sv *store.SecretVersion) { sv.Ciphertext = nil }, nil, ErrTampered},
		{"extended", func(sv *store.SecretVersion) { sv.Ciphertext = append(bytes.Clone(sv.Ciphertext), 0) }, nil, ErrTampered},
		{"truncated wrapped DEK", func(sv *store.SecretVersion) { sv.WrappedDEK = sv.WrappedDEK[:wLen-1] }, nil, ErrTampered},
		{"empty wrapped DEK", func(sv *store.SecretVersion) { sv.WrappedDEK = nil }, nil, ErrTampered},
		{"other version", func(sv *store.SecretVersion) { sv.Version = 3 }, nil, ErrTampered},
		{"version zero", func(sv *store.SecretVersion) { sv.Version = 0 }, nil, ErrTampered},
		{"other id", func(sv *store.SecretVersion) { sv.ID = "provider/b" }, nil, ErrTampered},
		{"empty id", func(sv *store.SecretVersion) { sv.ID = "" }, nil, ErrTampered},
		{"unknown format", func(sv *store.SecretVersion) { sv.Format = 2 }, nil, ErrUnknownFormat},
		{"format zero", func(sv *store.SecretVersion) { sv.Format = 0 }, nil, ErrUnknownFormat},
		{"another KEK", func(*store.SecretVersion) {}, testKEK(t), ErrWrongKEK},
		{"KEK id relabelled", func(sv *store.SecretVersion) { sv.KEKID = "local:0000000000000000" }, nil, ErrWrongKEK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sv := orig
			tc.mutate(&sv)
			k := tc.kek
			if k == nil {
				k = kek
			}
			got, err := OpenVersion(ctx, k, sv)
			if err == nil {
				t.Fatal("tampered record opened")
			}
			if got != nil {
				t.Fatal("plaintext returned alongside an error")
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, "record") || !strings.Contains(msg, "version") {
				t.Fatalf("error does not name the record and version: %s", msg)
			}
			if strings.Contains(msg, string(plaintext)) {
				t.Fatalf("error contains the plaintext: %s", msg)
			}
		})
	}
	// Opening under another KEK relabelled to look like the right one still fails.
	other := testKEK(t)
	sv := orig
	sv.KEKID = other.ID()
	if _, err := OpenVersion(ctx, other, sv); !errors.Is(err, ErrTampered) {
		t.Fatalf("relabelled record under another KEK: err = %v, want ErrTampered", err)
	}
	// The untouched record still opens.
	if _, err := OpenVersion(ctx, kek, orig); err != nil {
		t.Fatalf("original no longer opens: %v", err)
	}
}

func TestWrongKEKErrorNamesBothKEKs(t *testing.T) {
	ctx := context.Background()
	a, b := testKEK(t), testKEK(t)
	sv, err := SealVersion(ctx, a, "provider/a", 1, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = OpenVersion(ctx, b, sv)
	if err == nil || !strings.Contains(err.Error(), a.ID()) || !strings.Contains(err.Error(), b.ID()) {
		t.Fatalf("error %v does not name both KEK ids", err)
	}
}

func TestAssociatedDataIsUnambiguous(t *testing.T) {
	pairs := [][2]struct {
		id string
		v  int
	}{
		{{"a", 1}, {"a1", 1}},
		{{"ab", 1}, {"a", 1}},
		{{"a", 256}, {"a\x01", 0}},
	}
	for _, p := range pairs {
		x := associatedData(FormatV1, p[0].id, p[0].v)
		y := associatedData(FormatV1, p[1].id, p[1].v)
		if bytes.Equal(x, y) {
			t.Fatalf("(%q,%d) and (%q,%d) share associated data", p[0].id, p[0].v, p[1].id, p[1].v)
		}
	}
}

// fuzzOriginal is the record FuzzOpenVersion mutates. It is sealed once per
// process under a random KEK; the fuzz input describes a change to it.
var fuzzOriginal = sync.OnceValues(func() (*LocalKEK, store.SecretVersion) {
	key := make([]byte, MasterKeySize)
	_, _ = rand.Read(key)
	kek, err := NewLocalKEK(key)
	if err != nil {
		panic(err)
	}
	sv, err := SealVersion(context.Background(), kek, "provider/fuzz", 3, []byte("fuzz plaintext"))
	if err != nil {
		panic(err)
	}
	return kek, sv
})

// encodeRecord serialises the fields OpenVersion reads. The ciphertext runs to
// the end, so truncation and extension reach it.
func encodeRecord(sv store.SecretVersion) []byte {
	var b []byte
	b = binary.BigEndian.AppendUint16(b, uint16(len(sv.ID)))
	b = append(b, sv.ID...)
	b = binary.BigEndian.AppendUint64(b, uint64(sv.Version))
	b = binary.BigEndian.AppendUint64(b, uint64(sv.Format))
	b = binary.BigEndian.AppendUint16(b, uint16(len(sv.KEKID)))
	b = append(b, sv.KEKID...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(sv.WrappedDEK)))
	b = append(b, sv.WrappedDEK...)
	return append(b, sv.Ciphertext...)
}

func decodeRecord(b []byte) (store.SecretVersion, bool) {
	var sv store.SecretVersion
	field := func() ([]byte, bool) {
		if len(b) < 2 {
			return nil, false
		}
		n := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+n {
			return nil, false
		}
		f := b[2 : 2+n]
		b = b[2+n:]
		return f, true
	}
	id, ok := field()
	if !ok || len(b) < 16 {
		return sv, false
	}
	sv.ID = string(id)
	sv.Version = int(binary.BigEndian.Uint64(b))
	sv.Format = int(binary.BigEndian.Uint64(b[8:]))
	b = b[16:]
	kekID, ok := field()
	if !ok {
		return sv, false
	}
	sv.KEKID = string(kekID)
	wrapped, ok := field()
	if !ok {
		return sv, false
	}
	sv.WrappedDEK = bytes.Clone(wrapped)
	sv.Ciphertext = bytes.Clone(b)
	return sv, true
}

// FuzzOpenVersion applies an arbitrary XOR delta, truncation and extension
// to a valid sealed record: OpenVersion must never panic, and must succeed
// only on a record identical to the original.
func FuzzOpenVersion(f *testing.F) {
	kek, orig := fuzzOriginal()
	origBytes := encodeRecord(orig)
	f.Add([]byte{}, uint16(0), []byte{})
	f.Add([]byte{0, 0, 1}, uint16(0), []byte{})
	f.Add(append(make([]byte, len(origBytes)-1), 0x80), uint16(0), []byte{})
	f.Add([]byte{}, uint16(1), []byte{})
	f.Add([]byte{}, uint16(0), []byte{0})
	f.Add(append(make([]byte, 2+len(orig.ID)+7), 1), uint16(0), []byte{})
	f.Fuzz(func(t *testing.T, delta []byte, cut uint16, extra []byte) {
		b := bytes.Clone(origBytes)
		for i, d := range delta {
			if i < len(b) {
				b[i] ^= d
			} else {
				b = append(b, d)
			}
		}
		b = b[:len(b)-min(int(cut), len(b))]
		b = append(b, extra...)
		sv, ok := decodeRecord(b)
		if !ok {
			return
		}
		pt, err := OpenVersion(context.Background(), kek, sv)
		if err != nil {
			if pt != nil {
				t.Fatal("plaintext returned alongside an error")
			}
			return
		}
		if !bytes.Equal(b, origBytes) {
			t.Fatalf("a modified record opened: %+v", sv)
		}
		if string(pt) != "fuzz plaintext" {
			t.Fatal("the original record opened to a different plaintext")
		}
	})
}

func BenchmarkOpenVersionLocal(b *testing.B) {
	ctx := context.Background()
	kek := testKEK(b)
	sv, err := SealVersion(ctx, kek, "provider/openai", 1, []byte(rand.Text()+rand.Text()))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		pt, err := OpenVersion(ctx, kek, sv)
		if err != nil {
			b.Fatal(err)
		}
		clear(pt)
	}
}
