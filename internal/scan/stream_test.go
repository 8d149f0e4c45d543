package scan_test

import (
	"math/rand/v2"
	"testing"

	"github.com/keygate/keygate/internal/scan"
	"github.com/keygate/keygate/internal/scan/scantest"
)

// TestStreamMatchesFind feeds corpus files to a Stream in random pieces:
// it finds what Find finds in the whole buffer, at the same offsets, and
// keeps only a bounded tail of the stream.
func TestStreamMatchesFind(t *testing.T) {
	var rules []scan.Rule
	for _, r := range scan.Rules() {
		if r.Rank != scan.RankGeneric && r.MaxLen <= 1024 {
			rules = append(rules, r)
		}
	}
	m, err := scan.NewMatcher(rules)
	if err != nil {
		t.Fatal(err)
	}
	c := scantest.NewGen(31).Corpus(scantest.Options{PerRule: 3, NearMisses: 2, Filler: 1 << 20, FileSize: 64 << 10})
	rnd := rand.New(rand.NewPCG(3, 4))
	total := 0
	for _, f := range c.Files {
		want := m.Find(f.Data)
		total += len(want)
		s := m.NewStream()
		var got []scan.Match
		hold := int64(0)
		for rest := f.Data; len(rest) > 0; {
			n := 1 + rnd.IntN(min(len(rest), []int{3, 100, 5000}[rnd.IntN(3)]))
			found := s.Write(rest[:n])
			rest = rest[n:]
			// What was cleared before this piece was passed on: nothing
			// found now may start there.
			for _, x := range found {
				if int64(x.Start) < hold {
					t.Fatalf("%s: %s found at %d, but the stream had cleared up to %d", f.Path, x.Rule.ID, x.Start, hold)
				}
			}
			got = append(got, found...)
			if hold = s.Hold(); int64(len(f.Data)-len(rest))-hold > 4096 {
				t.Fatalf("the stream holds %d bytes back", int64(len(f.Data)-len(rest))-hold)
			}
		}
		for _, x := range s.Close() {
			if int64(x.Start) < hold {
				t.Fatalf("%s: %s found at the end at %d, but the stream had cleared up to %d", f.Path, x.Rule.ID, x.Start, hold)
			}
			got = append(got, x)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: stream found %d, Find %d", f.Path, len(got), len(want))
		}
		for i := range want {
			if got[i].Rule.ID != want[i].Rule.ID || got[i].SecretStart != want[i].SecretStart || got[i].SecretEnd != want[i].SecretEnd {
				t.Fatalf("%s: match %d: stream %s %d-%d, Find %s %d-%d", f.Path, i, got[i].Rule.ID, got[i].SecretStart, got[i].SecretEnd,
					want[i].Rule.ID, want[i].SecretStart, want[i].SecretEnd)
			}
		}
	}
	if total < 300 {
		t.Fatalf("only %d matches compared", total)
	}
}

// TestStreamHoldsLittleOfProse: an answer in prose, streamed a few words
// at a time, is held back by at most the word still arriving, though
// words such as "ask", "path" or "key-" begin credential formats: a
// pending format is dropped as soon as its pattern fails.
func TestStreamHoldsLittleOfProse(t *testing.T) {
	var rules []scan.Rule
	for _, r := range scan.Rules() {
		if r.Rank != scan.RankGeneric && r.MaxLen <= 1024 {
			rules = append(rules, r)
		}
	}
	m, err := scan.NewMatcher(rules)
	if err != nil {
		t.Fatal(err)
	}
	text := "Ask the team about tasks: the path to the API-key rotation, sk-style names, pat tokens and the access-list. " +
		"Then write 42 tests, deploy at 10:30 and note the hooks, the secret_ names and the key- prefixes in the docs. "
	s := m.NewStream()
	end := int64(0)
	for i := 0; i < len(text); {
		n := min(len(text)-i, 7)
		if len(s.Write([]byte(text[i:i+n]))) != 0 {
			t.Fatalf("found a credential in prose %q", text)
		}
		i += n
		end += int64(n)
		word := int64(0)
		for j := i - 1; j >= 0 && text[j] != ' '; j-- {
			word++
		}
		if held := end - s.Hold(); held > word {
			t.Fatalf("after %q the stream holds %d bytes back; the last word is %d", text[:i], held, word)
		}
	}
}
