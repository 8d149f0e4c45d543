package scrub

import (
	"slices"

	"github.com/keygate/keygate/internal/secret"
)

// match is a needle found at b[start:end].
type match struct{ start, end int }

// scratch holds the slices scan reuses from one call to the next, so a
// Reader does not allocate in steady state.
type scratch struct {
	ms    []match
	parts []int
	dense bool // the last buffer was dense with anchor bytes: sample it (see find)
}

// scan finds the needles in b and chooses which to replace the way a
// single left-to-right pass would: at the leftmost position where a needle
// starts, the longest needle starting there; then on from its end. It
// returns the chosen matches in order, and hold: where the bytes that must
// wait for more input begin. Unless final, a suffix of b that is the start
// of a needle longer than what is left may become a match when more bytes
// come, and neither it nor anything after it is decided; hold is len(b)
// when there is none. b[:hold] is final once its matches are replaced.
func (s *Set) scan(b []byte, final bool, sc *scratch) (ms []match, hold int) {
	ms, sc.dense = s.find(b, sc.ms[:0], sc.dense)
	parts := sc.parts[:0]
	if !final {
		parts = s.partials(b, parts)
	}
	if len(ms) > 1 {
		slices.SortFunc(ms, func(x, y match) int {
			if x.start != y.start {
				return x.start - y.start
			}
			return y.end - x.end
		})
	}
	kept, pos, pi := 0, 0, 0
	for _, m := range ms {
		if m.start < pos {
			continue // inside, or the shorter twin of, a match already taken
		}
		for pi < len(parts) && parts[pi] < pos {
			pi++
		}
		if pi < len(parts) && parts[pi] <= m.start {
			break // a needle that starts earlier, or is longer, may still complete
		}
		ms[kept] = m
		kept++
		pos = m.end
	}
	for pi < len(parts) && parts[pi] < pos {
		pi++
	}
	hold = len(b)
	if pi < len(parts) {
		hold = parts[pi]
	}
	if cap(ms) != cap(sc.ms) || cap(parts) != cap(sc.parts) {
		sc.ms, sc.parts = ms, parts // they grew; keep the larger arrays
	}
	return ms[:kept], hold
}

// partials appends, in increasing order, every position q near the end of
// b where b[q:] is a proper prefix of a needle: a needle that more bytes
// could complete. Only the last MaxHold bytes can hold one, and only from
// where the bytes at the end stop being bytes of some needle.
func (s *Set) partials(b []byte, parts []int) []int {
	lo := max(0, len(b)-(s.maxLen-1))
	r := len(b)
	for r > lo && s.inNeedle[b[r-1]] {
		r--
	}
	for q := r; q < len(b); q++ {
		if s.first[b[q]] == s.first[int(b[q])+1] {
			continue
		}
		rest := b[q:]
		for _, ni := range s.byFirst[s.first[b[q]]:s.first[int(b[q])+1]] {
			if n := s.needles[ni]; len(n) > len(rest) && string(n[:len(rest)]) == string(rest) {
				parts = append(parts, q)
				break
			}
		}
	}
	return parts
}

// Bytes replaces every needle in b, in place, by a mask of the same length
// ("[REDACTED]" padded with '*'), and reports how many it replaced. Use it
// for a body already read whole; stream bodies through Reader.
func (s *Set) Bytes(b []byte) int {
	if s.Empty() {
		return 0
	}
	var sc scratch
	ms, _ := s.scan(b, true, &sc)
	for _, m := range ms {
		copy(b[m.start:m.end], s.mask(m.end-m.start))
	}
	return len(ms)
}

// Contains reports whether b holds any needle.
func (s *Set) Contains(b []byte) bool {
	if s.Empty() {
		return false
	}
	ms, _ := s.find(b, nil, false)
	return len(ms) > 0
}

// replaceString returns v with every needle replaced by with, which need
// not have the needle's length, and whether it replaced any.
func (s *Set) replaceString(v, with string) (string, bool) {
	if len(v) < s.minLen {
		return v, false // most header values: no needle fits
	}
	b := []byte(v)
	var sc scratch
	ms, _ := s.scan(b, true, &sc)
	if len(ms) == 0 {
		return v, false
	}
	out := make([]byte, 0, len(b))
	pos := 0
	for _, m := range ms {
		out = append(out, b[pos:m.start]...)
		out = append(out, with...)
		pos = m.end
	}
	return string(append(out, b[pos:]...)), true
}

// String returns v with every needle replaced by "[REDACTED]", for text
// from the upstream that keygate repeats, such as an error message.
func (s *Set) String(v string) string {
	if s.Empty() {
		return v
	}
	v, _ = s.replaceString(v, secret.Redacted)
	return v
}
