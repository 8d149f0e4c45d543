package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const nasty = "a\nb\r\nc\x00d\x1be\"f\\g]h[i=j\u2028k<l>&\xff"

func nastyEvent() Event {
	return Event{
		Time: time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.FixedZone("X", 3600)),
		Type: "auth.failure" + nasty, Actor: nasty, KeyID: nasty, Client: nasty,
		Resource: nasty, Decision: nasty, Reasons: []string{nasty, "]", ""},
		Fields: map[string]string{nasty: nasty, "k": "\n"},
	}
}

func testKey(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// trail builds n chained events.
func trail(t testing.TB, n int) []Event {
	c := NewChain(Event{})
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	out := make([]Event, n)
	for i := range out {
		ev, err := c.Append(Event{Time: base.Add(time.Duration(i) * time.Millisecond), Type: "auth.success", KeyID: "key_a", Resource: "/v1/chat"})
		if err != nil {
			t.Fatal(err)
		}
		out[i] = ev
	}
	return out
}

func TestRefHMAC(t *testing.T) {
	a, b := RefHMAC([]byte("k1"), "sk-live-123"), RefHMAC([]byte("k1"), "sk-live-123")
	if a != b || len(a) != 32 || strings.Contains(a, "sk-live") {
		t.Fatalf("RefHMAC = %q, %q", a, b)
	}
	if RefHMAC([]byte("k2"), "sk-live-123") == a || RefHMAC([]byte("k1"), "sk-live-124") == a {
		t.Fatal("RefHMAC does not depend on both key and value")
	}
}

func TestChainLinksAndResumes(t *testing.T) {
	evs := trail(t, 3)
	if evs[0].Seq != 1 || evs[0].Prev != "" || evs[1].Prev != evs[0].Hash || evs[2].Seq != 3 {
		t.Fatalf("chain not linked: %+v", evs)
	}
	for _, ev := range evs {
		if h, _ := ev.ComputeHash(); h != ev.Hash {
			t.Fatalf("seq %d: hash %s, recomputed %s", ev.Seq, ev.Hash, h)
		}
	}
	c := NewChain(evs[2])
	ev, err := c.Append(Event{Type: "key.revoked"})
	if err != nil || ev.Seq != 4 || ev.Prev != evs[2].Hash {
		t.Fatalf("resumed chain gave %+v, %v", ev, err)
	}
	if err := Verify(append(evs, ev), nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Append(Event{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}); err == nil {
		t.Fatal("an unencodable time was chained")
	}
	if seq, _ := c.Head(); seq != 4 {
		t.Fatalf("a refused event took a place in the chain: head %d", seq)
	}
}

func TestChainConcurrentAppendsAreUniqueAndLinked(t *testing.T) {
	c := NewChain(Event{})
	var mu sync.Mutex
	var got []Event
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				ev, err := c.Append(Event{Type: "auth.success"})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				got = append(got, ev)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.SortFunc(got, func(a, b Event) int { return int(a.Seq) - int(b.Seq) })
	if err := Verify(got, nil, nil); err != nil {
		t.Fatal(err)
	}
}

func TestNastyStringsRoundTripThroughTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s, err := OpenFile(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := NewChain(Event{})
	var want []Event
	for range 3 {
		ev, err := c.Append(nastyEvent())
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, ev)
	}
	if err := s.Write(t.Context(), want); err != nil {
		t.Fatal(err)
	}
	s.Close()
	raw, _ := os.ReadFile(path)
	if n := strings.Count(string(raw), "\n"); n != 3 {
		t.Fatalf("3 events made %d lines:\n%s", n, raw)
	}
	for _, bad := range []string{"\r", "\x00", "\x1b", "\u2028"} {
		if strings.Contains(string(raw), bad) {
			t.Fatalf("raw control character %q in the file", bad)
		}
	}
	got, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("read %d events", len(got))
	}
	for i := range got {
		if got[i].Actor != want[i].Actor || got[i].Fields[strings.ToValidUTF8(nasty, "\uFFFD")] != want[i].Actor ||
			!slices.Equal(got[i].Reasons, want[i].Reasons) || !got[i].Time.Equal(want[i].Time) {
			t.Fatalf("event %d changed:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	if err := Verify(got, nil, nil); err != nil {
		t.Fatalf("round-tripped nasty events do not verify: %v", err)
	}
}

func TestCheckpointSignAndVerify(t *testing.T) {
	pub, priv := testKey(t)
	ev := trail(t, 1)[0]
	cp := Sign(priv, ev)
	if err := VerifyCheckpoint(pub, cp); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Checkpoint){
		"seq":  func(c *Checkpoint) { c.Seq++ },
		"hash": func(c *Checkpoint) { c.Hash = strings.Repeat("0", 64) },
		"time": func(c *Checkpoint) { c.Time = c.Time.Add(time.Nanosecond) },
		"sig":  func(c *Checkpoint) { c.Signature = slices.Clone(c.Signature); c.Signature[0] ^= 1 },
	} {
		bad := cp
		mut(&bad)
		if VerifyCheckpoint(pub, bad) == nil {
			t.Errorf("checkpoint with altered %s verified", name)
		}
	}
	other, _ := testKey(t)
	if VerifyCheckpoint(other, cp) == nil {
		t.Error("checkpoint verified under another key")
	}
}

func TestVerifyFindsTampering(t *testing.T) {
	pub, priv := testKey(t)
	_, otherPriv := testKey(t)
	cps := func(evs []Event, seqs ...int) []Checkpoint {
		var out []Checkpoint
		for _, s := range seqs {
			out = append(out, Sign(priv, evs[s-1]))
		}
		return out
	}
	rehash := func(ev Event) Event { ev.Hash, _ = ev.ComputeHash(); return ev }

	cases := []struct {
		name    string
		tamper  func(evs []Event) ([]Event, []Checkpoint)
		seq     uint64
		kind    string
		isClean bool
	}{
		{"untouched", func(e []Event) ([]Event, []Checkpoint) { return e, cps(e, 5, 10) }, 0, "", true},
		{"edited", func(e []Event) ([]Event, []Checkpoint) {
			e[3].Decision = "allow"
			return e, cps(e, 10)
		}, 4, Edited, false},
		{"edited and rehashed", func(e []Event) ([]Event, []Checkpoint) {
			e[3].Decision = "allow"
			e[3] = rehash(e[3])
			return e, nil
		}, 5, BrokenLink, false},
		{"deleted", func(e []Event) ([]Event, []Checkpoint) {
			return slices.Delete(e, 6, 7), cps(e, 10)
		}, 7, Deleted, false},
		{"reordered", func(e []Event) ([]Event, []Checkpoint) {
			e[2], e[3] = e[3], e[2]
			return e, nil
		}, 3, Reordered, false},
		{"inserted duplicate seq", func(e []Event) ([]Event, []Checkpoint) {
			forged := e[4]
			forged.Decision = "allow"
			forged = rehash(forged)
			return slices.Insert(e, 4, forged), nil
		}, 5, Inserted, false},
		{"bad checkpoint signature", func(e []Event) ([]Event, []Checkpoint) {
			c := cps(e, 5, 8)
			c[1].Signature = Sign(otherPriv, e[7]).Signature
			return e, c
		}, 8, BadCheckpoint, false},
		{"checkpoint hash mismatch", func(e []Event) ([]Event, []Checkpoint) {
			c := cps(e, 6)
			// The trail from seq 6 on was rewritten with a consistent chain.
			ch := NewChain(e[4])
			for i := 5; i < len(e); i++ {
				e[i].Resource = "/rewritten"
				e[i], _ = ch.Append(e[i])
			}
			return e, c
		}, 6, CheckpointMismatch, false},
		{"truncated", func(e []Event) ([]Event, []Checkpoint) {
			return e[:7], cps(e, 5, 10)
		}, 8, Truncated, false},
		{"everything deleted", func(e []Event) ([]Event, []Checkpoint) {
			return nil, cps(e, 10)
		}, 1, Truncated, false},
		{"head cut without anchor", func(e []Event) ([]Event, []Checkpoint) {
			return e[3:], nil
		}, 1, MissingStart, false},
		{"head rotated away at a checkpoint", func(e []Event) ([]Event, []Checkpoint) {
			return e[3:], cps(e, 3, 10)
		}, 0, "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			evs, c := tc.tamper(trail(t, 10))
			err := Verify(evs, c, pub)
			if tc.isClean {
				if err != nil {
					t.Fatalf("intact trail failed: %v", err)
				}
				return
			}
			var te *TamperError
			if !errors.As(err, &te) {
				t.Fatalf("got %v, want a *TamperError", err)
			}
			if te.Seq != tc.seq || te.What != tc.kind {
				t.Fatalf("got seq %d %q, want seq %d %q (%v)", te.Seq, te.What, tc.seq, tc.kind, err)
			}
		})
	}
}
