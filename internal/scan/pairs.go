package scan

import "slices"

// pairs finds the same anchor occurrences as the automaton, faster on the
// text the data path checks (prompts, answers, JSON): each anchor is
// looked for by one pair of adjacent bytes, the one of its pairs least
// likely in ordinary text, and only where that pair occurs are the anchors
// holding it compared whole.
//
// The automaton reads every byte through a chain of dependent table loads
// (each state depends on the last), about 3.5 ns a byte on the reference
// machine whatever the input. Here each position costs one load from an
// 8 KiB bitmap that stays in the first-level cache, and positions do not
// depend on each other, so the processor overlaps them; the bitmap passes
// a few percent of positions in prose, JSON and code. Anchors whose rule is
// case-sensitive are looked for case-sensitively (the automaton folds them
// and the rule drops the other cases afterwards), which keeps pairs such
// as "SK" or "AKIA"'s "KI" rare in prose.
type pairs struct {
	bits   [1 << 10]uint64 // one bit per byte pair: some anchor holds it
	idx    []uint16        // pair -> 1 + index in groups; 0 is none
	groups [][]pairAnchor
	byID   []pairAnchor
	maxLen int // the longest anchor
}

// pairAnchor is one anchor holding a pair at offset off.
type pairAnchor struct {
	id     int32
	off    int32
	anchor string
	fold   bool // compare with ASCII letters case-folded
}

// pairHit is an anchor occurrence, kept to report occurrences in the
// automaton's order: by where they end, then by anchor id.
type pairHit struct{ end, id, start int }

// newPairs indexes anchors; fold[i] says anchor i is matched regardless of
// case. Anchors must be at least two bytes long.
func newPairs(anchors []string, fold []bool) *pairs {
	p := &pairs{idx: make([]uint16, 1<<16)}
	for id, a := range anchors {
		p.maxLen = max(p.maxLen, len(a))
		best, bestScore := 0, -1.0
		for j := 0; j+1 < len(a); j++ {
			s := pairScore(a[j], a[j+1], fold[id])
			if bestScore < 0 || s < bestScore {
				best, bestScore = j, s
			}
		}
		pa := pairAnchor{id: int32(id), off: int32(best), anchor: a, fold: fold[id]}
		p.byID = append(p.byID, pa)
		for _, x := range variants(a[best], fold[id]) {
			for _, y := range variants(a[best+1], fold[id]) {
				k := uint16(x)<<8 | uint16(y)
				p.bits[k>>6] |= 1 << (k & 63)
				if p.idx[k] == 0 {
					p.groups = append(p.groups, nil)
					p.idx[k] = uint16(len(p.groups))
				}
				g := p.idx[k] - 1
				p.groups[g] = append(p.groups[g], pa)
			}
		}
	}
	return p
}

// variants returns the bytes c stands for: itself, and its other case when
// folding.
func variants(c byte, fold bool) []byte {
	switch {
	case fold && 'a' <= c && c <= 'z':
		return []byte{c, c - 'a' + 'A'}
	case fold && 'A' <= c && c <= 'Z':
		return []byte{c + 'a' - 'A', c}
	}
	return []byte{c}
}

// pairScore estimates how often the pair a, b occurs in ordinary text:
// the product of the bytes' frequencies, summed over case variants when
// folding. Only the order matters.
func pairScore(a, b byte, fold bool) float64 {
	var sa, sb float64
	for _, x := range variants(a, fold) {
		sa += byteFreq(x)
	}
	for _, y := range variants(b, fold) {
		sb += byteFreq(y)
	}
	return sa * sb
}

// letterFreq is the frequency of each lower-case letter in English text,
// in percent.
var letterFreq = [26]float64{8.2, 1.5, 2.8, 4.3, 12.7, 2.2, 2.0, 6.1, 7.0, 0.15, 0.8, 4.0, 2.4,
	6.7, 7.5, 1.9, 0.1, 6.0, 6.3, 9.1, 2.8, 1.0, 2.4, 0.15, 2.0, 0.07}

// byteFreq is a rough frequency of byte c in prompts, answers, JSON and
// code, on the scale of letterFreq.
func byteFreq(c byte) float64 {
	switch {
	case 'a' <= c && c <= 'z':
		return letterFreq[c-'a']
	case 'A' <= c && c <= 'Z':
		return 0.05 + letterFreq[c-'A']/10
	case '0' <= c && c <= '9':
		return 0.5
	}
	switch c {
	case ' ':
		return 15
	case '"', '\n', ',', '.', ':':
		return 1.5
	case '_', '-', '/', '(', ')', '=', '\'', '\t':
		return 0.5
	}
	return 0.1
}

// find calls hit with each anchor id and the offset where it starts, in
// order of the anchors' ends, then of ids: the order automaton.find
// reports them in.
func (p *pairs) find(data []byte, hit func(id int, start int)) {
	var stack [16]pairHit
	hs := p.scan(data, 0, stack[:0])
	hs = slices.DeleteFunc(hs, func(h pairHit) bool { return h.end > len(data) })
	if len(hs) > 1 {
		slices.SortFunc(hs, func(a, b pairHit) int {
			if a.end != b.end {
				return a.end - b.end
			}
			return a.id - b.id
		})
	}
	for _, h := range hs {
		hit(h.id, h.start)
	}
}

// scan appends to hs the anchors whose pair starts at from or later in
// data and that data holds whole. An anchor whose pair is in data but
// whose bytes run past its end is appended with end beyond len(data), for
// a stream to check again when more has arrived.
func (p *pairs) scan(data []byte, from int, hs []pairHit) []pairHit {
	if len(data) < 2 || from >= len(data)-1 {
		return hs
	}
	prev := uint16(data[from])
	for i := from + 1; i < len(data); i++ {
		c := uint16(data[i])
		k := prev<<8 | c
		prev = c
		if p.bits[k>>6]&(1<<(k&63)) == 0 {
			continue
		}
		for _, a := range p.groups[p.idx[k]-1] {
			s := i - 1 - int(a.off)
			e := s + len(a.anchor)
			if s < 0 {
				continue
			}
			if e > len(data) {
				if anchorPrefix(data[s:], a) {
					hs = append(hs, pairHit{e, int(a.id), s})
				}
				continue
			}
			if anchorAt(data[s:e], a) {
				hs = append(hs, pairHit{e, int(a.id), s})
			}
		}
	}
	return hs
}

// anchorAt reports whether b is anchor a.
func anchorAt(b []byte, a pairAnchor) bool {
	if !a.fold {
		return string(b) == a.anchor
	}
	for i := range len(b) {
		if lower(b[i]) != lower(a.anchor[i]) {
			return false
		}
	}
	return true
}

// anchorPrefix reports whether b, shorter than anchor a, begins it.
func anchorPrefix(b []byte, a pairAnchor) bool {
	return anchorAt(b, pairAnchor{anchor: a.anchor[:len(b)], fold: a.fold})
}

// anchor returns anchor id as the index holds it.
func (p *pairs) anchor(id int) pairAnchor { return p.byID[id] }
