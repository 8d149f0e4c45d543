package scrub

import (
	"bytes"
	"encoding/binary"
)

// gramLen is the length of the byte strings the dense scan samples.
const gramLen = 4

// find appends every complete occurrence of every needle in b to ms, in no
// particular order, and reports whether the next buffer of the same stream
// should start with the dense scan.
//
// The sparse scan looks for each anchor byte with bytes.IndexByte, which
// runs at memory speed, and compares only the needles indexed under the
// anchor and the byte after it. Where anchor bytes are frequent (base64
// images, audio or embeddings, where every letter is), each hit costs a
// call; past a budget of hits find switches to the dense scan, which reads
// a 4-byte gram every step bytes (step = shortest needle - 3, so every
// occurrence covers one), tests it against a Bloom filter of the needles'
// grams and runs the sparse scan only around the grams that pass. The
// dense scan counts anchor bytes in the first 2 KiB of each buffer to tell
// when the stream has turned sparse again.
func (s *Set) find(b []byte, ms []match, dense bool) ([]match, bool) {
	if len(b) < 2 {
		return ms, dense
	}
	if !dense || len(b) < 4*s.maxLen {
		start := len(ms)
		budget := 8 + len(b)/denseEvery
		out, ok := s.findSparse(b, ms, 0, len(b), budget)
		if ok {
			return out, false
		}
		ms = out[:start]
	}
	return s.findDense(b, ms)
}

// denseEvery is the density of anchor hits, one per so many bytes, past
// which the dense scan is cheaper than the sparse one: a hit costs tens of
// nanoseconds, a probe of the dense scan a few per step bytes.
const denseEvery = 512

// findSparse appends the occurrences lying within b[lo:hi]. It gives up,
// returning false, after budget anchor hits; a negative budget is none.
func (s *Set) findSparse(b []byte, ms []match, lo, hi, budget int) ([]match, bool) {
	last := hi - 1 // an anchor is never a needle's last byte
	for ai := range s.anchors {
		a := &s.anchors[ai]
		for from := lo; from < last; {
			i := bytes.IndexByte(b[from:last], a.b)
			if i < 0 {
				break
			}
			if budget--; budget == -1 {
				return ms, false
			}
			p := from + i
			from = p + 1
			x := b[p+1]
			for _, e := range a.entries[a.next[x]:a.next[int(x)+1]] {
				n := s.needles[e.needle]
				st := p - e.off
				if st < lo || st+len(n) > hi || string(b[st:st+len(n)]) != string(n) {
					continue
				}
				ms = append(ms, match{st, st + len(n)})
			}
		}
	}
	return ms, true
}

// findDense samples b, runs the sparse scan around the samples that may
// belong to a needle, and reports whether anchor bytes are still dense.
func (s *Set) findDense(b []byte, ms []match) ([]match, bool) {
	// Every needle covers a probe within step-1 bytes of its start: it
	// holds at least minLen-gramLen+1 = step gram positions in a row.
	step := s.minLen - gramLen + 1
	reach := step - 1
	winLo, winHi := 0, 0
	for p := 0; ; p += step {
		p = s.grams.next(b, p, step)
		if p < 0 {
			break
		}
		lo, hi := max(0, p-reach), min(len(b), p+s.maxLen)
		if lo <= winHi && winHi > winLo {
			winHi = hi // overlaps the open window: widen it
			continue
		}
		if winHi > winLo {
			ms, _ = s.findSparse(b, ms, winLo, winHi, -1)
		}
		winLo, winHi = lo, hi
	}
	if winHi > winLo {
		ms, _ = s.findSparse(b, ms, winLo, winHi, -1)
	}
	// Go back to the sparse scan when anchor bytes fall well under the
	// switching density, judged on a sample.
	sample := b[:min(len(b), densitySample)]
	anchored := 0
	for _, a := range s.anchors {
		anchored += bytes.Count(sample, []byte{a.b})
	}
	return ms, anchored*2*denseEvery >= len(sample)
}

// densitySample is how many bytes findDense counts anchor bytes in.
const densitySample = 2048

// next returns the first probe at or after from, stepping by step, whose
// gram may belong to a needle, or -1. A probe first tests the gram's
// first two bytes against the needles' byte pairs (one load, no hashing;
// about one base64 pair in twenty passes), then the whole gram.
func (f *gramFilter) next(b []byte, from, step int) int {
	for p := from; p <= len(b)-gramLen; p += step {
		g := binary.LittleEndian.Uint32(b[p:])
		if pair := uint16(g); f.pairs[pair>>6]&(1<<(pair&63)) == 0 {
			continue
		}
		if w, m := gramHash(g); f.quads[w%gramWords]&m == m {
			return p
		}
	}
	return -1
}

// gramWords is the number of 64-bit words of each table of a gramFilter.
const gramWords = 1024

// gramFilter tells which 4-byte grams may belong to a needle: a bit for
// every byte pair a needle holds, and a blocked Bloom filter of the
// needles' 4-byte grams, where a gram sets two bits of one word so a test
// costs one load.
type gramFilter struct {
	pairs [1 << 16 / 64]uint64
	quads [gramWords]uint64
}

// addGrams puts every byte pair and gram of every needle in the Set's
// filter.
func (s *Set) addGrams() {
	s.grams = new(gramFilter)
	for _, n := range s.needles {
		for i := 0; i+2 <= len(n); i++ {
			pair := binary.LittleEndian.Uint16(n[i:])
			s.grams.pairs[pair>>6] |= 1 << (pair & 63)
		}
		for i := 0; i+gramLen <= len(n); i++ {
			w, m := gramHash(binary.LittleEndian.Uint32(n[i:]))
			s.grams.quads[w] |= m
		}
	}
}

// gramHash returns the word of a gramFilter's Bloom filter a gram g maps
// to and the mask of its two bits there, from the top bits of one
// multiplicative hash.
func gramHash(g uint32) (uint32, uint64) {
	h := uint64(g) * 0x9e3779b97f4a7c15
	return uint32(h >> 54), 1<<(h>>48&63) | 1<<(h>>42&63)
}
