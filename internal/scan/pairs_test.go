package scan

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestPairsFindWhatTheAutomatonFinds checks the pair index against the
// automaton on text built to hold anchors in every case, overlapping and
// cut at the edges: after the case-sensitive rules drop their other cases,
// both report the same occurrences in the same order.
func TestPairsFindWhatTheAutomatonFinds(t *testing.T) {
	m, err := NewMatcher(Rules())
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	type occ struct{ id, at int }
	for round := range 3000 {
		var b []byte
		for len(b) < 40+rng.IntN(400) {
			switch rng.IntN(4) {
			case 0:
				a := m.exact[rng.IntN(len(m.exact))]
				if rng.IntN(3) == 0 {
					a = swapCase(a, rng)
				}
				if rng.IntN(4) == 0 {
					a = a[:rng.IntN(len(a))]
				}
				b = append(b, a...)
			case 1:
				b = append(b, " the quick brown fox asks about tasks and paths "...)
			default:
				b = append(b, byte(rng.IntN(128)))
			}
		}
		var want, got []occ
		m.ac.find(b, func(id, at int) {
			c := m.rules[m.owner[id]]
			if c.exact && string(b[at:at+len(m.exact[id])]) != m.exact[id] {
				return
			}
			want = append(want, occ{id, at})
		})
		m.pairs.find(b, func(id, at int) { got = append(got, occ{id, at}) })
		if !slices.Equal(want, got) {
			t.Fatalf("round %d: in %q\nautomaton %v\npairs     %v", round, b, want, got)
		}
	}
}

func swapCase(s string, rng *rand.Rand) string {
	b := []byte(s)
	for i, c := range b {
		if rng.IntN(2) == 0 {
			switch {
			case 'a' <= c && c <= 'z':
				b[i] = c - 'a' + 'A'
			case 'A' <= c && c <= 'Z':
				b[i] = c + 'a' - 'A'
			}
		}
	}
	return string(b)
}
