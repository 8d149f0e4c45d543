package apikey

import (
	"crypto/rand"
	"testing"
)

func testHasher(t testing.TB) *Hasher {
	t.Helper()
	pepper := make([]byte, 32)
	if _, err := rand.Read(pepper); err != nil {
		t.Fatal(err)
	}
	h, err := NewHasher(pepper)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestNewHasher(t *testing.T) {
	if _, err := NewHasher(make([]byte, 31)); err == nil {
		t.Fatal("accepted a 31-byte pepper")
	}
	pepper := make([]byte, 32)
	_, _ = rand.Read(pepper)
	a, _ := NewHasher(pepper)
	b, _ := NewHasher(append([]byte(nil), pepper...))
	raw := mustGenerate(t, "live")
	if a.Hash(raw) != b.Hash(raw) {
		t.Fatal("same pepper, different hash")
	}
	pepper[0] ^= 1 // NewHasher copied the pepper
	if a.Hash(raw) != b.Hash(raw) {
		t.Fatal("Hasher kept a reference to the caller's pepper")
	}
	c := testHasher(t)
	if c.Hash(raw) == a.Hash(raw) {
		t.Fatal("different peppers, same hash")
	}
	other := mustGenerate(t, "live")
	if a.Hash(raw) == a.Hash(other) {
		t.Fatal("different keys, same hash")
	}
	long := string(make([]byte, 1000)) // longer than the scratch buffer
	if a.Hash(long) == a.Hash(long[:999]) {
		t.Fatal("long input hashed wrongly")
	}
}

func TestHashDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	h := testHasher(t)
	raw := mustGenerate(t, "live")
	if n := testing.AllocsPerRun(200, func() { h.Hash(raw) }); n > 0 {
		t.Errorf("Hash: %.1f allocs", n)
	}
}

func BenchmarkHash(b *testing.B) {
	h := testHasher(b)
	raw := mustGenerate(b, "live")
	b.ReportAllocs()
	for b.Loop() {
		h.Hash(raw)
	}
}
