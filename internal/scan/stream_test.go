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
		for rest := f.Data; len(rest) > 0; {
			n := 1 + rnd.IntN(min(len(rest), []int{3, 100, 5000}[rnd.IntN(3)]))
			got = append(got, s.Write(rest[:n])...)
			rest = rest[n:]
			if hold := s.Hold(); int64(len(f.Data)-len(rest))-hold > 4096 {
				t.Fatalf("the stream holds %d bytes back", int64(len(f.Data)-len(rest))-hold)
			}
		}
		got = append(got, s.Close()...)
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
